"""`openvla-sim-collect`: record scripted-expert episodes in the contract's npz format.

    openvla-sim-collect --episodes 300 --seed 0 --out /work/data/sim_episodes/train

Episode i uses env seed `seed + i`; train and held-out sets must use disjoint seed ranges.
`READY` is written last. Failed expert episodes are kept out unless --keep-failures.
"""

import argparse
import pathlib
import sys
import time

from openvla_ros.sim.env import CubesEnv
from openvla_ros.sim.episodes import mark_ready, READY, write_episode
from openvla_ros.sim.rollout import expert_episode


def collect(out: pathlib.Path, episodes: int, seed: int, noise: bool = True,
            keep_failures: bool = False, log=print, layout: str = 'random') -> dict:
    """Write `episodes` successful episodes to `out`; return counts and timings."""
    out.mkdir(parents=True, exist_ok=True)
    (out / READY).unlink(missing_ok=True)
    env = CubesEnv(layout=layout)
    written, attempts, failures, steps = 0, 0, 0, 0
    start = time.monotonic()
    try:
        while written < episodes:
            episode_seed = seed + attempts
            attempts += 1
            episode = expert_episode(env, episode_seed, noise=noise)
            if not episode.success:
                failures += 1
                log(f'seed {episode_seed}: expert failed ({len(episode.actions)} steps)')
                if not keep_failures:
                    continue
            write_episode(out, written, episode)
            written += 1
            steps += len(episode.actions)
            if written % 10 == 0 or written == episodes:
                elapsed = time.monotonic() - start
                log(f'{written}/{episodes} episodes, {steps} steps, {elapsed:.1f} s '
                    f'({written / elapsed:.2f} episodes/s)')
    finally:
        env.close()
    mark_ready(out)
    elapsed = time.monotonic() - start
    return {'written': written, 'attempts': attempts, 'failures': failures, 'steps': steps,
            'seconds': elapsed}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--episodes', type=int, required=True)
    parser.add_argument('--seed', type=int, default=0, help='first env seed')
    parser.add_argument('--out', type=pathlib.Path, required=True)
    parser.add_argument('--no-noise', action='store_true', help='clean expert (no recoveries)')
    parser.add_argument('--keep-failures', action='store_true')
    parser.add_argument('--layout', choices=('random', 'slots'), default='random',
                        help="cube placement ('slots': the simpler fallback task)")
    args = parser.parse_args(argv)
    if args.episodes <= 0:
        parser.error('--episodes must be positive')
    stats = collect(args.out, args.episodes, args.seed, noise=not args.no_noise,
                    keep_failures=args.keep_failures, layout=args.layout)
    print(f"wrote {stats['written']} episodes ({stats['steps']} steps) to {args.out} in "
          f"{stats['seconds']:.1f} s: {stats['written'] / stats['seconds']:.2f} episodes/s, "
          f"{stats['steps'] / stats['seconds']:.0f} steps/s; expert success "
          f"{stats['attempts'] - stats['failures']}/{stats['attempts']}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
