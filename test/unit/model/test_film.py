"""FiLM: block math and layout (spec 3.5), and the LoRA-merging checkpoint conversion (2.2/2.3)."""

import copy

import pytest
import torch
from torch import nn

from openvla_ros.model.film import apply_film
from openvla_ros.model.film import convert_film_checkpoint
from openvla_ros.model.film import FiLMedVisionBlock
from openvla_ros.model.film import lora_rank_of
from openvla_ros.model.film import to_upstream_film_checkpoint
from openvla_ros.model.vision import PrismaticVisionBackbone

DINO = 'vit_large_patch14_reg4_dinov2.lvd142m'
SIGLIP = 'vit_so400m_patch14_siglip_224'
TINY = {'embed_dim': 32, 'depth': 3, 'num_heads': 2, 'mlp_ratio': 2.0}
SIGLIP_TINY = {'embed_dim': 24, 'depth': 3, 'num_heads': 2, 'mlp_ratio': 2.0}
IMAGE = 56
LLM_DIM = 16


def _randomize(module, seed=0, std=0.2):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
    return module


def _backbone(num_images=1, film=True):
    backbone = PrismaticVisionBackbone([DINO, SIGLIP], image_size=IMAGE,
                                       timm_model_kwargs=[TINY, SIGLIP_TINY],
                                       num_images_in_input=num_images).eval()
    if film:
        apply_film(backbone, LLM_DIM)
    return _randomize(backbone)


def _film_linears(backbone):
    return [module for name, module in backbone.named_modules()
            if name.endswith('.scale') or name.endswith('.shift')]


def _vit_linear_names(backbone):
    """PEFT 'all-linear' targets: every ViT nn.Linear except FiLM's, plus patch_embed.proj.

    peft 0.11.1 (upstream's pin) turns 'all-linear' into short module names; 'proj' (from
    attn.proj) also matches the patch-embedding Conv2d, so a real FiLM file has LoRA there.
    """
    film = {id(module) for module in _film_linears(backbone)}
    return {name for name, module in backbone.named_modules()
            if (isinstance(module, nn.Linear) and id(module) not in film)
            or name.endswith('patch_embed.proj')}


def _lora_delta(a, b):
    """B A for a Linear ([r, in], [out, r]) or a Conv2d ([r, in, kh, kw], [out, r, 1, 1])."""
    return (b.reshape(b.shape[0], -1) @ a.reshape(a.shape[0], -1)).reshape(
        (b.shape[0],) + tuple(a.shape[1:]))


def test_apply_film_wraps_every_block_and_adds_scale_shift():
    backbone = _backbone()
    keys = set(backbone.state_dict())
    assert backbone.uses_film
    for prefix, vit, dim in (('featurizer', backbone.featurizer, 32),
                             ('fused_featurizer', backbone.fused_featurizer, 24)):
        assert all(isinstance(block, FiLMedVisionBlock) for block in vit.blocks)
        for i in range(3):
            block = f'{prefix}.blocks.{i}'
            assert f'{block}.block.norm1.weight' in keys and f'{block}.norm1.weight' not in keys
            assert f'{block}.block.attn.qkv.weight' in keys
            for name in ('scale', 'shift'):
                assert backbone.state_dict()[f'{block}.{name}.weight'].shape == (dim, LLM_DIM)
                assert backbone.state_dict()[f'{block}.{name}.bias'].shape == (dim,)
    assert 'featurizer.blocks.0.block.ls1.scale_factor' in keys
    assert 'fused_featurizer.attn_pool.q.weight' in keys and 'featurizer.pos_embed' in keys
    with pytest.raises(ValueError, match='expected a backbone without FiLM'):
        apply_film(backbone, LLM_DIM)


def test_full_size_film_projection_shapes_on_meta_device():
    with torch.device('meta'):
        backbone = PrismaticVisionBackbone([DINO, SIGLIP])
        apply_film(backbone, 4096)
    state = backbone.state_dict()
    assert state['featurizer.blocks.23.scale.weight'].shape == (1024, 4096)
    assert state['fused_featurizer.blocks.26.shift.weight'].shape == (1152, 4096)
    assert state['fused_featurizer.blocks.26.shift.bias'].shape == (1152,)


