"""openvla-train end to end on tiny models: checkpoints that load, predict and round-trip."""

import json

import numpy as np
import pytest
from safetensors.torch import load_file
import torch

from openvla_ros.model.checkpoint import load_openvla
from openvla_ros.model.testing.factory import tiny_checkpoint
from openvla_ros.normalization import load_dataset_statistics
from openvla_ros.policy import OpenVLAPolicy
from openvla_ros.training import architectures, cli, export, trainer
from openvla_ros.training.episodes import compute_statistics, load_episodes

pytestmark = pytest.mark.slow
INSTRUCTIONS = ('pick up the red cube', 'grab the blue cube')  # as conftest.INSTRUCTIONS


@pytest.fixture(scope='module')
def episodes_at(write_episode):
    """Return a writer of synthetic episodes: (directory, count, size, wrist=False)."""
    return lambda *args, **kwargs: _episodes(write_episode, *args, **kwargs)


def _episodes(write_episode, directory, count, size, wrist=False):
    directory.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        path = write_episode(directory / f'episode_{index:06d}.npz', 12, INSTRUCTIONS[index % 2],
                             seed=index, size=size)
        if wrist:  # a second camera for a two-image model
            data = dict(np.load(path))
            data['image_wrist'] = data['image_primary'][:, ::-1].copy()
            np.savez_compressed(path, **data)
    return directory


@pytest.fixture(scope='module')
def scratch_run(tmp_path_factory, episodes_at):
    """Train a from-scratch test-tiny model for a few steps through the CLI."""
    root = tmp_path_factory.mktemp('scratch')
    data = episodes_at(root / 'data', 4, 112)
    output = root / 'run'
    code = cli.main(['--data', str(data), '--output', str(output), '--architecture',
                     'test-tiny', '--steps', '12', '--batch-size', '4', '--lr', '1e-3',
                     '--mse-fraction', '0.5', '--seed', '3', '--threads', '2',
                     '--eval-data', str(data), '--save-every', '6', '--publish-dir',
                     str(root / 'published'), '--run-name', 'tiny', '--no-progress'])
    assert code == 0
    return root, data, output


def test_cli_writes_a_checkpoint_in_the_released_layout(scratch_run):
    _, data, output = scratch_run
    checkpoint = output / 'checkpoint'
    names = sorted(path.name for path in checkpoint.iterdir())
    assert names == ['action_head--12_checkpoint.pt', 'added_tokens.json', 'config.json',
                     'dataset_statistics.json', 'generation_config.json', 'model.safetensors',
                     'preprocessor_config.json', 'proprio_projector--12_checkpoint.pt',
                     'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json']
    weights = load_file(str(checkpoint / 'model.safetensors'))
    assert {value.dtype for value in weights.values()} == {torch.bfloat16}
    head = torch.load(checkpoint / 'action_head--12_checkpoint.pt', weights_only=True)
    assert all(key.startswith('module.model.') for key in head)
    stats = load_dataset_statistics(checkpoint)
    assert list(stats) == ['sim_cubes']
    assert stats['sim_cubes'] == compute_statistics(load_episodes(data))
    config = json.loads((checkpoint / 'config.json').read_text())
    assert config['platform_constants']['chunk_len'] == 8
    assert config['image_sizes'] == [112, 112]
    log = json.loads((output / 'train_log.json').read_text())
    assert [row[2] for row in log['losses']] == ['mse'] * 6 + ['l1'] * 6
    assert [e['step'] for e in log['evaluations']] == [6, 12]
    assert (output / 'loss.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert (output / 'step_000006' / 'model.safetensors').is_file()


def test_published_checkpoints_carry_ready(scratch_run):
    root, _, _ = scratch_run
    published = sorted(path.name for path in (root / 'published').iterdir())
    assert published == ['tiny-final', 'tiny-step000006']
    for name in published:
        assert (root / 'published' / name / export.READY_FILENAME).is_file()


def test_trained_checkpoint_loads_as_a_policy_and_predicts(scratch_run):
    _, data, output = scratch_run
    policy = OpenVLAPolicy.from_pretrained(output / 'checkpoint', device='cpu')
    assert policy.spec.unnorm_key == 'sim_cubes' and policy.spec.num_images == 1
    episode = load_episodes(data)[0]
    chunk = policy.predict([episode.images[0][0]], episode.instruction,
                           proprio=episode.proprio[0])
    assert chunk.actions.shape == (8, 7) and np.isfinite(chunk.actions).all()
    # The policy's normalized output is the bf16 model's batched training-path prediction.
    log = json.loads((output / 'train_log.json').read_text())
    assert np.isfinite(log['evaluations'][-1]['l1'])


def test_training_reduces_the_loss_and_is_deterministic(tmp_path, episodes_at):
    data = episodes_at(tmp_path / 'data', 2, 112)
    runs = []
    for name in ('one', 'two'):
        output = tmp_path / name
        assert cli.main(['--data', str(data), '--output', str(output), '--architecture',
                         'test-tiny', '--steps', '30', '--batch-size', '4', '--lr', '2e-3',
                         '--seed', '5', '--threads', '2', '--no-progress',
                         '--save-dtype', 'float32']) == 0
        runs.append(output)
    losses = [json.loads((run / 'train_log.json').read_text())['losses'] for run in runs]
    assert losses[0] == losses[1]
    first, last = np.mean([row[1] for row in losses[0][:5]]), \
        np.mean([row[1] for row in losses[0][-5:]])
    assert last < 0.8 * first
    weights = [load_file(str(run / 'checkpoint' / 'model.safetensors')) for run in runs]
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])


