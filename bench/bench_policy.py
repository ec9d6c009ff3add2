"""Latency of one action chunk: tiny checkpoints on the CPU; full-size OpenVLA-OFT on CUDA.

    .venv/bin/python bench/bench_policy.py [--runs 20] [--no-write] [--skip-tiny] [--skip-full]

Tiny: OpenVLAPolicy end to end (JPEG/Lanczos preprocessing of 256x256 images, tokenizer, model,
unnormalization) for every tiny variant. Full size (only when CUDA is available): the 7B Llama with
fused DINOv2 + SigLIP built with random bf16 weights (timing only), LIBERO shapes (chunk 8 x 7),
the three configurations of the OFT paper's efficiency table: 1 image L1, 2 images + proprio L1,
and 2 images + proprio diffusion (50 DDIM steps). Results go to docs/PERFORMANCE.md between the
bench_policy markers, with the machine and the command.
"""

import argparse
import os
import pathlib
import platform
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / 'bench')]  # this checkout; perf_doc

from openvla_ros.model.config import ActionConfig, OpenVLAConfig  # noqa: E402
from openvla_ros.model.modeling import OpenVLAForActionPrediction  # noqa: E402
from openvla_ros.model.testing.factory import (  # noqa: E402
    TINY_VARIANTS, VARIANTS, write_tiny_checkpoint)
from openvla_ros.policy import OpenVLAPolicy  # noqa: E402
import perf_doc  # noqa: E402, I100, I201 - bench/ is the script folder

# OFT paper, A100, bf16 (OPENVLA_OFT_REFERENCE.md section 8).
PAPER_MS = {'1 image, L1': 73, '2 images + proprio, L1': 112,
            '2 images + proprio, diffusion 50 steps': 792}


def _stats_ms(samples) -> str:
    values = np.asarray(samples) * 1e3
    return f'{np.median(values):.1f} / {np.percentile(values, 95):.1f}'


def bench_tiny(runs: int) -> list:
    rows = []
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for variant in TINY_VARIANTS:
            directory = pathlib.Path(tmp, variant)
            write_tiny_checkpoint(directory, variant=variant)
            policy = OpenVLAPolicy.from_pretrained(directory, device='cpu',
                                                   **VARIANTS[variant].policy_kwargs)
            spec = policy.spec
            images = [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
                      for _ in range(spec.num_images)]
            proprio = None if spec.proprio_dim is None else np.zeros(spec.proprio_dim)
            timings = [policy.predict(images, 'pick up the black bowl', proprio=proprio).timings
                       for _ in range(runs)]
            rows.append((variant, spec, {k: [t[k] for t in timings] for k in timings[0]}))
            print(f'tiny {variant:12s} total {_stats_ms(rows[-1][2]["total"])} ms (p50 / p95)')
    return rows