def test_zero_film_gives_exactly_the_plain_features():
    plain = _backbone(num_images=2, film=False)
    filmed = copy.deepcopy(plain)
    apply_film(filmed, LLM_DIM)
    with torch.no_grad():
        for linear in _film_linears(filmed):
            linear.weight.zero_()
            linear.bias.zero_()
        pixels = torch.randn(2, 12, IMAGE, IMAGE)
        expected = plain(pixels)
        out = filmed(pixels, torch.randn(2, LLM_DIM))
    assert torch.equal(out, expected)


def test_film_block_matches_the_formula():
    backbone = _backbone()
    film_block = backbone.featurizer.blocks[1]
    block = film_block.block
    x = torch.randn(2, 21, 32)
    language = torch.randn(2, LLM_DIM)
    with torch.no_grad():
        out = film_block(x, language)
        gamma = language @ film_block.scale.weight.T + film_block.scale.bias  # (B, D)
        beta = language @ film_block.shift.weight.T + film_block.shift.bias
        h = x + block.ls1.scale_factor * block.attn(block.norm1(x))
        h = h * (1 + gamma[:, None]) + beta[:, None]
        expected = h + block.ls2.scale_factor * block.mlp(block.norm2(h))
        # each sample is modulated by its own embedding only
        second_alone = film_block(x[1:], language[1:])
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[1:], second_alone, rtol=1e-5, atol=1e-5)


def test_film_features_depend_on_language_and_match_per_image_loop():
    backbone = _backbone(num_images=2)
    pixels = torch.randn(1, 12, IMAGE, IMAGE)
    language = torch.randn(1, LLM_DIM)
    with torch.no_grad():
        out = backbone(pixels, language)
        other = backbone(pixels, torch.randn(1, LLM_DIM))
        backbone.set_num_images_in_input(1)
        per_image = [backbone(pixels[:, 6 * n:6 * n + 6], language) for n in range(2)]
    assert out.shape == (1, 32, 56)
    assert not torch.allclose(out, other, atol=1e-3)
    torch.testing.assert_close(out, torch.cat(per_image, dim=1), rtol=1e-5, atol=1e-5)


def test_film_backbone_requires_language_embeddings_of_the_right_shape():
    backbone = _backbone()
    pixels = torch.zeros(2, 6, IMAGE, IMAGE)
    with pytest.raises(ValueError, match=r'expected shape \(2, 16\) because FiLM is applied'):
        backbone(pixels)
    with pytest.raises(ValueError, match=r'expected shape \(2, 16\), got \(2, 8\)'):
        backbone(pixels, torch.zeros(2, 8))


def _fake_upstream(backbone, rank, seed=1, dtype=torch.float32):
    """Upstream layout written by hand: PEFT LoRA on every ViT linear, wrapper prefix."""
    state = {name: value.to(dtype) for name, value in backbone.state_dict().items()}
    targets = _vit_linear_names(backbone)
    generator = torch.Generator().manual_seed(seed)
    upstream, lora = {}, {}
    for key, value in state.items():
        module, _, leaf = key.rpartition('.')
        if module not in targets:
            upstream['vision_backbone.' + key] = value
            continue
        upstream[f'vision_backbone.{module}.base_layer.{leaf}'] = value
        if leaf == 'weight':
            conv = (1, 1) if value.dim() == 4 else ()
            a = torch.randn((rank,) + tuple(value.shape[1:]), generator=generator).to(dtype)
            b = torch.randn((value.shape[0], rank) + conv, generator=generator).to(dtype)
            upstream[f'vision_backbone.{module}.lora_A.default.weight'] = a
            upstream[f'vision_backbone.{module}.lora_B.default.weight'] = b
            lora[module] = (a, b)
    return upstream, lora


