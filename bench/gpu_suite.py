"""The GPU suite: chunk latency, peak memory and exactness of every inference variant, one run.

    python bench/gpu_suite.py               # CUDA, full-size model: about 5 min on an H100/H200
    python bench/gpu_suite.py --smoke       # CPU, tiny model, seconds (what the unit test runs)

Run it the moment a GPU is available; it needs no checkpoint and writes no large file. For each
configuration (the OFT paper's three: 1 image L1, 2 images + proprio L1, 2 images + proprio
diffusion with 50 DDIM steps; plus discrete with 1 image and ALOHA: 3 images + proprio, FiLM,
chunk 25 x 14) it builds OpenVLA-OFT at the released shapes (7.5 B parameters; `--smoke`: the
tiny test shapes, in fp32: CPUs emulate bf16 matmuls slowly) with seeded random bf16 weights
directly on the device, then measures:

* modes: `eager` (`predict_action`), `graphs` (`StaticActionPredictor`: prompt padded to a
  bucket, CUDA graphs captured at warm-up and replayed; on the CPU the same padded path runs
  without capture), `compile` (`torch.compile(dynamic=True)` of the Llama decoder, what
  `compile_llm` does) and `compile+graphs`;
* weights: bf16, int8 and int4 (torchao, Llama decoder layers only);
* p50 / p95 latency per chunk after warm-up (CUDA events), peak memory (`max_memory_allocated`
  from build to last run), and the max |difference| of the normalized actions from eager bf16 on
  the same inputs and diffusion noise, against the tolerances in `TOLERANCE`;
* the compute floor: FLOPs of one chunk (torch's FlopCounterMode on eager bf16) divided by the
  bf16 matmul rate measured on this device, and the ratio of p50 to it; the paper's A100 numbers.

Rows run in order of importance (`PRIORITY`: eager and graphs in bf16, then int4, then the
compile modes, int8 last); once `--budget-s` is spent the remaining rows are listed as skipped,
so the suite always finishes and writes what it measured. The table goes to the `gpu_suite`
section of docs/PERFORMANCE.md (`--doc` elsewhere, `--no-write` to print only) with the device
name. Exit status 1 if a row exceeds its tolerance.
"""

import argparse
import dataclasses
import pathlib
import platform
import sys
import time
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / 'bench')]

from openvla_ros.model.config import ActionConfig, OpenVLAConfig  # noqa: E402
from openvla_ros.model.modeling import OpenVLAForActionPrediction  # noqa: E402
from openvla_ros.model.quantization import quantize_language_model  # noqa: E402
from openvla_ros.model.static_inference import StaticActionPredictor  # noqa: E402
import perf_doc  # noqa: E402, I100, I201 - bench/ is the script folder

MODES = ('eager', 'graphs', 'compile', 'compile+graphs')
QUANTIZATIONS = ('none', 'int8', 'int4')
# Max |normalized action - eager bf16| allowed, relative to max |eager bf16 action|. bf16 rows
# differ only by kernel choice and reduction order; diffusion feeds each step's rounding into
# the next (50 times); quantized rows carry the weight error. Discrete rows compare bin centers
# (one flipped token moves an action by >= 2/255).
TOLERANCE = {('none', 'l1'): 0.02, ('none', 'discrete'): 0.05, ('none', 'diffusion'): 0.05,
             ('int8', 'l1'): 0.05, ('int8', 'discrete'): 0.1, ('int8', 'diffusion'): 0.1,
             ('int4', 'l1'): 0.15, ('int4', 'discrete'): 0.2, ('int4', 'diffusion'): 0.25}
PROMPT_IDS = [1] + list(range(500, 524))  # BOS + 24 tokens, a LIBERO-length instruction
PROMPT_BUCKETS = (32,)  # the node captures 4 (32..256); one is what a chunk replays
SEED = 0


@dataclasses.dataclass(frozen=True)
class Setup:
    """One model configuration."""

    name: str
    head_type: str
    num_images: int
    use_proprio: bool
    platform: str = 'LIBERO'
    uses_film: bool = False
    paper_ms: Optional[float] = None  # OFT paper, A100, bf16 (OPENVLA_OFT_REFERENCE.md 8)

    def action_config(self, diffusion_steps: int) -> ActionConfig:
        return ActionConfig.for_platform(
            self.platform, self.head_type, uses_film=self.uses_film,
            num_images_in_input=self.num_images, use_proprio=self.use_proprio,
            num_diffusion_steps_inference=diffusion_steps)


