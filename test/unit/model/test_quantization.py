"""Quantized Llama weights (torchao) on tiny checkpoints: what is quantized, bytes, deviation.

The deviation bound is relative to the same model's bf16-vs-fp32 difference: the tiny random
Llama (hidden 64, initializer 0.3) amplifies weight error far more than a trained 7B model, so
an absolute bound from a real checkpoint would not transfer (bench/bench_quantization.py).
"""

import numpy as np
import pytest
import torch

from openvla_ros.model.checkpoint import load_openvla
from openvla_ros.model.quantization import (
    check_quantization, parameter_bytes, quantize_language_model)
from openvla_ros.model.testing.factory import example_inputs, tiny_checkpoint, VARIANTS
from openvla_ros.policy import OpenVLAPolicy

torchao = pytest.importorskip('torchao', reason='quantized weights need torchao')


def _load(variant, dtype=torch.float32):
    return load_openvla(tiny_checkpoint(variant), dtype=dtype, **VARIANTS[variant].load_kwargs)


def _actions(model, variant):
    return model.predict_action(**example_inputs(variant)).normalized_actions.double()


@pytest.mark.parametrize('variant', ['l1', 'film', 'aloha', 'single_image'])
def test_int8_actions_stay_near_the_unquantized_model(variant):
    expected = _actions(_load(variant), variant)
    dtype_deviation = float((_actions(_load(variant, torch.bfloat16), variant)
                             - expected).abs().max())
    model = _load(variant)
    quantize_language_model(model, 'int8')
    deviation = float((_actions(model, variant) - expected).abs().max())
    # measured: 1.2-3.2x the bf16 deviation on these random tiny models, 0 < deviation < 0.1
    assert 0 < deviation <= 4 * dtype_deviation
    assert deviation < 0.15 * float(expected.abs().max())


def test_only_the_decoder_layers_are_quantized_and_their_bytes_shrink():
    model = _load('l1')
    layers = model.language_model.model.layers
    before = parameter_bytes(layers)
    others = {name: type(p) for name, p in model.named_parameters()
              if not name.startswith('language_model.model.layers.')}
    quantize_language_model(model, 'int8')
    quantized = {name: type(p).__name__ for name, p in model.named_parameters()
                 if name.startswith('language_model.model.layers.')
                 and name.endswith('proj.weight')}
    assert len(quantized) == 2 * 7 and set(quantized.values()) == {'Int8Tensor'}
    for name, parameter in model.named_parameters():  # vision, projector, heads, embeddings
        if name in others:
            assert type(parameter) is others[name] and parameter.dtype == torch.float32, name
    # fp32 -> int8 with one fp32 scale and int8 zero point per output row (64-wide rows here;
    # 4096-wide in 7B): 1/4 plus the row overhead, norms stay fp32
    assert 0.25 < parameter_bytes(layers) / before < 0.3


def test_int4_and_unknown_modes_give_clear_errors_on_the_cpu():
    with pytest.raises(ValueError, match="'int4': needs a CUDA device"):
        check_quantization('int4', 'cpu', torch.bfloat16)
    with pytest.raises(ValueError, match='expected one of'):
        check_quantization('int3', 'cpu', torch.float32)
    with pytest.raises(ValueError, match="'int4': needs a CUDA device"):
        OpenVLAPolicy.from_pretrained(tiny_checkpoint('l1'), device='cpu', quantization='int4')


def test_policy_loads_int8_weights():
    plain = OpenVLAPolicy.from_pretrained(tiny_checkpoint('l1'), device='cpu', warmup=False)
    policy = OpenVLAPolicy.from_pretrained(tiny_checkpoint('l1'), device='cpu',
                                           quantization='int8')
    assert policy.spec.quantization == 'int8' and policy.spec.dtype == 'float32'
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(2)]
    proprio = rng.uniform(-0.5, 0.5, 8)
    got = policy.predict(images, 'pick up the bowl', proprio=proprio)
    expected = plain.predict(images, 'pick up the bowl', proprio=proprio)
    deviation = np.abs(got.normalized_actions - expected.normalized_actions).max()
    assert 0 < deviation < 0.15


def test_policy_refuses_cuda_graphs_on_the_cpu():
    with pytest.raises(ValueError, match='cuda_graphs: needs a CUDA device'):
        OpenVLAPolicy.from_pretrained(tiny_checkpoint('l1'), device='cpu', cuda_graphs=True)
