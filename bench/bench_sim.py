"""Speed of the MuJoCo tabletop: physics step, 112 px render, and expert-episode collection.

Run:  .venv/bin/python bench/bench_sim.py [--episodes 100]
Prints the numbers docs/SIM.md quotes (control steps/s without and with rendering, collection
episodes/s including np.savez_compressed) and the expert's success rate over the episodes.
"""

import argparse
import os
import pathlib
import platform
import sys
import tempfile
import time

os.environ.setdefault('MUJOCO_GL', 'egl')
REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # this checkout's openvla_ros, not an installed one

import numpy as np  # noqa: E402

from openvla_ros.sim.collect import collect  # noqa: E402
from openvla_ros.sim.env import CubesEnv  # noqa: E402
from openvla_ros.sim.rollout import expert_episode  # noqa: E402


def _steps_per_second(env, render: bool, steps: int = 400) -> float:
    env.reset(0)
    action = np.zeros(7)
    action[6] = 1.0
    start = time.perf_counter()
    for i in range(steps):
        action[:2] = 0.3 * np.sin(i / 5), 0.3 * np.cos(i / 5)
        env.step(action)
        if render:
            env.render()
        if i % 40 == 39:
            env.reset(i)
    return steps / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--episodes', type=int, default=100)
    args = parser.parse_args()
    print(f'{platform.processor() or platform.machine()}, {os.cpu_count()} cores, '
          f'MUJOCO_GL={os.environ["MUJOCO_GL"]}')
    env = CubesEnv()
    print(f'control steps/s, physics only (25 substeps of 2 ms): '
          f'{_steps_per_second(env, render=False):.0f}')
    print(f'control steps/s, physics + 112 px render: {_steps_per_second(env, render=True):.0f}')
    start = time.perf_counter()
    results = [expert_episode(env, 10_000 + i, record_images=False) for i in range(args.episodes)]
    elapsed = time.perf_counter() - start
    wins = sum(r.success for r in results)
    lengths = [len(r.actions) for r in results]
    print(f'noisy expert: {wins}/{len(results)} successes, episode length mean '
          f'{np.mean(lengths):.1f} max {max(lengths)} steps ({len(results) / elapsed:.1f} '
          f'episodes/s without images)')
    env.close()
    with tempfile.TemporaryDirectory() as directory:
        stats = collect(pathlib.Path(directory), args.episodes, 20_000, log=lambda _: None)
    print(f'collection incl. rendering and np.savez_compressed: '
          f'{stats["written"] / stats["seconds"]:.1f} episodes/s, '
          f'{stats["steps"] / stats["seconds"]:.0f} steps/s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
