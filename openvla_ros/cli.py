r"""`openvla-predict`: run one checkpoint on image files and print the action chunk as JSON.

Useful to check a checkpoint (and its statistics) before a robot moves::

    openvla-predict --checkpoint DIR --image third_person.png --image wrist.png \\
        --instruction 'put the bowl on the plate' --proprio 0.1,0.2,... --device cpu
"""

import argparse
import json
import sys

import numpy as np


def _parse_floats(text: str) -> np.ndarray:
    try:
        return np.array([float(v) for v in text.split(',') if v.strip()], dtype=np.float64)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f'expected comma-separated numbers, got {text!r}') \
            from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='openvla-predict',
        description='Predict one OpenVLA-OFT action chunk and print it as JSON.')
    parser.add_argument('--checkpoint', required=True, help='checkpoint directory (hub layout)')
    parser.add_argument('--image', action='append', required=True, metavar='PATH',
                        help='RGB image file; repeat in camera order (primary first)')
    parser.add_argument('--instruction', required=True, help='task, e.g. "pick up the bowl"')
    parser.add_argument('--proprio', type=_parse_floats, default=None,
                        help='raw state vector, comma-separated')
    parser.add_argument('--device', default='auto', help="'cuda', 'cpu' or 'auto' (default)")
    parser.add_argument('--unnorm-key', default=None, help='dataset in dataset_statistics.json')
    parser.add_argument('--platform', default=None, choices=['libero', 'aloha', 'bridge'])
    parser.add_argument('--num-diffusion-steps', type=int, default=None)
    parser.add_argument('--no-center-crop', action='store_true',
                        help='skip the 0.9-area center crop (only for checkpoints trained so)')
    parser.add_argument('--seed', type=int, default=0, help='torch seed (diffusion noise)')
    return parser


def _load_image(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert('RGB'), dtype=np.uint8)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    # Heavy imports after argument parsing so --help is instant.
    import torch

    from openvla_ros.policy import OpenVLAPolicy

    try:
        images = [_load_image(p) for p in args.image]
    except OSError as exc:
        print(f'openvla-predict: cannot read image: {exc}', file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)
    try:
        policy = OpenVLAPolicy.from_pretrained(
            args.checkpoint, device=args.device, unnorm_key=args.unnorm_key,
            platform=args.platform,
            center_crop=not args.no_center_crop, num_diffusion_steps=args.num_diffusion_steps)
        chunk = policy.predict(images, args.instruction, proprio=args.proprio)
    except (ValueError, RuntimeError) as exc:  # CheckpointError, PolicyInputError: ValueError
        print(f'openvla-predict: {exc}', file=sys.stderr)
        return 2
    json.dump({
        'actions': chunk.actions.tolist(),
        'normalized_actions': chunk.normalized_actions.tolist(),
        'timings_s': chunk.timings,
        'spec': policy.spec.as_dict(),
    }, sys.stdout, indent=1)
    sys.stdout.write('\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