def _small_dataset(model, data):
    from openvla_ros.processing import ImagePreprocessor, PromptTokenizer
    from openvla_ros.training.episodes import EpisodeDataset

    episodes = load_episodes(data, model.action_config.num_images_in_input)
    stats = compute_statistics(episodes)
    model.norm_stats = {'sim_cubes': stats}
    checkpoint = tiny_checkpoint('l1')
    return EpisodeDataset(episodes, stats, PromptTokenizer.from_checkpoint(checkpoint),
                          ImagePreprocessor.from_checkpoint(checkpoint), 8)


def test_fine_tuned_factory_checkpoint_round_trips_exactly(tmp_path, episodes_at):
    """A few steps on the tiny factory checkpoint (2 images, 224 px), saved and reloaded."""
    model = load_openvla(tiny_checkpoint('l1'))
    dataset = _small_dataset(model, episodes_at(tmp_path / 'data', 2, 224, wrist=True))
    before = model.action_head.model.fc2.weight.detach().clone()
    embeddings = model.language_model.model.embed_tokens.weight.detach().clone()
    trainer.train(model, dataset, trainer.TrainConfig(steps=3, batch_size=2, seed=1))
    assert not torch.equal(before, model.action_head.model.fc2.weight)
    assert torch.equal(embeddings, model.language_model.model.embed_tokens.weight)  # frozen
    batch = dataset.batch([0, 4])
    inputs = {'input_ids': batch['prompt_ids'][:1, :int(batch['prompt_lengths'][0])],
              'pixel_values': batch['pixel_values'][:1], 'proprio': batch['proprio'][:1]}

    exact = export.save_pretrained(model, tmp_path / 'fp32', step=3, dtype=None,
                                   copy_from=tiny_checkpoint('l1'))
    loaded = load_openvla(exact)
    state, reloaded = model.state_dict(), loaded.state_dict()
    assert set(state) == set(reloaded)
    assert all(torch.equal(state[key], reloaded[key]) for key in state)
    assert torch.equal(loaded.predict_action(**inputs).normalized_actions,
                       model.predict_action(**inputs).normalized_actions)

    bf16 = load_openvla(export.save_pretrained(model, tmp_path / 'bf16', step=3,
                                               copy_from=tiny_checkpoint('l1')))
    rounded = {key: value.to(torch.bfloat16).float() for key, value in state.items()}
    assert all(torch.equal(rounded[key], value) for key, value in bf16.state_dict().items())
    policy = OpenVLAPolicy.from_pretrained(tmp_path / 'bf16', device='cpu')
    assert policy.spec.num_images == 2 and policy.spec.unnorm_key == 'sim_cubes'


