"""Expert episodes -> OFT training samples, with upstream's statistics and chunking.

Episode files (`episode_NNNNNN.npz`, the sim contract): `image_primary` uint8 (T, H, W, 3),
`proprio` float32 (T, S), `actions` float32 (T, A), `instruction` 0-d str, optional `success`
and `seed`. Extra cameras: `image_wrist` (T, H, W, 3) when a model takes two images.

As upstream (OPENVLA_OFT_REFERENCE.md; prismatic/vla/datasets/rlds):

* statistics (`dataset_statistics.json`, one key per dataset): mean / std / max / min / q01 / q99
  of all actions and proprio, `num_transitions`, `num_trajectories`; the action `mask` marks the
  normalized dimensions (LIBERO: all but the gripper);
* normalization `bounds_q99`: clip(2 (x - q01) / (q99 - q01 + 1e-8) - 1, -1, 1) on masked dims,
  0 where min == max;
* chunking (`chunk_act_obs` with `future_action_window_size = H - 1`): step t yields actions
  t .. t+H-1; the last H - 1 steps of an episode yield no sample, so no chunk runs past the end.

Images are preprocessed once per frame exactly as inference does (`ImagePreprocessor.prepare`:
resize if needed, 0.9-area centre crop) and cached as uint8; batches are normalized with
`ImagePreprocessor.normalize`.
"""

import dataclasses
import pathlib
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from openvla_ros.normalization import (
    ArrayStats, DatasetStats, NormalizationType, normalize_proprio, RANGE_EPSILON)
from openvla_ros.processing import ImagePreprocessor, PromptTokenizer
from openvla_ros.training.objectives import pad_prompts, prompt_with_empty_piece

EPISODE_GLOB = 'episode_*.npz'
IMAGE_KEYS = ('image_primary', 'image_wrist')


@dataclasses.dataclass
class Episode:
    """One expert episode as stored (T steps)."""

    images: List[np.ndarray]  # per camera: uint8 (T, H, W, 3)
    proprio: np.ndarray       # float32 (T, S)
    actions: np.ndarray       # float32 (T, A)
    instruction: str
    success: Optional[bool] = None
    seed: Optional[int] = None

    @property
    def length(self) -> int:
        return int(self.actions.shape[0])


def episode_paths(directory) -> List[pathlib.Path]:
    """Sorted episode files of a directory (error if there are none)."""
    directory = pathlib.Path(directory)
    paths = sorted(directory.glob(EPISODE_GLOB))
    if not paths:
        raise FileNotFoundError(f'{directory}: no {EPISODE_GLOB} files')
    return paths


def load_episode(path, num_images: int = 1) -> Episode:
    """Read one episode file; shapes are checked and errors name the file."""
    path = pathlib.Path(path)
    with np.load(path, allow_pickle=False) as data:
        try:
            images = [np.asarray(data[key]) for key in IMAGE_KEYS[:num_images]]
            proprio = np.asarray(data['proprio'], dtype=np.float32)
            actions = np.asarray(data['actions'], dtype=np.float32)
            instruction = str(data['instruction'])
        except KeyError as error:
            raise ValueError(f'{path}: missing array {error}') from None
        success = bool(data['success']) if 'success' in data else None
        seed = int(data['seed']) if 'seed' in data else None
    steps = actions.shape[0]
    if actions.ndim != 2 or proprio.ndim != 2 or proprio.shape[0] != steps:
        raise ValueError(f'{path}: expected actions (T, A) and proprio (T, S), got '
                         f'{actions.shape} and {proprio.shape}')
    for image in images:
        if image.dtype != np.uint8 or image.ndim != 4 or image.shape[0] != steps \
                or image.shape[3] != 3:
            raise ValueError(f'{path}: expected uint8 images ({steps}, H, W, 3), got '
                             f'{image.dtype} {image.shape}')
    return Episode(images, proprio, actions, instruction, success, seed)


def load_episodes(directory, num_images: int = 1) -> List[Episode]:
    return [load_episode(path, num_images) for path in episode_paths(directory)]


def _array_stats(values: np.ndarray, mask=None) -> ArrayStats:
    return ArrayStats(mean=values.mean(0), std=values.std(0), max=values.max(0),
                      min=values.min(0), q01=np.quantile(values, 0.01, axis=0),
                      q99=np.quantile(values, 0.99, axis=0), mask=mask)


