"""Synthetic expert episodes in the sim contract's npz format (docs: SIM_CONTRACT)."""

import numpy as np
import pytest

INSTRUCTIONS = ('pick up the red cube', 'grab the blue cube')


def _write_episode(path, length, instruction, seed, size=112):
    """One episode file exactly as the sim contract specifies."""
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, (length, 7)).astype(np.float32)
    actions[:, 3:6] *= 0.1
    actions[:, 5] = 0.0  # a constant dimension (min == max)
    actions[:, 6] = (np.arange(length) < length // 2).astype(np.float32)  # 1 open, 0 close
    np.savez_compressed(
        path, image_primary=rng.integers(0, 256, (length, size, size, 3), dtype=np.uint8),
        proprio=rng.normal(0, 0.1, (length, 8)).astype(np.float32), actions=actions,
        instruction=np.array(instruction), success=np.array(True),
        seed=np.array(seed, dtype=np.int64))
    return path


@pytest.fixture(scope='session')
def write_episode():
    """Return the episode writer: (path, length, instruction, seed, size=112) -> path."""
    return _write_episode
