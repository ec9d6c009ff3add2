"""`openvla-sim-collect` writes the contract's npz format, READY last, reproducibly."""

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip('mujoco', reason='mujoco is not installed (tools/setup_venv.sh)')

from openvla_ros.sim.collect import main  # noqa: E402
from openvla_ros.sim.env import CubesEnv, sample_task  # noqa: E402
from openvla_ros.sim.episodes import read_episode  # noqa: E402

KEYS = {'image_primary', 'proprio', 'actions', 'instruction', 'success', 'seed'}


def test_collector_writes_the_contract_format(tmp_path):
    assert main(['--episodes', '3', '--seed', '40', '--out', str(tmp_path)]) == 0
    files = sorted(tmp_path.glob('episode_*.npz'))
    assert [f.name for f in files] == [f'episode_{i:06d}.npz' for i in range(3)]
    assert (tmp_path / 'READY').exists()
    for index, path in enumerate(files):
        with np.load(path, allow_pickle=False) as data:
            assert set(data.files) == KEYS
            steps = data['actions'].shape[0]
            assert data['image_primary'].dtype == np.uint8
            assert data['image_primary'].shape == (steps, 112, 112, 3)
            assert data['proprio'].dtype == np.float32 and data['proprio'].shape == (steps, 8)
            assert data['actions'].dtype == np.float32 and data['actions'].shape == (steps, 7)
            assert data['instruction'].shape == () and data['instruction'].dtype.kind == 'U'
            assert data['success'].dtype == np.bool_ and bool(data['success'])
            assert data['seed'].dtype == np.int64 and int(data['seed']) == 40 + index
            assert str(data['instruction']) == sample_task(40 + index).instruction
        read_episode(path)   # the loader's own checks agree


def test_episode_reproduces_from_its_seed(tmp_path):
    main(['--episodes', '1', '--seed', '77', '--out', str(tmp_path)])
    episode = read_episode(tmp_path / 'episode_000000.npz')
    env = CubesEnv()
    env.reset(episode.seed)
    np.testing.assert_array_equal(env.render(), episode.image_primary[0])
    np.testing.assert_allclose(env.proprio(), episode.proprio[0])
    env.close()


def test_first_frame_and_proprio_belong_to_step_zero(tmp_path):
    """Frame t and proprio t are what the expert saw before taking action t."""
    main(['--episodes', '1', '--seed', '78', '--out', str(tmp_path), '--no-noise'])
    episode = read_episode(tmp_path / 'episode_000000.npz')
    env = CubesEnv()
    env.reset(78)
    for t in range(3):
        np.testing.assert_allclose(env.proprio(), episode.proprio[t], atol=1e-6)
        env.step(episode.actions[t])
    env.close()


def test_read_episode_rejects_a_wrong_file(tmp_path):
    path = tmp_path / 'episode_000000.npz'
    np.savez_compressed(path, image_primary=np.zeros((2, 112, 112, 3), np.uint8),
                        proprio=np.zeros((2, 7), np.float32),
                        actions=np.zeros((2, 7), np.float32), instruction=np.array('x'),
                        success=np.array(True), seed=np.array(1, np.int64))
    with pytest.raises(ValueError, match='proprio'):
        read_episode(path)


def test_cli_rejects_bad_arguments(tmp_path):
    result = subprocess.run([sys.executable, '-m', 'openvla_ros.sim.collect', '--episodes', '0',
                             '--out', str(tmp_path)], capture_output=True, text=True)
    assert result.returncode != 0 and '--episodes' in result.stderr
