"""Projectors: upstream key names/shapes (spec 2.2, 3.2, 3.4) and forward = re-derivation."""

import pytest
import torch
import torch.nn.functional as F

from openvla_ros.model.projectors import NoisyActionProjector
from openvla_ros.model.projectors import PrismaticProjector
from openvla_ros.model.projectors import ProprioProjector


def _shapes(module):
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


def _linear(x, state, name):
    return F.linear(x, state[f'{name}.weight'], state[f'{name}.bias'])


def test_full_size_fused_projector_keys_and_shapes():
    with torch.device('meta'):
        projector = PrismaticProjector(2176, 4096)
    assert _shapes(projector) == {
        'fc1.weight': (8704, 2176), 'fc1.bias': (8704,),
        'fc2.weight': (4096, 8704), 'fc2.bias': (4096,),
        'fc3.weight': (4096, 4096), 'fc3.bias': (4096,),
    }


def test_full_size_proprio_and_noisy_action_projector_keys_and_shapes():
    with torch.device('meta'):
        proprio = ProprioProjector(llm_dim=4096, proprio_dim=8)
        noisy = NoisyActionProjector(llm_dim=4096)
    assert _shapes(proprio) == {
        'fc1.weight': (4096, 8), 'fc1.bias': (4096,),
        'fc2.weight': (4096, 4096), 'fc2.bias': (4096,),
    }
    assert _shapes(noisy) == {
        'fc1.weight': (4096, 1), 'fc1.bias': (4096,),
        'fc2.weight': (4096, 4096), 'fc2.bias': (4096,),
    }


def test_fused_projector_forward_is_gelu_mlp_per_patch():
    torch.manual_seed(0)
    projector = PrismaticProjector(vision_dim=12, llm_dim=16)
    patches = torch.randn(2, 5, 12)
    state = projector.state_dict()
    h = F.gelu(_linear(patches, state, 'fc1'))
    h = F.gelu(_linear(h, state, 'fc2'))
    expected = _linear(h, state, 'fc3')
    out = projector(patches)
    assert out.shape == (2, 5, 16)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    # per patch: patch 3 alone gives the same row
    torch.testing.assert_close(projector(patches[:, 3:4]), out[:, 3:4], rtol=0, atol=1e-6)


def test_single_backbone_projector_has_two_layers():
    torch.manual_seed(0)
    projector = PrismaticProjector(12, 16, use_fused_vision_backbone=False)
    assert _shapes(projector) == {
        'fc1.weight': (16, 12), 'fc1.bias': (16,), 'fc2.weight': (16, 16), 'fc2.bias': (16,)}
    patches = torch.randn(1, 3, 12)
    state = projector.state_dict()
    expected = _linear(F.gelu(_linear(patches, state, 'fc1')), state, 'fc2')
    torch.testing.assert_close(projector(patches), expected, rtol=0, atol=1e-6)


def test_proprio_projector_forward():
    torch.manual_seed(0)
    projector = ProprioProjector(llm_dim=16, proprio_dim=8)
    proprio = torch.rand(3, 8) * 2 - 1
    state = projector.state_dict()
    expected = _linear(F.gelu(_linear(proprio, state, 'fc1')), state, 'fc2')
    out = projector(proprio)
    assert out.shape == (3, 16)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_noisy_action_projector_embeds_each_scalar_independently():
    torch.manual_seed(0)
    projector = NoisyActionProjector(llm_dim=16)
    noisy = torch.randn(2, 14, 1)
    out = projector(noisy)
    assert out.shape == (2, 14, 16)
    state = projector.state_dict()
    # a scalar a maps to fc2(gelu(a * w1 + b1)) whatever its neighbours are
    w1 = state['fc1.weight'][:, 0]
    scalar = noisy[1, 9, 0]
    expected = _linear(F.gelu(scalar * w1 + state['fc1.bias']), state, 'fc2')
    torch.testing.assert_close(out[1, 9], expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize(('module', 'bad_input'), [
    (PrismaticProjector(12, 16), torch.zeros(1, 5, 11)),
    (PrismaticProjector(12, 16), torch.zeros(5, 12)),
    (ProprioProjector(16, 8), torch.zeros(1, 7)),
    (ProprioProjector(16, 8), torch.zeros(1, 1, 8)),
    (NoisyActionProjector(16), torch.zeros(1, 14)),
])
def test_wrong_input_shape_raises_value_error(module, bad_input):
    with pytest.raises(ValueError, match='expected .* got shape'):
        module(bad_input)
