"""Weight-only quantization of the Llama decoder layers with torchao.

    quantize_language_model(model, 'int4', device='cuda')   # in place, layer by layer

Only the decoder layers' linear weights (q/k/v/o, gate/up/down: 6.5 of the 7.5 B parameters) are
quantized; the vision backbone, projectors, action heads, token embeddings and LM head keep the
model dtype. Modes:

* 'int8': per-output-channel symmetric int8 (torchao `Int8WeightOnlyConfig`); CPU and CUDA.
* 'int4': 4-bit, groups of 128 along the input dimension with a bf16 scale and zero point each
  (torchao `Int4WeightOnlyConfig`, tinygemm `tile_packed_to_4d` layout); CUDA and bf16 only.

Why torchao (docs/PERFORMANCE.md, "Quantized weights"): its quantized weights are tensor
subclasses that `torch.compile` and CUDA-graph capture handle like plain weights, `quantize_`
works in place on our own modules, and 0.18 installs and runs against torch 2.14 without its C++
extensions. bitsandbytes 0.50 also installs and runs int8 / nf4 on the CPU; its numbers are in the
same section for comparison.

The layers are moved to `device` and quantized one at a time, so a model loaded on the CPU never
needs its full bf16 Llama on the GPU (12.9 GB for 7B): the GPU peak is the quantized model plus
one bf16 layer.
"""

from typing import Optional

import torch
from torch import nn

QUANTIZATION_MODES = ('none', 'int8', 'int4')
INT4_GROUP_SIZE = 128


def check_quantization(mode: str, device, dtype: torch.dtype) -> None:
    """Raise ValueError for a mode this device or dtype cannot run (before loading anything)."""
    if mode not in QUANTIZATION_MODES:
        raise ValueError(f'quantization: expected one of {QUANTIZATION_MODES}, got {mode!r}')
    if mode == 'int4':
        if torch.device(device).type != 'cuda':
            raise ValueError(f"quantization 'int4': needs a CUDA device (torchao's int4 kernel "
                             f"is CUDA-only), got device '{device}'; use 'int8' or 'none' here")
        if dtype != torch.bfloat16:
            raise ValueError(f"quantization 'int4': needs bf16 weights, got {dtype}")


def _config(mode: str):
    try:
        from torchao.quantization import Int4WeightOnlyConfig, Int8WeightOnlyConfig
    except ImportError as error:
        raise ImportError('quantized weights need torchao (pip install torchao; '
                          'tools/setup_venv.sh installs it)') from error
    if mode == 'int8':
        return Int8WeightOnlyConfig()
    return Int4WeightOnlyConfig(group_size=INT4_GROUP_SIZE,
                                int4_packing_format='tile_packed_to_4d')


def quantize_language_model(model, mode: str, device: Optional[torch.device] = None) -> None:
    """Quantize `model.language_model`'s decoder layers in place; move the model to `device`.

    `model` may sit on the CPU (e.g. loaded there in bf16); everything ends up on `device`
    (default: where the model is).
    """
    device = torch.device(device) if device is not None else model.device
    check_quantization(mode, device, model.dtype)
    if mode == 'none':
        model.to(device)
        return
    from torchao.quantization import quantize_

    config = _config(mode)
    layers = model.language_model.model.layers
    for child in model.children():
        if child is not model.language_model:
            child.to(device)
    for name, child in model.language_model.named_children():
        if name != 'model':
            child.to(device)
    for child in model.language_model.model.children():
        if child is not layers:
            child.to(device)
    for layer in layers:
        layer.to(device)
        quantize_(layer, config, filter_fn=lambda module, _: isinstance(module, nn.Linear))


def tensor_bytes(tensor: torch.Tensor) -> int:
    """Bytes a (possibly quantized tensor-subclass) parameter holds."""
    flatten = getattr(tensor, '__tensor_flatten__', None)
    if flatten is not None and type(tensor) not in (torch.Tensor, nn.Parameter):
        names, _ = flatten()
        return sum(tensor_bytes(getattr(tensor, name)) for name in names)
    return tensor.numel() * tensor.element_size()


def parameter_bytes(module: nn.Module) -> int:
    """Bytes of `module`'s parameters and buffers, quantized ones counted by what they store."""
    return (sum(tensor_bytes(p) for p in module.parameters())
            + sum(tensor_bytes(b) for b in module.buffers()))