def test_diffusion_head_trains_and_saves(tmp_path, episodes_at):
    action_config = architectures.scratch_action_config(head_type='diffusion')
    model = architectures.build_scratch_model('test-tiny', action_config, seed=0)
    from openvla_ros.processing import default_preprocessor_config, ImagePreprocessor
    from openvla_ros.training.episodes import EpisodeDataset

    episodes = load_episodes(episodes_at(tmp_path / 'data', 2, 112))
    stats = compute_statistics(episodes)
    model.norm_stats = {'sim_cubes': stats}
    tokenizer_dir = tmp_path / 'tok'
    from openvla_ros.model.testing.tokenizer import write_tiny_llama_tokenizer
    from openvla_ros.processing import PromptTokenizer

    write_tiny_llama_tokenizer(tokenizer_dir, INSTRUCTIONS)
    dataset = EpisodeDataset(episodes, stats, PromptTokenizer.from_checkpoint(tokenizer_dir),
                             ImagePreprocessor.from_config(default_preprocessor_config(112)), 8)
    history = trainer.train(model, dataset, trainer.TrainConfig(
        steps=3, batch_size=2, objective='diffusion', seed=0))
    assert [record.objective for record in history] == ['diffusion'] * 3
    directory = export.save_pretrained(model, tmp_path / 'ckpt', copy_from=tokenizer_dir)
    policy = OpenVLAPolicy.from_pretrained(directory, device='cpu', num_diffusion_steps=5)
    assert policy.spec.head_type == 'diffusion'
    chunk = policy.predict([episodes[0].images[0][0]], INSTRUCTIONS[0],
                           proprio=episodes[0].proprio[0])
    assert np.isfinite(chunk.actions).all()


def test_no_proprio_model_trains_and_predicts_from_images_and_language(tmp_path, episodes_at):
    data = episodes_at(tmp_path / 'data', 2, 112)
    output = tmp_path / 'run'
    assert cli.main(['--data', str(data), '--output', str(output), '--architecture',
                     'test-tiny', '--no-proprio', '--steps', '2', '--batch-size', '2',
                     '--threads', '2', '--no-progress']) == 0
    checkpoint = output / 'checkpoint'
    assert not list(checkpoint.glob('proprio_projector--*'))  # as a released no-proprio model
    policy = OpenVLAPolicy.from_pretrained(checkpoint, device='cpu')
    assert policy.spec.proprio_dim is None
    episode = load_episodes(data)[0]
    chunk = policy.predict([episode.images[0][0]], episode.instruction)
    assert chunk.actions.shape == (8, 7) and np.isfinite(chunk.actions).all()


def test_oversampling_draws_episode_starts_first_then_every_step(tmp_path, episodes_at,
                                                                 monkeypatch):
    """--oversample-*: the first K steps draw only chunks starting at step 0, then uniform."""
    data = episodes_at(tmp_path / 'data', 2, 112)  # 12 steps each: chunk starts 0..4
    drawn = []
    batch = trainer.EpisodeDataset.batch

    def recording_batch(dataset, indices):
        drawn.append(dataset.chunk_starts[list(indices)].tolist())
        return batch(dataset, indices)

    monkeypatch.setattr(trainer.EpisodeDataset, 'batch', recording_batch)
    assert cli.main(['--data', str(data), '--output', str(tmp_path / 'run'), '--architecture',
                     'test-tiny', '--steps', '8', '--batch-size', '4', '--threads', '2',
                     '--oversample-first', '1', '--oversample-factor', '1e9',
                     '--oversample-steps', '4', '--no-progress']) == 0
    assert drawn[:4] == [[0, 0, 0, 0]] * 4
    later = [start for starts in drawn[4:8] for start in starts]
    assert sorted(later[:10]) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]  # an epoch: every sample once
