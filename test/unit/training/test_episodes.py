"""training/episodes.py on synthetic npz episodes in the sim contract's format."""

import json

import numpy as np
import pytest
import torch

from openvla_ros.model.testing.tokenizer import write_tiny_llama_tokenizer
from openvla_ros.normalization import load_dataset_statistics
from openvla_ros.processing import (
    default_preprocessor_config, ImagePreprocessor, PromptTokenizer)
from openvla_ros.training.episodes import (
    chunk_starts, compute_statistics, EpisodeDataset, load_episode, load_episodes,
    normalize_actions)

H = 8
INSTRUCTIONS = ('pick up the red cube', 'grab the blue cube')  # as conftest.INSTRUCTIONS


@pytest.fixture(scope='module')
def episode_dir(tmp_path_factory, write_episode):
    directory = tmp_path_factory.mktemp('episodes')
    for index, length in enumerate((12, 9, 5)):  # 5 < H: yields no sample
        write_episode(directory / f'episode_{index:06d}.npz', length,
                      INSTRUCTIONS[index % 2], seed=index)
    return directory


@pytest.fixture(scope='module')
def tokenizer(tmp_path_factory):
    directory = write_tiny_llama_tokenizer(tmp_path_factory.mktemp('tok'), INSTRUCTIONS)
    return PromptTokenizer.from_checkpoint(directory)


@pytest.fixture(scope='module')
def preprocessor():
    return ImagePreprocessor.from_config(default_preprocessor_config(112))


def test_episode_file_is_read_as_stored(episode_dir):
    episode = load_episode(episode_dir / 'episode_000000.npz')
    with np.load(episode_dir / 'episode_000000.npz') as data:
        assert np.array_equal(episode.images[0], data['image_primary'])
        assert np.array_equal(episode.actions, data['actions'])
    assert episode.instruction == 'pick up the red cube'
    assert episode.length == 12 and episode.success is True and episode.seed == 0


def test_statistics_are_upstreams_over_every_step(episode_dir, tmp_path):
    episodes = load_episodes(episode_dir)
    stats = compute_statistics(episodes)
    actions = np.concatenate([e.actions for e in episodes])  # (26, 7)
    proprio = np.concatenate([e.proprio for e in episodes])
    assert stats.num_transitions == 26 and stats.num_trajectories == 3
    np.testing.assert_array_equal(stats.action.q01, np.quantile(actions, 0.01, axis=0))
    np.testing.assert_array_equal(stats.action.q99, np.quantile(actions, 0.99, axis=0))
    np.testing.assert_array_equal(stats.proprio.mean, proprio.mean(0))
    np.testing.assert_array_equal(stats.proprio.std, proprio.std(0))
    assert stats.action.mask.tolist() == [True] * 6 + [False]
    assert stats.proprio.mask is None
    path = tmp_path / 'dataset_statistics.json'  # upstream's file format, read back
    path.write_text(json.dumps({'sim_cubes': stats.to_dict()}))
    data = json.loads(path.read_text())['sim_cubes']
    assert set(data['action']) == {'mean', 'std', 'max', 'min', 'q01', 'q99', 'mask'}
    assert load_dataset_statistics(path)['sim_cubes'] == stats


def test_action_normalization_by_hand(episode_dir):
    stats = compute_statistics(load_episodes(episode_dir))
    low, high = stats.action.q01, stats.action.q99
    raw = np.array([[low[0], high[1], 0.5 * (low[2] + high[2]), high[3] + 5, 0.0, 0.0, 1.0]])
    normalized = normalize_actions(raw, stats.action)
    assert normalized.dtype == np.float32
    np.testing.assert_allclose(normalized[0, :4], [-1, 1, 0, 1], atol=1e-6)  # clipped above
    assert normalized[0, 5] == 0.0  # min == max -> 0, as upstream
    assert normalized[0, 6] == 1.0  # gripper left raw (mask False)


def test_chunks_stop_where_upstream_stops():
    assert list(chunk_starts(12, H)) == [0, 1, 2, 3, 4]
    assert list(chunk_starts(8, H)) == [0]
    assert list(chunk_starts(5, H)) == []


def test_samples_are_chunks_of_normalized_actions_with_inference_pixels(
        episode_dir, tokenizer, preprocessor):
    episodes = load_episodes(episode_dir)
    stats = compute_statistics(episodes)
    dataset = EpisodeDataset(episodes, stats, tokenizer, preprocessor, H)
    assert len(dataset) == 5 + 2 + 0
    assert dataset.instructions == [INSTRUCTIONS[0]] * 5 + [INSTRUCTIONS[1]] * 2
    batch = dataset.batch([3, 6])  # episode 0 step 3, episode 1 step 1
    expected_actions = [normalize_actions(episodes[0].actions[3:3 + H], stats.action),
                        normalize_actions(episodes[1].actions[1:1 + H], stats.action)]
    assert torch.equal(batch['actions'], torch.from_numpy(np.stack(expected_actions)))
    for row, (episode, step) in enumerate(((episodes[0], 3), (episodes[1], 1))):
        inference = preprocessor([episode.images[0][step]])  # (1, 6, 112, 112), as the policy
        assert torch.equal(batch['pixel_values'][row:row + 1], inference)
        ids = tokenizer.encode(episode.instruction) + [29871]
        length = int(batch['prompt_lengths'][row])
        assert batch['prompt_ids'][row, :length].tolist() == ids
        assert (batch['prompt_ids'][row, length:] == 32000).all()
    from openvla_ros.normalization import normalize_proprio
    expected_proprio = normalize_proprio(episodes[1].proprio[1], stats.proprio, 'bounds_q99')
    assert torch.equal(batch['proprio'][1], torch.from_numpy(expected_proprio.astype(np.float32)))
    assert dataset.chunk_starts.tolist() == [0, 1, 2, 3, 4, 0, 1]


def test_instruction_words_are_whole_tokenizer_pieces(tmp_path):
    from tokenizers import Tokenizer

    directory = write_tiny_llama_tokenizer(tmp_path, extra_instructions=INSTRUCTIONS)
    tokens = Tokenizer.from_file(str(directory / 'tokenizer.json')).encode(
        'grab the blue cube').tokens
    assert tokens == ['<s>', '\u2581grab', '\u2581the', '\u2581blue', '\u2581cube']


def test_bad_episode_files_are_rejected_with_the_file_name(tmp_path):
    path = tmp_path / 'episode_000000.npz'
    np.savez_compressed(path, image_primary=np.zeros((3, 8, 8, 3), np.uint8),
                        proprio=np.zeros((4, 8), np.float32), actions=np.zeros((3, 7)),
                        instruction=np.array('x'))
    with pytest.raises(ValueError, match='episode_000000.npz: expected actions'):
        load_episode(path)
    with pytest.raises(FileNotFoundError, match='no episode_'):
        load_episodes(tmp_path / 'missing')
