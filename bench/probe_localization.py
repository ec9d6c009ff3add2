"""Probes that show where a simulation policy loses the cubes' positions (issue 8).

Three numbers per checkpoint, on the first frame of every episode (cube positions come from the
episode's seed, `sim.env.sample_task`):

* `patches`: ridge regression from the projected patch tokens (what the Llama receives) to the
  named cube's xy offset from the gripper and to the red and the blue cube's y, fitted on
  --train-data, correlation on --data;
* `slots`: the same from the action-slot hidden states (what the action head receives);
* `policy`: correlation of the predicted first action's y / x with the expert's, at every 4th
  step of the held-out episodes.

A policy that localizes has high numbers in all three; the shipped one has them only for
`patches` (see docs/SIM.md).

Run:  .venv/bin/python bench/probe_localization.py --checkpoint DIR \
          --train-data TRAIN_DIR --data HELDOUT_DIR [--layout random|slots]
"""

import argparse
import pathlib
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # this checkout's openvla_ros, not an installed one


def first_frames(path, model, tokenizer, preprocessor, layout):
    """Dataset rows of each episode's first frame; targets (named dy, named dx, red y, blue y)."""
    import numpy as np

    from openvla_ros.sim.env import sample_task
    from openvla_ros.training import episodes as ep

    items = ep.load_episodes(path, model.action_config.num_images_in_input)
    stats = next(iter(model.norm_stats.values()))  # the checkpoint's, as at training time
    dataset = ep.EpisodeDataset(items, stats, tokenizer, preprocessor,
                                model.action_config.chunk_len,
                                use_proprio=model.action_config.use_proprio)
    seeds = [int(np.load(f)['seed']) for f in sorted(pathlib.Path(path).glob('episode_*.npz'))]
    rows, offsets, start = [], [], 0
    for episode, seed in zip(items, seeds):
        task = sample_task(seed, layout)
        cube = task.cube_xy[task.colour]
        rows.append(start)
        offsets.append([cube[1] - episode.proprio[0][1], cube[0] - episode.proprio[0][0],
                        task.cube_xy['red'][1], task.cube_xy['blue'][1]])
        start += len(ep.chunk_starts(episode.length, dataset.chunk_len))
    return dataset, rows, np.array(offsets)


def features(model, dataset, rows):
    """(patch tokens, action-slot hidden states, normalized first actions), flattened."""
    import torch

    from openvla_ros.training.objectives import action_hidden_states

    patches, slots, first = [], [], []
    vision_tokens = model.vision_tokens  # record what action_hidden_states feeds the Llama
    model.vision_tokens = lambda *args: patches.append(vision_tokens(*args)) or patches[-1]
    try:
        with torch.no_grad():
            for begin in range(0, len(rows), 50):
                batch = dataset.batch(rows[begin:begin + 50])
                hidden = action_hidden_states(model, batch['prompt_ids'],
                                              batch['prompt_lengths'], batch['pixel_values'],
                                              batch['proprio'])
                slots.append(hidden)
                first.append(model.action_head.predict_action(hidden)[:, 0])
    finally:
        del model.vision_tokens
    patches = [p.flatten(1) for p in patches]
    slots = [h.flatten(1) for h in slots]
    return [torch.cat(x).float().numpy() for x in (patches, slots, first)]


def ridge_correlation(train_x, train_y, test_x, test_y, penalty=100.0):
    """Kernel ridge (linear kernel) on standardized features; correlation per target column."""
    import numpy as np

    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    gram = train_x @ train_x.T
    coef = np.linalg.solve(gram + penalty * np.eye(len(gram)), train_y - train_y.mean(0))
    predicted = test_x @ train_x.T @ coef + train_y.mean(0)
    return [float(np.corrcoef(predicted[:, k], test_y[:, k])[0, 1])
            for k in range(test_y.shape[1])]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--checkpoint', required=True)
    parser.add_argument('--train-data', required=True, help='episodes to fit the probes on')
    parser.add_argument('--data', required=True, help='held-out episodes')
    parser.add_argument('--layout', default='random', choices=('random', 'slots'))
    parser.add_argument('--no-center-crop', action='store_true')
    args = parser.parse_args(argv)
    import numpy as np
    import torch

    from openvla_ros.model.checkpoint import load_openvla
    from openvla_ros.processing import ImagePreprocessor, PromptTokenizer

    torch.set_num_threads(1)
    model = load_openvla(args.checkpoint, device='cpu', dtype=torch.float32).eval()
    tokenizer = PromptTokenizer.from_checkpoint(args.checkpoint)
    preprocessor = ImagePreprocessor.from_checkpoint(args.checkpoint,
                                                     center_crop=not args.no_center_crop)
    train = first_frames(args.train_data, model, tokenizer, preprocessor, args.layout)
    test = first_frames(args.data, model, tokenizer, preprocessor, args.layout)
    train_feats = features(model, *train[:2])[:2]
    test_feats = features(model, *test[:2])[:2]
    print('probe      named dy  named dx  red y  blue y   (correlation on held-out first frames)')
    for name, k in (('patches', 0), ('slots', 1)):
        corr = ridge_correlation(train_feats[k], train[2], test_feats[k], test[2])
        print(f'{name:9s}' + ''.join(f'{c:9.2f}' for c in corr))
    dataset = test[0]
    rows = list(range(0, len(dataset), 4))
    predicted = features(model, dataset, rows)[2]
    expert = dataset.batch(rows)['actions'][:, 0].numpy()  # normalized, as the prediction
    corr = [float(np.corrcoef(predicted[:, k], expert[:, k])[0, 1]) for k in (1, 0)]
    print(f'policy    first action vs expert over {len(rows)} steps: y {corr[0]:.2f}  '
          f'x {corr[1]:.2f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
