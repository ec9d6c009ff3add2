"""Open-loop evaluation of a trained checkpoint on held-out expert episodes.

Reports the mean |predicted - expert| of normalized action chunks (upstream's L1 metric) per
action dimension, with the episodes' own instructions and with the colour words swapped (red <->
blue): a policy that uses the language gets much worse with the wrong colour. Also the share of
samples whose first predicted EEF xy step points the same way as the expert's (cosine > 0),
counted where the expert moves in xy (|xy| > 0.2 normalized).

Run:  .venv/bin/python bench/eval_open_loop.py --checkpoint DIR --data HELDOUT_DIR \
          [--no-center-crop] [--json OUT]
"""

import argparse
import json
import pathlib
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # this checkout's openvla_ros, not an installed one


def evaluate(model, dataset, batch_size=64):
    import numpy as np
    import torch

    from openvla_ros.training.objectives import predict_chunks

    errors, agree, moving = [], 0, 0
    with torch.no_grad():
        for begin in range(0, len(dataset), batch_size):
            batch = dataset.batch(list(range(begin, min(begin + batch_size, len(dataset)))))
            predicted = predict_chunks(model, batch['prompt_ids'], batch['prompt_lengths'],
                                       batch['pixel_values'], batch['proprio']).float()
            errors.append((predicted - batch['actions']).abs().mean(dim=1).numpy())  # (B, A)
            expert_xy, predicted_xy = batch['actions'][:, 0, :2], predicted[:, 0, :2]
            mask = expert_xy.norm(dim=1) > 0.2
            cosine = torch.nn.functional.cosine_similarity(expert_xy, predicted_xy, dim=1)
            agree += int((cosine[mask] > 0).sum())
            moving += int(mask.sum())
    per_dim = np.concatenate(errors).mean(axis=0)
    return {'l1': float(per_dim.mean()), 'per_dim': [round(float(v), 4) for v in per_dim],
            'xy_direction_agreement': agree / max(moving, 1), 'moving_samples': moving,
            'samples': len(dataset)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--checkpoint', required=True)
    parser.add_argument('--data', required=True, help='held-out episode directory')
    parser.add_argument('--json', default=None, help='also write the results here')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--no-center-crop', action='store_true',
                        help='for checkpoints trained with openvla-train --no-center-crop')
    args = parser.parse_args(argv)
    import torch

    from openvla_ros.model.checkpoint import load_openvla
    from openvla_ros.processing import ImagePreprocessor, PromptTokenizer
    from openvla_ros.sim.language import swap_colour
    from openvla_ros.training.episodes import EpisodeDataset, load_episodes

    torch.set_num_threads(args.threads)
    model = load_openvla(args.checkpoint)
    (stats,) = model.norm_stats.values()
    cfg = model.action_config
    episodes = load_episodes(args.data, cfg.num_images_in_input)
    tokenizer = PromptTokenizer.from_checkpoint(args.checkpoint)
    preprocessor = ImagePreprocessor.from_checkpoint(args.checkpoint,
                                                     center_crop=not args.no_center_crop)

    def dataset(items):
        return EpisodeDataset(items, stats, tokenizer, preprocessor, cfg.chunk_len,
                              cfg.normalization_type, cfg.use_proprio, model.config.pad_token_id)

    results = {'checkpoint': str(args.checkpoint), 'data': str(args.data),
               'episodes': len(episodes), 'own_instruction': evaluate(model, dataset(episodes))}
    for episode in episodes:
        episode.instruction = swap_colour(episode.instruction)
    results['swapped_colour'] = evaluate(model, dataset(episodes))
    text = json.dumps(results, indent=1)
    print(text)
    if args.json:
        pathlib.Path(args.json).write_text(text + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