def _init_random_(model: torch.nn.Module) -> None:
    """Timing-only weights: N(0, 0.02) matrices, unit norm scales, zero biases."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim >= 2:
                param.normal_(0.0, 0.02)
            elif name.endswith('bias'):
                param.zero_()
            else:
                param.fill_(1.0)


def build_full_size(head_type: str, num_images: int, use_proprio: bool, device, dtype,
                    llm_layers: int = 32):
    """OpenVLA-OFT at the released shapes (random weights); `llm_layers` < 32 for smoke runs."""
    action = ActionConfig(chunk_len=8, action_dim=7, proprio_dim=8,
                          normalization_type='bounds_q99', head_type=head_type,
                          num_images_in_input=num_images, use_proprio=use_proprio)
    config = OpenVLAConfig()
    config.text_config['num_hidden_layers'] = llm_layers
    with torch.device('meta'):
        model = OpenVLAForActionPrediction(config, action)
    model = model.to(dtype).to_empty(device=device)
    _init_random_(model)
    model.reset_runtime_state(device)
    return model.eval()


def _synchronize(device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize()


def bench_full_size(runs: int, device, dtype, llm_layers: int = 32, diffusion_steps: int = 50,
                    ) -> list:
    setups = [('1 image, L1', 'l1', 1, False), ('2 images + proprio, L1', 'l1', 2, True),
              (f'2 images + proprio, diffusion {diffusion_steps} steps', 'diffusion', 2, True)]
    prompt = [1] + list(range(500, 524))  # BOS + a 24-token instruction prompt
    rows = []
    for label, head, num_images, use_proprio in setups:
        if device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats()
        model = build_full_size(head, num_images, use_proprio, device, dtype, llm_layers)
        if head == 'diffusion':
            model.set_num_diffusion_steps(diffusion_steps)
        input_ids = torch.tensor([prompt], device=device)
        pixels = torch.randn(1, 6 * num_images, 224, 224, device=device, dtype=dtype)
        proprio = torch.zeros(1, 8, device=device, dtype=dtype) if use_proprio else None
        samples, stages = [], []
        for i in range(runs + 3):
            _synchronize(device)
            start = time.perf_counter()
            out = model.predict_action(input_ids=input_ids, pixel_values=pixels,
                                       proprio=proprio)
            _synchronize(device)
            if i >= 3:  # warm-up
                samples.append(time.perf_counter() - start)
                stages.append(out.timings)
        peak_gb = (torch.cuda.max_memory_allocated() / 2**30 if device.type == 'cuda'
                   else float('nan'))
        stage_ms = {k: 1e3 * float(np.median([s[k] for s in stages])) for k in stages[0]}
        rows.append((label, samples, peak_gb, stage_ms))
        print(f'full {label:40s} {_stats_ms(samples)} ms, peak {peak_gb:.1f} GiB, '
              f'stages {stage_ms}')
        del model
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    return rows


def render(tiny_rows, full_rows, runs: int, command: str) -> str:
    lines = ['### Policy latency (`bench/bench_policy.py`)', '',
             f'Command: `{command}`, {runs} runs after warm-up, median / p95 in ms.', '']
    cpu = platform.processor() or platform.machine()
    if tiny_rows:
        lines += [f'Tiny checkpoints, CPU ({cpu}, {os.cpu_count()} cores, torch '
                  f'{torch.__version__}, {torch.get_num_threads()} threads). These numbers '
                  'measure the pipeline overhead (preprocessing of 256x256 images, tokenizer, '
                  'sequence assembly, unnormalization), not a real model:', '',
                  '| variant | head | images | proprio | preprocess | model | total |',
                  '|---|---|---|---|---|---|---|']
        for variant, spec, timings in tiny_rows:
            lines.append(f'| {variant} | {spec.head_type} | {spec.num_images} | '
                         f'{spec.proprio_dim or "-"} | {_stats_ms(timings["preprocess"])} | '
                         f'{_stats_ms(timings["model"])} | {_stats_ms(timings["total"])} |')
        lines.append('')
    if full_rows:
        gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'
        lines += [f'Full-size OpenVLA-OFT (7B, random bf16 weights), {gpu}, model only '
                  '(`predict_action`, inputs already on the GPU):', '',
                  '| configuration | ours | vision / llm / head (median) | peak memory | '
                  'OFT paper (A100) |', '|---|---|---|---|---|']
        for label, samples, peak_gb, stage_ms in full_rows:
            stages = ' / '.join(f'{stage_ms.get(k, 0.0):.1f}' for k in ('vision', 'llm', 'head'))
            lines.append(f'| {label} | {_stats_ms(samples)} | {stages} | {peak_gb:.1f} GiB | '
                         f'{PAPER_MS.get(label, "-")} ms |')
    else:
        lines.append('Full-size rows: not measured here (no CUDA device on this machine).')
    return '\n'.join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--runs', type=int, default=20)
    parser.add_argument('--skip-tiny', action='store_true')
    parser.add_argument('--skip-full', action='store_true')
    parser.add_argument('--no-write', action='store_true', help='print only')
    parser.add_argument('--full-on-cpu', action='store_true',
                        help='smoke-run the full-size path on the CPU (fp32; use with '
                             '--llm-layers 1 --diffusion-steps 2 --runs 1 --no-write)')
    parser.add_argument('--llm-layers', type=int, default=32, help='Llama layers (32: 7B)')
    parser.add_argument('--diffusion-steps', type=int, default=50)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    tiny = [] if args.skip_tiny else bench_tiny(args.runs)
    full = []
    if not args.skip_full and (torch.cuda.is_available() or args.full_on_cpu):
        on_gpu = torch.cuda.is_available() and not args.full_on_cpu
        device = torch.device('cuda' if on_gpu else 'cpu')
        full = bench_full_size(args.runs, device, torch.bfloat16 if on_gpu else torch.float32,
                               args.llm_layers, args.diffusion_steps)
    command = 'python bench/bench_policy.py ' + ' '.join(argv if argv is not None
                                                         else sys.argv[1:])
    section = render(tiny, full, args.runs, command.strip())
    print(section)
    if not args.no_write:
        perf_doc.write_section(perf_doc.DOC, 'bench_policy', section)
    return 0


if __name__ == '__main__':
    sys.exit(main())
