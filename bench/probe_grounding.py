"""Does a simulation policy follow the colour word? First actions on fresh held-out scenes.

For each seed (`sim.env.sample_task`): render the first frame, ask the policy for its first
action with the episode's own instruction and with the colour word swapped, and compare the
sideways component (y) with the named and with the other cube's offset from the gripper. The
gripper starts on the camera side of both cubes, so x says little; y is where the colour word
has to decide (docs/SIM.md, issue 8).

Printed per instruction variant: correlation of the predicted y with the named / the other
cube's dy, and how often its sign points at the named / the other cube (over |dy| > 2 cm).
A policy that follows the word points at the named cube with its own instruction and at the
other one with the swapped word; one that ignores it scores about 0.5 on all signs.

Run:  .venv/bin/python bench/probe_grounding.py --checkpoint DIR [--episodes 200]
          [--seed 1000000] [--no-center-crop]
"""

import argparse
import os
import pathlib
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # this checkout's openvla_ros, not an installed one
os.environ.setdefault('MUJOCO_GL', 'egl')

MIN_OFFSET_M = 0.02  # sign agreement only where the cube is clearly to one side


def first_scenes(count: int, seed: int, layout: str):
    """Yield (image, proprio, instruction, named dy, other dy) of the first frame per seed."""
    from openvla_ros.sim.env import CubesEnv
    from openvla_ros.sim.language import other_colour

    env = CubesEnv(layout=layout)
    try:
        for episode_seed in range(seed, seed + count):
            env.reset(episode_seed)
            proprio = env.proprio()
            other = other_colour(env.task.colour)
            yield (env.render(), proprio, env.task.instruction,
                   float(env.cube_pos(env.task.colour)[1] - proprio[1]),
                   float(env.cube_pos(other)[1] - proprio[1]))
    finally:
        env.close()


def agreement(predicted_y, offsets):
    """Return (correlation, sign agreement over |offset| > MIN_OFFSET_M) of y with offsets."""
    import numpy as np

    predicted_y, offsets = np.asarray(predicted_y), np.asarray(offsets)
    clear = np.abs(offsets) > MIN_OFFSET_M
    correlation = float(np.corrcoef(predicted_y, offsets)[0, 1]) \
        if predicted_y.std() > 0 else 0.0
    return correlation, float(np.mean(np.sign(predicted_y[clear]) == np.sign(offsets[clear])))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--checkpoint', required=True)
    parser.add_argument('--episodes', type=int, default=200)
    parser.add_argument('--seed', type=int, default=1_000_000, help='first env seed (held out)')
    parser.add_argument('--layout', default='random', choices=('random', 'slots'))
    parser.add_argument('--no-center-crop', action='store_true')
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args(argv)
    import torch

    from openvla_ros.policy import OpenVLAPolicy
    from openvla_ros.sim.language import swap_colour

    torch.set_num_threads(args.threads)
    policy = OpenVLAPolicy.from_pretrained(args.checkpoint, device='cpu',
                                           center_crop=not args.no_center_crop)
    rows = {'own': [], 'swapped': []}
    named, other = [], []
    for image, proprio, instruction, named_dy, other_dy in first_scenes(
            args.episodes, args.seed, args.layout):
        proprio = proprio if policy.spec.proprio_dim else None
        for key, text in (('own', instruction), ('swapped', swap_colour(instruction))):
            rows[key].append(float(policy.predict([image], text, proprio=proprio).actions[0, 1]))
        named.append(named_dy)
        other.append(other_dy)
    print(f'{args.checkpoint}: first action y over {args.episodes} held-out first frames '
          f'(seeds {args.seed}..)')
    print(f'{"instruction":<12} {"corr named":>10} {"corr other":>10} {"sign named":>10} '
          f'{"sign other":>10}')
    for key, predicted in rows.items():
        (c_named, s_named), (c_other, s_other) = agreement(predicted, named), \
            agreement(predicted, other)
        print(f'{key:<12} {c_named:>10.3f} {c_other:>10.3f} {s_named:>10.3f} {s_other:>10.3f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