@pytest.mark.parametrize(('rank', 'scaling'), [(4, 1.0), (32, 0.5)])
def test_convert_merges_lora_with_alpha_min_r_16(rank, scaling):
    backbone = _backbone()
    state = backbone.state_dict()
    upstream, lora = _fake_upstream(backbone, rank)
    assert lora_rank_of(upstream) == rank
    converted = convert_film_checkpoint(upstream)
    assert set(converted) == set(state)
    # 4 linears per block in both ViTs + SigLIP attn_pool + both patch-embedding convs
    assert len(lora) == 3 * 4 * 2 + 5 + 2
    for module, (a, b) in lora.items():
        expected = state[f'{module}.weight'] + scaling * _lora_delta(a, b)
        torch.testing.assert_close(converted[f'{module}.weight'], expected, rtol=1e-6,
                                   atol=1e-6)
        assert torch.equal(converted[f'{module}.bias'], state[f'{module}.bias'])
    assert torch.equal(converted['featurizer.blocks.2.scale.weight'],
                       state['featurizer.blocks.2.scale.weight'])
    assert torch.equal(converted['fused_featurizer.attn_pool.latent'],
                       state['fused_featurizer.attn_pool.latent'])
    result = backbone.load_state_dict(converted, strict=True)
    assert not result.missing_keys and not result.unexpected_keys


class _UnmergedLoRALinear(nn.Module):
    """PEFT's unmerged forward: x W^T + b + s (x A^T) B^T."""

    def __init__(self, base, a, b, scaling):
        super().__init__()
        self.base, self.a, self.b, self.scaling = base, a, b, scaling

    def forward(self, x):
        return self.base(x) + self.scaling * ((x @ self.a.T) @ self.b.T)


class _UnmergedLoRAConv(nn.Module):
    """PEFT's unmerged Conv2d forward: conv(x, W) + s conv1x1(conv(x, A, same stride), B)."""

    def __init__(self, base, a, b, scaling):
        super().__init__()
        self.base, self.a, self.b, self.scaling = base, a, b, scaling

    def forward(self, x):
        down = nn.functional.conv2d(x, self.a, stride=self.base.stride,
                                    padding=self.base.padding)
        return self.base(x) + self.scaling * nn.functional.conv2d(down, self.b)


def test_merged_backbone_matches_unmerged_lora_reference_forward():
    rank, scaling = 32, 0.5
    reference = _backbone()
    upstream, lora = _fake_upstream(reference, rank)
    with torch.no_grad():  # shrink B so the adapters perturb instead of dominating
        lora = {module: (a / rank, b * 0.02) for module, (a, b) in lora.items()}
        for module, (a, b) in lora.items():
            upstream[f'vision_backbone.{module}.lora_A.default.weight'] = a
            upstream[f'vision_backbone.{module}.lora_B.default.weight'] = b
    merged = copy.deepcopy(reference)
    merged.load_state_dict(convert_film_checkpoint(upstream), strict=True)
    pixels = torch.randn(2, 6, IMAGE, IMAGE)
    language = torch.randn(2, LLM_DIM)
    with torch.no_grad():
        base_only = reference(pixels, language)
    for module, (a, b) in lora.items():
        parent_name, _, child = module.rpartition('.')
        parent = reference.get_submodule(parent_name)
        unmerged = _UnmergedLoRAConv if a.dim() == 4 else _UnmergedLoRALinear
        setattr(parent, child, unmerged(getattr(parent, child), a, b, scaling))
    with torch.no_grad():
        expected = reference(pixels, language)
        out = merged(pixels, language)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    assert (base_only - expected).abs().max() > 1e-2  # the adapters do change the features


def test_merge_happens_in_float32_and_keeps_the_base_dtype():
    backbone = _backbone()
    upstream, lora = _fake_upstream(backbone, 8, dtype=torch.bfloat16)
    converted = convert_film_checkpoint(upstream)
    module = 'featurizer.blocks.0.block.attn.qkv'
    a, b = lora[module]
    base = upstream[f'vision_backbone.{module}.base_layer.weight']
    expected = (base.float() + 1.0 * (b.float() @ a.float())).to(torch.bfloat16)
    assert converted[f'{module}.weight'].dtype == torch.bfloat16
    assert torch.equal(converted[f'{module}.weight'], expected)


