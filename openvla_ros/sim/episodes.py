"""Expert episodes in the contract's npz format (one `episode_NNNNNN.npz` per episode).

Keys: image_primary uint8 (T, H, W, 3), proprio float32 (T, 8), actions float32 (T, 7),
instruction 0-d unicode, success 0-d bool, seed 0-d int64. A directory is complete when its
(empty) `READY` file exists; it is written last.
"""

import dataclasses
import pathlib
from typing import Dict

import numpy as np

READY = 'READY'


@dataclasses.dataclass
class Episode:
    """One recorded episode."""

    image_primary: np.ndarray
    proprio: np.ndarray
    actions: np.ndarray
    instruction: str
    success: bool
    seed: int

    def arrays(self) -> Dict[str, np.ndarray]:
        return {'image_primary': np.asarray(self.image_primary, dtype=np.uint8),
                'proprio': np.asarray(self.proprio, dtype=np.float32),
                'actions': np.asarray(self.actions, dtype=np.float32),
                'instruction': np.array(self.instruction),
                'success': np.array(bool(self.success)),
                'seed': np.array(int(self.seed), dtype=np.int64)}


def episode_path(directory, index: int) -> pathlib.Path:
    return pathlib.Path(directory) / f'episode_{index:06d}.npz'


def write_episode(directory, index: int, episode: Episode) -> pathlib.Path:
    path = episode_path(directory, index)
    np.savez_compressed(path, **episode.arrays())
    return path


def read_episode(path) -> Episode:
    """Load one file and check it against the contract (ValueError on any mismatch)."""
    with np.load(path, allow_pickle=False) as data:
        episode = Episode(data['image_primary'], data['proprio'], data['actions'],
                          str(data['instruction']), bool(data['success']), int(data['seed']))
    steps = len(episode.actions)
    checks = [
        (episode.image_primary.dtype == np.uint8 and episode.image_primary.ndim == 4
         and episode.image_primary.shape[0] == steps and episode.image_primary.shape[3] == 3,
         f'image_primary {episode.image_primary.dtype} {episode.image_primary.shape}'),
        (episode.proprio.dtype == np.float32 and episode.proprio.shape == (steps, 8),
         f'proprio {episode.proprio.dtype} {episode.proprio.shape}'),
        (episode.actions.dtype == np.float32 and episode.actions.shape == (steps, 7),
         f'actions {episode.actions.dtype} {episode.actions.shape}'),
        (steps > 0 and bool(np.all(np.abs(episode.actions[:, :6]) <= 1.0))
         and set(np.unique(episode.actions[:, 6])) <= {0.0, 1.0}, 'action range'),
    ]
    bad = [what for ok, what in checks if not ok]
    if bad:
        raise ValueError(f'{path}: not in the episode format: {", ".join(bad)}')
    return episode


def mark_ready(directory) -> None:
    (pathlib.Path(directory) / READY).touch()
