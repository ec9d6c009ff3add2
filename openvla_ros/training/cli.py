r"""`openvla-train`: fine-tune (or train from scratch) an OFT model on npz expert episodes.

    openvla-train --data /work/data/sim_episodes/train --output runs/sim \
        --architecture sim-small --steps 3000 --seed 0 --eval-data .../heldout

`--init CHECKPOINT` fine-tunes a released-layout checkpoint instead (same code, e.g. on a GPU
with `--device cuda --autocast-bf16`). Writes to `--output`: the final checkpoint in
`checkpoint/` (hub layout, bf16), `loss.png`, `train_log.json` (arguments, losses,
evaluations, wall time) and, with `--save-every`, interim checkpoints `step_NNNNNN/` (also
copied to `--publish-dir/<name>` with a READY file).
"""

import argparse
import json
import os
import pathlib
import sys
import time

FINAL_DIRNAME = 'checkpoint'


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='openvla-train', description='Train an OpenVLA-OFT action head on npz episodes.')
    parser.add_argument('--data', required=True, help='directory of episode_*.npz files')
    parser.add_argument('--output', required=True, help='output directory')
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument('--init', help='checkpoint directory to fine-tune')
    model.add_argument('--architecture', help='from-scratch size (sim-small, test-tiny)')
    parser.add_argument('--head', default='l1', choices=['l1', 'diffusion'],
                        help='action head of a from-scratch model (default l1)')
    parser.add_argument('--film', action='store_true',
                        help='FiLM: condition the ViTs on the instruction (OFT+; scratch)')
    parser.add_argument('--no-proprio', action='store_true',
                        help='no proprio input (scratch): images and language only')
    parser.add_argument('--platform', default='LIBERO', help='platform constants (scratch)')
    parser.add_argument('--num-images', type=int, default=1, help='cameras (scratch)')
    parser.add_argument('--dataset-name', default='sim_cubes',
                        help='key in dataset_statistics.json (default sim_cubes)')
    parser.add_argument('--steps', type=int, default=1000)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--lr', type=float, default=5e-4, help='peak learning rate')
    parser.add_argument('--weight-decay', type=float, default=0.0)
    parser.add_argument('--warmup-steps', type=int, default=0)
    parser.add_argument('--schedule', default='constant', choices=['constant', 'cosine'])
    parser.add_argument('--schedule-steps', type=int, default=None, metavar='N',
                        help='length of the cosine schedule (default: --steps); with more '
                             'than --steps the run stops part-way down it')
    parser.add_argument('--mse-fraction', type=float, default=0.0,
                        help='L1 head: fraction of steps trained with MSE first (default 0)')
    parser.add_argument('--oversample-first', type=int, default=0, metavar='N',
                        help='with --oversample-factor: weight samples whose chunk starts in '
                             'the first N steps of an episode')
    parser.add_argument('--oversample-factor', type=float, default=1.0, metavar='W',
                        help='draw those samples W times as often (default 1: uniform)')
    parser.add_argument('--oversample-steps', type=int, default=0, metavar='K',
                        help='oversample during the first K steps only, then uniform '
                             '(default 0: the whole run)')
    parser.add_argument('--grad-clip', type=float, default=1.0)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--autocast-bf16', action='store_true', help='bf16 autocast (CUDA)')
    parser.add_argument('--train-token-embeddings', action='store_true',
                        help='with --init: also train the token embeddings (from scratch: always)')
    parser.add_argument('--eval-data', default=None,
                        help='held-out episodes: open-loop L1 at each save and at the end')
    parser.add_argument('--eval-samples', type=int, default=512,
                        help='samples of --eval-data used at interim saves (all at the end)')
    parser.add_argument('--save-every', type=int, default=0, help='interim checkpoint period')
    parser.add_argument('--publish-dir', default=None,
                        help='also copy interim / final checkpoints here (<name>/ + READY)')
    parser.add_argument('--run-name', default='run', help='name prefix under --publish-dir')
    parser.add_argument('--save-dtype', default='bfloat16', choices=['bfloat16', 'float32'])
    parser.add_argument('--no-center-crop', action='store_true',
                        help='train on uncropped images (deploy with center_crop: false); '
                             'default: the 0.9-area centre crop inference applies by default')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    # OpenMP threads sleep instead of spinning at barriers: on a shared CPU, spinning threads
    # of an oversubscribed process cost more than they save. Must precede the torch import.
    os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    import torch
    from tqdm import tqdm

    from openvla_ros.model.checkpoint import load_openvla
    from openvla_ros.processing import ImagePreprocessor, PromptTokenizer
    from openvla_ros.training import architectures, episodes, export, plots, trainer

    started = time.monotonic()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    output = pathlib.Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    save_dtype = getattr(torch, args.save_dtype)

    if args.init:
        model = load_openvla(args.init, device=device, dtype=torch.float32)
    else:
        action_config = architectures.scratch_action_config(
            args.platform, args.head, args.num_images, use_proprio=not args.no_proprio,
            uses_film=args.film)
        model = architectures.build_scratch_model(args.architecture, action_config, args.seed)
        model.to(device)
    cfg = model.action_config
    train_episodes = episodes.load_episodes(args.data, cfg.num_images_in_input)
    stats = episodes.compute_statistics(train_episodes)
    model.norm_stats = {args.dataset_name: stats}
    instructions = sorted({episode.instruction for episode in train_episodes})
    tokenizer_dir = args.init or (output / 'tokenizer')
    if not args.init:
        from openvla_ros.model.testing.tokenizer import write_tiny_llama_tokenizer

        write_tiny_llama_tokenizer(tokenizer_dir, extra_instructions=instructions)
    tokenizer = PromptTokenizer.from_checkpoint(tokenizer_dir)
    center_crop = not args.no_center_crop
    if args.init:
        preprocessor = ImagePreprocessor.from_checkpoint(args.init, center_crop=center_crop)
    else:
        from openvla_ros.processing import default_preprocessor_config

        preprocessor = ImagePreprocessor.from_config(default_preprocessor_config(
            model.config.image_size, model.config.use_fused_vision_backbone),
            center_crop=center_crop)

    def dataset_of(items):
        return episodes.EpisodeDataset(items, stats, tokenizer, preprocessor, cfg.chunk_len,
                                       cfg.normalization_type, cfg.use_proprio,
                                       model.config.pad_token_id)

    train_set = dataset_of(train_episodes)
    eval_set = dataset_of(episodes.load_episodes(args.eval_data, cfg.num_images_in_input)) \
        if args.eval_data else None
    print(architectures.describe(model, args.init or args.architecture))
    print(f'data: {len(train_episodes)} episodes, {len(train_set)} samples, '
          f'instructions: {instructions}; prepared in {time.monotonic() - started:.1f} s')

    config = trainer.TrainConfig(
        steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr,
        weight_decay=args.weight_decay, warmup_steps=args.warmup_steps, schedule=args.schedule,
        schedule_steps=args.schedule_steps,
        objective='diffusion' if cfg.head_type == 'diffusion' else 'l1',
        mse_fraction=args.mse_fraction, grad_clip=args.grad_clip or None, seed=args.seed,
        autocast_bf16=args.autocast_bf16,
        train_token_embeddings=not args.init or args.train_token_embeddings,
        oversample_first=args.oversample_first, oversample_factor=args.oversample_factor,
        oversample_steps=args.oversample_steps)
    log = {'command': 'openvla-train ' + ' '.join(argv if argv is not None else sys.argv[1:]),
           'parameters': architectures.count_parameters(model), 'train_samples': len(train_set),
           'train_episodes': len(train_episodes), 'center_crop': center_crop,
           'evaluations': [], 'losses': []}
    copy_from = args.init or tokenizer_dir

    def evaluate(step, max_samples):
        if eval_set is None or cfg.head_type != 'l1':
            return None
        result = trainer.open_loop_l1(model, eval_set, max_samples=max_samples)
        result['step'] = step
        log['evaluations'].append(result)
        return result

    def save(directory, step):
        export.save_pretrained(model, directory, step=step, dtype=save_dtype,
                               copy_from=copy_from, instructions=instructions)

    progress = tqdm(total=args.steps, disable=args.no_progress, unit='step', smoothing=0.05)

    def on_step(record):
        log['losses'].append([record.step, record.loss, record.objective])
        progress.update(1)
        progress.set_postfix(loss=f'{record.loss:.4f}', obj=record.objective)
        if args.save_every and record.step % args.save_every == 0 and record.step < args.steps:
            directory = output / f'step_{record.step:06d}'
            save(directory, record.step)
            result = evaluate(record.step, args.eval_samples)
            if result is not None:
                progress.write(f'step {record.step}: open-loop L1 {result["l1"]:.4f} '
                               f'(first action {result["l1_first"]:.4f}, '
                               f'{result["samples"]} samples)')
            if args.publish_dir:
                export.publish(directory, pathlib.Path(args.publish_dir)
                               / f'{args.run_name}-step{record.step:06d}')
            model.train()

    train_started = time.monotonic()
    trainer.train(model, train_set, config, on_step)
    progress.close()
    log['train_seconds'] = time.monotonic() - train_started
    final_dir = output / FINAL_DIRNAME
    save(final_dir, args.steps)
    final = evaluate(args.steps, None)
    if final is not None:
        print(f'open-loop L1 on {args.eval_data}: {final["l1"]:.4f} (first action '
              f'{final["l1_first"]:.4f}, {final["samples"]} samples)')
    if args.publish_dir:
        export.publish(final_dir, pathlib.Path(args.publish_dir) / f'{args.run_name}-final')
    plots.plot_losses(log, output / 'loss.png')
    log['wall_seconds'] = time.monotonic() - started
    (output / 'train_log.json').write_text(json.dumps(log, indent=1) + '\n')
    print(f'saved {final_dir} (training {log["train_seconds"]:.0f} s, total '
          f'{log["wall_seconds"]:.0f} s); final loss {log["losses"][-1][1]:.4f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