def test_convert_accepts_a_ddp_module_prefix_and_leaves_its_input_alone():
    upstream, _ = _fake_upstream(_backbone(), 4)
    prefixed = {'module.' + key: value for key, value in upstream.items()}
    before = set(prefixed)
    converted = convert_film_checkpoint(prefixed)
    assert set(prefixed) == before
    for key, value in convert_film_checkpoint(upstream).items():
        assert torch.equal(converted[key], value)


def test_no_lora_checkpoint_only_loses_the_prefix():
    state = _backbone().state_dict()
    upstream = {'vision_backbone.' + key: value for key, value in state.items()}
    assert lora_rank_of(upstream) is None
    converted = convert_film_checkpoint(upstream)
    assert converted.keys() == state.keys()
    assert all(converted[key] is state[key] for key in state)


@pytest.fixture(scope='module')
def upstream_rank4():
    upstream, _ = _fake_upstream(_backbone(), 4)
    return upstream


def _broken(upstream, drop=(), replace=None):
    broken = {key: value for key, value in upstream.items() if key not in drop}
    broken.update(replace or {})
    return broken


QKV = 'vision_backbone.featurizer.blocks.1.block.attn.qkv'


@pytest.mark.parametrize(('edit', 'message'), [
    ({'drop': [QKV + '.lora_B.default.weight']},
     f"'{QKV}.base_layer.weight': expected its LoRA partner '{QKV}.lora_B.default.weight', "
     'got none'),
    ({'drop': [QKV + '.base_layer.weight']}, f"'{QKV}.lora_A.default.weight': expected its base"),
    ({'replace': {QKV + '.lora_A.default.weight': torch.zeros(4, 31)}},
     rf"'{QKV}.lora_A.default.weight': expected shape \(r, 32\)"),
    ({'replace': {QKV + '.lora_B.default.weight': torch.zeros(95, 4)}},
     r"attn.qkv.lora_B.default.weight': expected shape \(96, 4\), got \(95, 4\)"),
    ({'replace': {QKV + '.lora_A.default.weight': torch.zeros(8, 32)}},
     'expected one rank for all adapters, got 4 .*, 8'),
    ({'replace': {'featurizer.pos_embed': torch.zeros(1)}},
     "'featurizer.pos_embed': expected a key starting with 'vision_backbone.'"),
    ({'replace': {QKV + '.lora_magnitude_vector.default.weight': torch.zeros(96)}},
     'unsupported LoRA key'),
])
def test_inconsistent_checkpoints_raise_value_error_naming_the_key(upstream_rank4, edit,
                                                                   message):
    with pytest.raises(ValueError, match=message):
        convert_film_checkpoint(_broken(upstream_rank4, **edit))


def test_to_upstream_puts_lora_on_every_vit_linear_but_not_film():
    backbone = _backbone()
    state = backbone.state_dict()
    upstream = to_upstream_film_checkpoint(state, 32, torch.Generator().manual_seed(0))
    with_lora = {key[len('vision_backbone.'):-len('.lora_A.default.weight')]
                 for key in upstream if key.endswith('.lora_A.default.weight')}
    assert with_lora == _vit_linear_names(backbone)
    assert not any('.scale.' in name or '.shift.' in name for name in with_lora)
    assert lora_rank_of(upstream) == 32
    converted = convert_film_checkpoint(upstream)
    assert converted.keys() == state.keys()
    for module in with_lora:
        a = upstream[f'vision_backbone.{module}.lora_A.default.weight']
        b = upstream[f'vision_backbone.{module}.lora_B.default.weight']
        assert a.abs().min() > 0 and b.abs().max() > 0
        torch.testing.assert_close(converted[f'{module}.weight'],
                                   state[f'{module}.weight'] + 0.5 * _lora_delta(a, b))
    assert torch.equal(converted['featurizer.blocks.0.scale.weight'],
                       state['featurizer.blocks.0.scale.weight'])
    again = to_upstream_film_checkpoint(state, 32, torch.Generator().manual_seed(0))
    assert all(torch.equal(again[key], value) for key, value in upstream.items())
    with pytest.raises(ValueError, match='expected an int >= 1, got 0'):
        to_upstream_film_checkpoint(state, 0)