def compute_statistics(episodes: Sequence[Episode], action_mask=None) -> DatasetStats:
    """Upstream's `get_dataset_statistics` over every step (float32 data, as upstream reads it).

    `action_mask`: normalized action dims (None: all but the last, the LIBERO gripper rule).
    """
    actions = np.concatenate([episode.actions for episode in episodes])  # (N, A)
    proprio = np.concatenate([episode.proprio for episode in episodes])  # (N, S)
    if action_mask is None:
        action_mask = [True] * (actions.shape[1] - 1) + [False]
    return DatasetStats(action=_array_stats(actions, np.array(action_mask, dtype=bool)),
                        proprio=_array_stats(proprio), num_transitions=int(actions.shape[0]),
                        num_trajectories=len(episodes))


def normalize_actions(actions: np.ndarray, stats: ArrayStats,
                      norm_type=NormalizationType.BOUNDS_Q99) -> np.ndarray:
    """Upstream's training-time action normalization (float32 result, see module docstring)."""
    low, high = stats.bounds(norm_type)
    actions = np.asarray(actions, dtype=np.float64)
    normalized = np.clip(2 * (actions - low) / (high - low + RANGE_EPSILON) - 1, -1, 1)
    normalized = np.where(stats.min == stats.max, 0.0, normalized)
    return np.where(stats.effective_mask, normalized, actions).astype(np.float32)


def chunk_starts(length: int, chunk_len: int) -> range:
    """Return the steps that yield a training sample: 0 .. T - H (none if T < H)."""
    return range(max(length - chunk_len + 1, 0))


class EpisodeDataset:
    """All samples of a set of episodes, ready to batch.

    `batch(indices)` returns a dict with 'prompt_ids' (B, Lp) right-padded, 'prompt_lengths'
    (B,), 'pixel_values' (B, 3 K N, S, S), 'proprio' (B, S) normalized (or None), 'actions'
    (B, H, A) normalized chunks; `instructions` lists each sample's instruction.
    """

    def __init__(self, episodes: Sequence[Episode], stats: DatasetStats,
                 tokenizer: PromptTokenizer, preprocessor: ImagePreprocessor, chunk_len: int,
                 norm_type=NormalizationType.BOUNDS_Q99, use_proprio: bool = True,
                 pad_token_id: int = 32000):
        if not episodes:
            raise ValueError('expected at least one episode, got none')
        self.preprocessor = preprocessor
        self.chunk_len = chunk_len
        self.pad_token_id = pad_token_id
        self.use_proprio = use_proprio
        frames, proprio, actions = [], [], []
        self._samples = []  # (frame index, first action row) per sample
        starts = []  # per sample: the episode step its chunk starts at
        self._instruction_of_sample = []
        self.instructions = []
        prompts: Dict[str, List[int]] = {}
        frame_offset = action_offset = 0
        for episode in episodes:
            prepared = [np.stack([preprocessor.prepare(frame) for frame in camera])
                        for camera in episode.images]  # per camera (T, S, S, 3)
            frames.append(np.stack(prepared, axis=1))  # (T, N, S, S, 3)
            proprio.append(normalize_proprio(episode.proprio, stats.proprio, norm_type)
                           if use_proprio else np.zeros_like(episode.proprio))
            actions.append(normalize_actions(episode.actions, stats.action, norm_type))
            if episode.instruction not in prompts:
                prompts[episode.instruction] = prompt_with_empty_piece(
                    tokenizer.encode(episode.instruction))
            for start in chunk_starts(episode.length, chunk_len):
                self._samples.append((frame_offset + start, action_offset + start))
                starts.append(start)
                self.instructions.append(episode.instruction)
            frame_offset += episode.length
            action_offset += episode.length
        if not self._samples:
            raise ValueError(f'every episode is shorter than the chunk length {chunk_len}')
        self._frames = torch.from_numpy(np.concatenate(frames))  # (F, N, S, S, 3) uint8
        self._proprio = torch.from_numpy(np.concatenate(proprio).astype(np.float32))  # (F, S)
        self._actions = torch.from_numpy(np.concatenate(actions))  # (F, A)
        self._prompts = prompts
        self.chunk_starts = np.array(starts, dtype=np.int64)  # (num samples,)

    def __len__(self) -> int:
        return len(self._samples)

    def batch(self, indices: Sequence[int]) -> dict:
        frame_rows = torch.tensor([self._samples[i][0] for i in indices])
        action_rows = torch.tensor([self._samples[i][1] for i in indices])
        chunk_rows = action_rows[:, None] + torch.arange(self.chunk_len)[None, :]  # (B, H)
        prompt_ids, lengths = pad_prompts([self._prompts[self.instructions[i]] for i in indices],
                                          self.pad_token_id)
        return {
            'prompt_ids': prompt_ids,
            'prompt_lengths': lengths,
            'pixel_values': self.preprocessor.normalize(self._frames[frame_rows]),
            'proprio': self._proprio[frame_rows] if self.use_proprio else None,
            'actions': self._actions[chunk_rows],  # (B, H, A)
        }
