"""Quantized Llama weights on tiny checkpoints (CPU): action deviation and weight bytes.

    .venv/bin/python bench/bench_quantization.py [--no-write]

For each tiny variant, the same inputs (and diffusion noise) run through the unquantized model
and through copies whose Llama decoder layers are quantized: torchao int8 (what
`quantization: int8` uses) and, when bitsandbytes is importable (not a dependency), its
LLM.int8 and nf4 layers for comparison. The bf16-vs-fp32 deviation of the same model is the
yardstick: the tiny random Llama (hidden 64, initializer 0.3) is far more sensitive to weight
error than a trained 7B one, so only the ratio between rows carries over. int4 (torchao) needs
CUDA and is measured by bench/gpu_suite.py. Writes the `bench_quantization` section of
docs/PERFORMANCE.md.
"""

import argparse
import pathlib
import sys

import torch
from torch import nn

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / 'bench')]

from openvla_ros.model.checkpoint import load_openvla  # noqa: E402
from openvla_ros.model.quantization import (  # noqa: E402
    parameter_bytes, quantize_language_model)
from openvla_ros.model.testing.factory import (  # noqa: E402
    example_inputs, tiny_checkpoint, VARIANTS)
import perf_doc  # noqa: E402, I100, I201 - bench/ is the script folder

BENCH_VARIANTS = ('l1', 'film', 'aloha', 'discrete', 'diffusion')
DIFFUSION_STEPS = 3  # more steps amplify any difference chaotically in the random tiny model


def _bitsandbytes():
    try:
        import bitsandbytes
    except ImportError:
        return None
    return bitsandbytes


def _bnb_quantize(model, kind: str) -> None:
    """Swap the decoder layers' nn.Linear for bitsandbytes layers (quantized on .to)."""
    bnb = _bitsandbytes()
    for layer in model.language_model.model.layers:
        for parent in layer.modules():
            for name, child in list(parent.named_children()):
                if type(child) is not nn.Linear:
                    continue
                if kind == 'int8':
                    new = bnb.nn.Linear8bitLt(child.in_features, child.out_features,
                                              bias=child.bias is not None,
                                              has_fp16_weights=False)
                else:
                    new = bnb.nn.Linear4bit(child.in_features, child.out_features,
                                            bias=child.bias is not None,
                                            compute_dtype=child.weight.dtype, quant_type='nf4')
                new.load_state_dict(child.state_dict())
                setattr(parent, name, new.to('cpu'))


def _load(variant, dtype):
    kwargs = dict(VARIANTS[variant].load_kwargs)
    if variant == 'diffusion':
        kwargs['num_diffusion_steps'] = DIFFUSION_STEPS
    return load_openvla(tiny_checkpoint(variant), dtype=dtype, **kwargs)


def _predict(model, variant):
    inputs = example_inputs(variant)
    if variant == 'diffusion':
        cfg = model.action_config
        inputs['noise'] = torch.randn(1, cfg.chunk_len, cfg.action_dim,
                                      generator=torch.Generator().manual_seed(1))
    return model.predict_action(**inputs).normalized_actions.double()


def measure(variant: str, dtype: torch.dtype) -> dict:
    reference = _load(variant, dtype)
    expected = _predict(reference, variant)
    row = {'variant': variant, 'dtype': str(dtype).replace('torch.', ''),
           'range': float(expected.abs().max()),
           'bytes': {'none': parameter_bytes(reference.language_model.model.layers)}}
    other = torch.bfloat16 if dtype == torch.float32 else torch.float32
    row['dtype_dev'] = float((_predict(_load(variant, other), variant) - expected).abs().max())
    candidates = [('torchao int8', lambda m: quantize_language_model(m, 'int8'))]
    if _bitsandbytes() is not None:
        candidates += [('bnb int8', lambda m: _bnb_quantize(m, 'int8')),
                       ('bnb nf4', lambda m: _bnb_quantize(m, 'nf4'))]
    row['dev'] = {}
    for name, quantize in candidates:
        model = _load(variant, dtype)
        quantize(model)
        row['dev'][name] = float((_predict(model, variant) - expected).abs().max())
        row['bytes'][name] = parameter_bytes(model.language_model.model.layers)
    print(row)
    return row


def render(rows) -> str:
    names = list(rows[0]['dev'])
    lines = ['### Quantized weights on tiny checkpoints (`bench/bench_quantization.py`)', '',
             'Max |deviation| of the normalized actions from the unquantized model on the same '
             f'inputs (diffusion: same noise, {DIFFUSION_STEPS} DDIM steps); in brackets the '
             "Llama decoder layers' bytes relative to unquantized. `other dtype`: the same "
             'model in the other precision (bf16 vs fp32), the yardstick.', '',
             '| variant | dtype | action range | other dtype | '
             + ' | '.join(names) + ' |', '|---|---|---|---|' + '---|' * len(names)]
    for row in rows:
        cells = [f'{row["dev"][n]:.4f} ({row["bytes"][n] / row["bytes"]["none"]:.2f})'
                 for n in names]
        lines.append(f'| {row["variant"]} | {row["dtype"]} | {row["range"]:.2f} | '
                     f'{row["dtype_dev"]:.4f} | ' + ' | '.join(cells) + ' |')
    versions = [f'torch {torch.__version__}']
    import torchao
    versions.append(f'torchao {torchao.__version__}')
    if _bitsandbytes() is not None:
        versions.append(f'bitsandbytes {_bitsandbytes().__version__}')
    else:
        versions.append('bitsandbytes not installed (its columns are missing)')
    lines += ['', 'Command: `python bench/bench_quantization.py`; CPU; ' + ', '.join(versions)
              + '.']
    return '\n'.join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--no-write', action='store_true', help='print only')
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    rows = [measure(v, dtype) for v in BENCH_VARIANTS
            for dtype in (torch.float32, torch.bfloat16)]
    section = render(rows)
    print(section)
    if not args.no_write:
        perf_doc.write_section(perf_doc.DOC, 'bench_quantization', section)
    return 0


if __name__ == '__main__':
    sys.exit(main())
