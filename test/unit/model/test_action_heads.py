"""Action heads: upstream keys/shapes (spec 2.2), MLP-ResNet math, slot grouping, DDIM (6.3)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from openvla_ros.model.action_heads import DiffusionActionHead
from openvla_ros.model.action_heads import L1RegressionActionHead
from openvla_ros.model.action_heads import MLPResNet
from openvla_ros.model.action_heads import SinusoidalPositionalEncoding

D, HIDDEN, A, H = 8, 16, 3, 4  # tiny LLM width, head width, action dim, chunk


def _mlp_resnet_keys(prefix, input_dim, hidden, output, num_blocks=2):
    shapes = {
        'layer_norm1.weight': (input_dim,), 'layer_norm1.bias': (input_dim,),
        'fc1.weight': (hidden, input_dim), 'fc1.bias': (hidden,),
        'layer_norm2.weight': (hidden,), 'layer_norm2.bias': (hidden,),
        'fc2.weight': (output, hidden), 'fc2.bias': (output,),
    }
    for i in range(num_blocks):
        shapes.update({
            f'mlp_resnet_blocks.{i}.ffn.0.weight': (hidden,),
            f'mlp_resnet_blocks.{i}.ffn.0.bias': (hidden,),
            f'mlp_resnet_blocks.{i}.ffn.1.weight': (hidden, hidden),
            f'mlp_resnet_blocks.{i}.ffn.1.bias': (hidden,),
        })
    return {prefix + name: shape for name, shape in shapes.items()}


def _shapes(module):
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


def _randomize(module, seed=0):
    """Give every parameter (LayerNorms too, which start at 1/0) random values."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return module


def _mlp_resnet_by_hand(x, state, prefix):
    def ln(h, name):
        return F.layer_norm(h, h.shape[-1:], state[f'{prefix}{name}.weight'],
                            state[f'{prefix}{name}.bias'], eps=1e-5)

    def lin(h, name):
        return h @ state[f'{prefix}{name}.weight'].T + state[f'{prefix}{name}.bias']

    h = torch.relu(lin(ln(x, 'layer_norm1'), 'fc1'))
    for i in range(2):
        block = f'mlp_resnet_blocks.{i}.ffn.'
        h = h + torch.relu(lin(ln(h, block + '0'), block + '1'))
    return lin(ln(h, 'layer_norm2'), 'fc2')


def _group_by_loop(hidden):
    """(B, H*A, D) -> (B, H, A*D) by explicit concatenation of each step's A slot states."""
    steps = [torch.cat([hidden[:, k * A + j] for j in range(A)], dim=-1) for k in range(H)]
    return torch.stack(steps, dim=1)


def test_full_size_l1_head_keys_and_shapes_libero():
    with torch.device('meta'):
        head = L1RegressionActionHead(4096, 4096, action_dim=7, num_actions_chunk=8)
    assert _shapes(head) == _mlp_resnet_keys('model.', 28672, 4096, 7)


def test_full_size_diffusion_head_keys_and_shapes_aloha():
    with torch.device('meta'):
        head = DiffusionActionHead(4096, 4096, action_dim=14, num_actions_chunk=25)
    assert _shapes(head) == _mlp_resnet_keys('noise_predictor.mlp_resnet.', 57344, 4096, 14)
    assert list(head.buffers()) == []


def test_mlp_resnet_forward_matches_functional_derivation():
    torch.manual_seed(0)
    net = _randomize(MLPResNet(2, 12, HIDDEN, 5))
    x = torch.randn(3, 4, 12) * 2 + 1
    expected = _mlp_resnet_by_hand(x, net.state_dict(), '')
    torch.testing.assert_close(net(x), expected, rtol=1e-5, atol=1e-5)


def test_l1_head_groups_the_action_dims_of_each_step_then_runs_the_mlp():
    torch.manual_seed(0)
    head = _randomize(L1RegressionActionHead(D, HIDDEN, A, H))
    hidden = torch.randn(2, H * A, D)
    expected = _mlp_resnet_by_hand(_group_by_loop(hidden), head.state_dict(), 'model.')
    out = head.predict_action(hidden)
    assert out.shape == (2, H, A)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_diffusion_head_predict_noise_uses_the_same_grouping():
    torch.manual_seed(0)
    head = _randomize(DiffusionActionHead(D, HIDDEN, A, H))
    hidden = torch.randn(1, H * A, D)
    expected = _mlp_resnet_by_hand(
        _group_by_loop(hidden), head.state_dict(), 'noise_predictor.mlp_resnet.')
    torch.testing.assert_close(head.predict_noise(hidden), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('shape', [(1, H * A - 1, D), (1, H * A, D + 1), (H * A, D)])
def test_heads_reject_wrong_hidden_state_shapes(shape):
    for head in (L1RegressionActionHead(D, HIDDEN, A, H), DiffusionActionHead(D, HIDDEN, A, H)):
        run = head.predict_action if hasattr(head, 'predict_action') else head.predict_noise
        with pytest.raises(ValueError, match=rf'expected shape \(B, {H * A}, {D}\).*got'):
            run(torch.zeros(shape))


def test_sinusoidal_encoding_matches_formula_sin_half_first():
    dim = 16
    t = torch.tensor([0, 1, 7, 49])
    out = SinusoidalPositionalEncoding(dim)(t)
    half = dim // 2
    expected = np.zeros((4, dim))
    for row, tv in enumerate([0, 1, 7, 49]):
        for k in range(half):
            freq = math.exp(-math.log(10000) * k / (half - 1))
            expected[row, k] = math.sin(tv * freq)
            expected[row, half + k] = math.cos(tv * freq)
    assert out.dtype == torch.float32 and out.shape == (4, dim)
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=2e-5)
    assert out[0, :half].abs().max() == 0 and torch.all(out[0, half:] == 1)
    assert out[2, half - 1].item() == pytest.approx(math.sin(7 * 1e-4), abs=1e-7)