SETUPS = (
    Setup('1 image, L1', 'l1', 1, False, paper_ms=73),
    Setup('2 images + proprio, L1', 'l1', 2, True, paper_ms=112),
    Setup('2 images + proprio, diffusion', 'diffusion', 2, True, paper_ms=792),
    Setup('1 image, discrete', 'discrete', 1, False, paper_ms=74),
    Setup('ALOHA: 3 images + proprio, FiLM, L1 25x14', 'l1', 3, True, platform='ALOHA',
          uses_film=True),
)


@dataclasses.dataclass
class Row:
    """One measured (or skipped) variant."""

    setup: Setup
    mode: str
    quantization: str
    latencies_s: List[float] = dataclasses.field(default_factory=list)
    peak_gib: Optional[float] = None
    weights_gib: Optional[float] = None
    deviation: Optional[float] = None
    tolerance: Optional[float] = None
    note: str = ''

    @property
    def failed(self) -> bool:
        return self.deviation is not None and self.deviation > self.tolerance


@dataclasses.dataclass
class Context:
    """Device facts and per-setup references shared by the rows."""

    device: torch.device
    smoke: bool
    runs: int
    diffusion_steps: int
    deadline: float
    dtype: torch.dtype = torch.bfloat16
    compile_in_smoke: bool = False
    reference: Dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    flops: Dict[str, float] = dataclasses.field(default_factory=dict)
    matmul_flops_per_s: float = float('nan')


# ------------------------------------------------------------------------------ building

@torch.no_grad()
def build_model(setup: Setup, ctx: Context) -> OpenVLAForActionPrediction:
    """OpenVLA-OFT with seeded random bf16 weights, built on the device (timing + exactness).

    N(0, 0.02) matrices, unit norm scales, zero biases; the same seed gives the same weights,
    so quantized rows compare against eager bf16 of the same model.
    """
    if ctx.smoke:  # the factory imports the image processing (simplejpeg): smoke runs only
        from openvla_ros.model.testing.factory import tiny_config
        config = tiny_config()
    else:
        config = OpenVLAConfig()
    with torch.device('meta'):
        model = OpenVLAForActionPrediction(config, setup.action_config(ctx.diffusion_steps))
    model = model.to(ctx.dtype).to_empty(device=ctx.device)
    generator = torch.Generator(device=ctx.device).manual_seed(SEED)
    for name, param in model.named_parameters():
        if param.ndim >= 2:
            param.normal_(0.0, 0.02, generator=generator)
        elif name.endswith('bias'):
            param.zero_()
        else:
            param.fill_(1.0)
    model.reset_runtime_state(ctx.device)
    return model.eval()


def example_inputs(setup: Setup, model, device) -> dict:
    """Seeded inputs on the device (same for every row of a setup)."""
    generator = torch.Generator().manual_seed(SEED + 1)
    cfg = model.action_config
    backbone = model.vision_backbone
    pixels = torch.randn(1, backbone.channels_per_image * setup.num_images,
                         *backbone.image_size, generator=generator)
    inputs = {'input_ids': torch.tensor([PROMPT_IDS]),
              'pixel_values': pixels.to(model.dtype),
              'proprio': (torch.rand(1, cfg.proprio_dim, generator=generator) * 2 - 1
                          if setup.use_proprio else None),
              'noise': (torch.randn(1, cfg.chunk_len, cfg.action_dim, generator=generator)
                        if setup.head_type == 'diffusion' else None)}
    return {k: (v.to(device) if v is not None else None) for k, v in inputs.items()}


# ------------------------------------------------------------------------------ measuring