def test_sinusoidal_encoding_rejects_odd_dim_and_2d_input():
    with pytest.raises(ValueError, match='expected an even number'):
        SinusoidalPositionalEncoding(7)
    with pytest.raises(ValueError, match='expected a 1-D tensor'):
        SinusoidalPositionalEncoding(8)(torch.zeros(2, 1))


def test_diffusion_head_time_encoder_width_is_llm_width_and_stays_float32_in_bf16():
    head = DiffusionActionHead(D, HIDDEN, A, H).to(torch.bfloat16)
    out = head.time_encoder(torch.tensor([49]))
    assert out.shape == (1, D) and out.dtype == torch.float32
    assert set(head.state_dict()) == set(_mlp_resnet_keys('noise_predictor.mlp_resnet.',
                                                          D * A, HIDDEN, A))


@pytest.mark.parametrize(('steps', 'expected'), [
    (50, list(range(49, -1, -1))),
    (10, [45, 40, 35, 30, 25, 20, 15, 10, 5, 0]),
])
def test_inference_timesteps_use_leading_spacing(steps, expected):
    head = DiffusionActionHead(D, HIDDEN, A, H, num_diffusion_steps_inference=steps)
    assert head.timesteps.tolist() == expected
    head.set_num_inference_steps(50 if steps == 10 else 10)
    assert len(head.timesteps) == (50 if steps == 10 else 10)


def test_set_num_inference_steps_rejects_out_of_range():
    head = DiffusionActionHead(D, HIDDEN, A, H)
    for bad in (0, 51):
        with pytest.raises(ValueError, match=f'expected 1..50, got {bad}'):
            head.set_num_inference_steps(bad)


def _cosine_alphas_cumprod(num_train=50):
    """squaredcos_cap_v2 (Nichol & Dhariwal), computed here from the formula in float64."""
    def alpha_bar(u):
        return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = [min(1 - alpha_bar((i + 1) / num_train) / alpha_bar(i / num_train), 0.999)
             for i in range(num_train)]
    return np.cumprod(1.0 - np.array(betas))


def test_cosine_schedule_endpoints_match_spec():
    alphas = _cosine_alphas_cumprod()
    assert alphas[0] == pytest.approx(0.99825, abs=1e-5)
    assert alphas[49] == pytest.approx(9.7e-7, rel=0.02)


def _ddim_by_formula(eps, t, x, step_ratio):
    alphas = _cosine_alphas_cumprod()
    a_t = alphas[t]
    prev = t - step_ratio
    a_prev = alphas[prev] if prev >= 0 else 1.0
    x0 = np.clip((x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t), -1.0, 1.0)
    return math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps


@pytest.mark.parametrize(('steps', 't'), [(50, 49), (50, 20), (50, 3), (50, 0), (10, 45),
                                          (10, 25), (10, 0)])
def test_denoise_step_equals_ddim_formula(steps, t):
    head = DiffusionActionHead(D, HIDDEN, A, H, num_diffusion_steps_inference=steps)
    generator = torch.Generator().manual_seed(t)
    # small noise and samples so x0 is not clipped everywhere (clipped and unclipped both occur)
    eps = torch.randn(2, H, A, generator=generator) * 0.3
    x = torch.randn(2, H, A, generator=generator) * 0.8
    out = head.denoise_step(eps, torch.tensor(t), x)
    expected = _ddim_by_formula(eps.double().numpy(), t, x.double().numpy(), 50 // steps)
    assert out.shape == (2, H, A) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-5)
    # int and tensor timesteps agree
    torch.testing.assert_close(head.denoise_step(eps, t, x), out, rtol=0, atol=0)


def test_last_ddim_step_returns_the_clipped_x0():
    head = DiffusionActionHead(D, HIDDEN, A, H)
    eps = torch.zeros(1, H, A)
    x = torch.linspace(-2, 2, H * A).reshape(1, H, A)
    alpha0 = _cosine_alphas_cumprod()[0]
    expected = torch.clamp(x / math.sqrt(alpha0), -1, 1)
    torch.testing.assert_close(head.denoise_step(eps, 0, x), expected, rtol=1e-5, atol=1e-6)


def test_denoise_step_rejects_mismatched_shapes():
    head = DiffusionActionHead(D, HIDDEN, A, H)
    with pytest.raises(ValueError, match='expected the shape of noisy_actions'):
        head.denoise_step(torch.zeros(1, H, A + 1), 49, torch.zeros(1, H, A))