def _synchronize(device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _timed(run: Callable[[], torch.Tensor], device) -> tuple:
    """(seconds, actions) of one call; CUDA events on the GPU, the wall clock elsewhere."""
    if device.type == 'cuda':
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        actions = run()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3, actions
    start = time.perf_counter()
    actions = run()
    return time.perf_counter() - start, actions


def measure_matmul_rate(device, smoke: bool, dtype) -> float:
    """Achieved matmul FLOP/s in `dtype` on this device (the floor's denominator)."""
    n = 1024 if smoke else 8192
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _synchronize(device)
    repeats = 3 if smoke else 20
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _synchronize(device)
    return 2 * n ** 3 * repeats / (time.perf_counter() - start)


def _runner(model, mode: str, inputs: dict):
    """Return (run, cleanup) for a mode; `run()` predicts one chunk's normalized actions."""
    original = model.language_model.model
    if 'compile' in mode:
        model.language_model.model = torch.compile(original, dynamic=True)
    if 'graphs' in mode:
        predictor = StaticActionPredictor(model, PROMPT_BUCKETS,
                                          cuda_graphs=model.device.type == 'cuda')
        predictor.warmup()
        predict = predictor.predict_action
    else:
        predict = model.predict_action

    def cleanup():
        model.language_model.model = original

    return (lambda: predict(**inputs).normalized_actions), cleanup


def build(setup: Setup, quantization: str, ctx: Context):
    """Return (model, GiB allocated after building and quantizing; None on the CPU)."""
    if ctx.device.type == 'cuda':
        torch.cuda.empty_cache()
    model = build_model(setup, ctx)
    if quantization != 'none':
        quantize_language_model(model, quantization, ctx.device)
    if ctx.device.type != 'cuda':
        return model, None
    torch.cuda.empty_cache()
    return model, torch.cuda.memory_allocated(ctx.device) / 2**30


def measure_row(row: Row, ctx: Context, model, weights_gib: Optional[float]) -> None:
    setup, device = row.setup, ctx.device
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    row.weights_gib = weights_gib
    inputs = example_inputs(setup, model, device)
    if row.mode == 'eager' and row.quantization == 'none':
        with FlopCounterMode(display=False) as counter:
            model.predict_action(**inputs)
        ctx.flops[setup.name] = counter.get_total_flops()
    run, cleanup = _runner(model, row.mode, inputs)
    try:
        for _ in range(1 if ctx.smoke else 2 if setup.head_type == 'diffusion' else 3):
            actions = run()  # warm-up (graphs: after the capture in _runner)
        _synchronize(device)
        runs = _diffusion_runs(ctx) if setup.head_type == 'diffusion' else ctx.runs
        for _ in range(runs):
            seconds, actions = _timed(run, device)
            row.latencies_s.append(seconds)
    finally:
        cleanup()
    if device.type == 'cuda':
        row.peak_gib = torch.cuda.max_memory_allocated(device) / 2**30
    actions = actions.double().cpu()
    if row.mode == 'eager' and row.quantization == 'none':
        ctx.reference[setup.name] = actions
    reference = ctx.reference.get(setup.name)
    if reference is not None:
        kind = setup.head_type
        row.tolerance = TOLERANCE[(row.quantization, kind)] * float(reference.abs().max())
        row.deviation = float((actions - reference).abs().max())


def _diffusion_runs(ctx: Context) -> int:
    return max(2 if ctx.smoke else 3, ctx.runs // 4)


# (weights, modes) in the order they run: eager bf16 is every row's reference; int4 before the
# compile modes because the 8 GB goal rests on it; int8 last.
PRIORITY = (('none', ('eager', 'graphs')), ('int4', ('eager', 'graphs')),
            ('none', ('compile', 'compile+graphs')), ('int8', ('eager', 'graphs')),
            ('int4', ('compile', 'compile+graphs')), ('int8', ('compile', 'compile+graphs')))


def plan(setups, modes, quantizations) -> List[List[Row]]:
    """Return groups of rows that share one built model, in the order they run."""
    groups = []
    for quantization, group_modes in PRIORITY:
        if quantization not in quantizations:
            continue
        for setup in setups:
            rows = [Row(setup, mode, quantization) for mode in group_modes if mode in modes]
            if rows:
                groups.append(rows)
    return groups


def _skip_reason(row: Row, ctx: Context) -> str:
    if row.quantization == 'int4' and ctx.device.type != 'cuda':
        return 'skipped: int4 needs CUDA'
    if 'compile' in row.mode and ctx.smoke and not ctx.compile_in_smoke:
        return 'skipped: --smoke (compiling takes ~1 min on a CPU)'
    if time.monotonic() > ctx.deadline:
        return 'skipped: time budget spent'
    return ''


def run_groups(groups: List[List[Row]], ctx: Context) -> None:
    for rows in groups:
        model = weights_gib = None
        for row in rows:
            row.note = _skip_reason(row, ctx)
            if not row.note:
                try:
                    if model is None:
                        model, weights_gib = build(row.setup, row.quantization, ctx)
                    measure_row(row, ctx, model, weights_gib)
                except Exception as error:  # a failing variant must not lose the other rows
                    row.note = f'error: {type(error).__name__}: {str(error)[:160]}'
            print(f'{row.setup.name} | {row.mode} | {row.quantization}: {_latency(row)} '
                  f'{row.note}', flush=True)
        del model
        if ctx.device.type == 'cuda':
            torch.cuda.empty_cache()


# ------------------------------------------------------------------------------ reporting

def _latency(row: Row) -> str:
    if not row.latencies_s:
        return '-'
    values = np.asarray(row.latencies_s) * 1e3
    return f'{np.median(values):.1f} / {np.percentile(values, 95):.1f}'


def _floor_ms(row: Row, ctx: Context) -> Optional[float]:
    flops = ctx.flops.get(row.setup.name)
    if flops is None or not np.isfinite(ctx.matmul_flops_per_s):
        return None
    return flops / ctx.matmul_flops_per_s * 1e3


def device_name(device) -> str:
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)'


_SHORT_NOTES = (('skipped: int4 needs CUDA', 'n/a (CUDA only)'),
                ('skipped: --smoke', 'not run (smoke)'),
                ('skipped: time budget', 'not run (budget)'), ('error', 'error'))


def _cell(row: Row) -> str:
    """'p50 / p95 (dev)' of one mode, or why it has no number."""
    if row.note:
        return next(short for prefix, short in _SHORT_NOTES if row.note.startswith(prefix))
    text = _latency(row)
    if row.deviation is not None and not (row.mode == 'eager' and row.quantization == 'none'):
        text += f' ({row.deviation:.3g}{" FAIL" if row.failed else ""})'
    return text


def render(rows: List[Row], ctx: Context, command: str, seconds: float) -> str:
    name = device_name(ctx.device)
    model = ('tiny test model (hidden 64, 2 layers; a smoke run, not a performance number)'
             if ctx.smoke else 'full-size OpenVLA-OFT (7.5 B parameters)')
    modes = [m for m in MODES if any(r.mode == m for r in rows)]
    lines = [
        '### GPU suite (`bench/gpu_suite.py`)', '',
        f'Device: **{name}**, torch {torch.__version__}; {model} with random '
        f'{str(ctx.dtype)[6:]} weights; '
        f'inputs already on the device; prompt {len(PROMPT_IDS) - 1} tokens + 29871 (bucket '
        f'{PROMPT_BUCKETS[0]} in `graphs`); diffusion {ctx.diffusion_steps} DDIM steps. '
        f'{ctx.runs} timed runs after warm-up ({_diffusion_runs(ctx)} for diffusion).', '',
        '* mode cells: latency per chunk p50 / p95 in ms, and in brackets the max |normalized '
        'action - eager unquantized action| on the same inputs and diffusion noise; FAIL above '
        '`tol` (`TOLERANCE` x max |eager unquantized action|; one value per configuration and '
        'weights).',
        "* peak: the largest `max_memory_allocated` of the row's modes (weights, activations, "
        'graph pools); weights: allocated after building (and quantizing).',
        '* floor: FLOPs of one chunk (FlopCounterMode, eager) / the matmul rate '
        f'measured here ({ctx.matmul_flops_per_s / 1e12:.3g} TFLOP/s); best / floor: the '
        "fastest mode's p50 over it.", '',
        '| configuration | weights | ' + ' | '.join(modes)
        + ' | tol | peak GiB | weights GiB | floor ms | best / floor | paper (A100) ms |',
        '|---|---|' + '---|' * len(modes) + '---|---|---|---|---|---|']
    groups: Dict[tuple, Dict[str, Row]] = {}
    for row in rows:
        groups.setdefault((row.setup.name, row.quantization), {})[row.mode] = row
    errors = []
    for (setup_name, quantization), by_mode in groups.items():
        measured = [r for r in by_mode.values() if r.latencies_s]
        any_row = next(iter(by_mode.values()))
        setup = any_row.setup
        floor = _floor_ms(any_row, ctx)
        best = min((float(np.median(r.latencies_s)) * 1e3 for r in measured), default=None)
        tolerance = next((r.tolerance for r in measured if r.tolerance is not None), None)
        peaks = [r.peak_gib for r in measured if r.peak_gib is not None]
        weights = [r.weights_gib for r in measured if r.weights_gib is not None]
        paper = setup.paper_ms if (setup.head_type != 'diffusion'
                                   or ctx.diffusion_steps == 50) else None
        cells = [setup_name, {'none': str(ctx.dtype)[6:]}.get(quantization, quantization)]
        cells += [_cell(by_mode[m]) if m in by_mode else '-' for m in modes]
        cells += [_fmt(tolerance, '.3g'), _fmt(max(peaks, default=None), '.2f'),
                  _fmt(min(weights, default=None), '.2f'), _fmt(floor, '.1f'),
                  _fmt(best / floor if best and floor else None, '.1f'), _fmt(paper, '.0f')]
        lines.append('| ' + ' | '.join(cells) + ' |')
        errors += [f'{setup_name}, {r.mode}, {quantization}: {r.note}'
                   for r in by_mode.values() if r.note.startswith('error')]
    if errors:
        lines += ['', 'Errors:', ''] + [f'* {e}' for e in errors]
    lines += ['', f'Command: `{command}` ({seconds:.0f} s in all).']
    return '\n'.join(lines)


def _fmt(value, spec: str) -> str:
    return '-' if value is None else format(value, spec)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--smoke', action='store_true',
                        help='CPU, tiny fp32 model (bf16 matmuls are slow on CPUs), 2 DDIM '
                             'steps, 2 runs, no compile: checks the code in seconds')
    parser.add_argument('--smoke-compile', action='store_true',
                        help='with --smoke, also run the compile modes (~1 min each on a CPU)')
    parser.add_argument('--runs', type=int, default=None, help='timed runs (default 20)')
    parser.add_argument('--budget-s', type=float, default=300.0,
                        help='start no new row after this many seconds (default 300)')
    parser.add_argument('--setups', default='all',
                        help='comma-separated indices into SETUPS (0-4) or "all"')
    parser.add_argument('--modes', default=','.join(MODES))
    parser.add_argument('--quantizations', default=','.join(QUANTIZATIONS))
    parser.add_argument('--doc', type=pathlib.Path, default=perf_doc.DOC,
                        help='markdown file whose gpu_suite section is rewritten')
    parser.add_argument('--no-write', action='store_true', help='print only')
    args = parser.parse_args(argv)
    started = time.monotonic()
    if not args.smoke and not torch.cuda.is_available():
        parser.error('no CUDA device: run on a GPU machine, or --smoke on the CPU')
    device = torch.device('cpu' if args.smoke else 'cuda')
    setups = (SETUPS if args.setups == 'all'
              else tuple(SETUPS[int(i)] for i in args.setups.split(',')))
    modes = tuple(m for m in args.modes.split(',') if m)
    quantizations = tuple(q for q in args.quantizations.split(',') if q)
    unknown = set(modes) - set(MODES) | set(quantizations) - set(QUANTIZATIONS)
    if unknown:
        parser.error(f'unknown modes / quantizations: {sorted(unknown)}')
    ctx = Context(device=device, smoke=args.smoke,
                  runs=args.runs or (2 if args.smoke else 20),
                  diffusion_steps=2 if args.smoke else 50,
                  deadline=started + args.budget_s,
                  dtype=torch.float32 if args.smoke else torch.bfloat16,
                  compile_in_smoke=args.smoke_compile)
    ctx.matmul_flops_per_s = measure_matmul_rate(device, args.smoke, ctx.dtype)
    groups = plan(setups, modes, quantizations)
    run_groups(groups, ctx)
    rows = [row for group in groups for row in group]
    command = 'python bench/gpu_suite.py ' + ' '.join(argv if argv is not None
                                                      else sys.argv[1:])
    section = render(rows, ctx, command.strip(), time.monotonic() - started)
    print(section)
    if not args.no_write:
        perf_doc.write_section(args.doc, 'gpu_suite', section)
    return 1 if any(row.failed for row in rows) else 0


if __name__ == '__main__':
    sys.exit(main())
