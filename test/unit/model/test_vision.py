"""Vision backbone: upstream key names/shapes (spec 3.1), penultimate features, channel split."""

import pytest
import torch
import torch.nn.functional as F

from openvla_ros.model.vision import PrismaticVisionBackbone

DINO = 'vit_large_patch14_reg4_dinov2.lvd142m'
SIGLIP = 'vit_so400m_patch14_siglip_224'
TINY = {'embed_dim': 32, 'depth': 3, 'num_heads': 2, 'mlp_ratio': 2.0}
SIGLIP_TINY = {'embed_dim': 24, 'depth': 4, 'num_heads': 2, 'mlp_ratio': 2.0}
IMAGE = 56  # 4 x 4 patches of 14 px keeps the forward tests fast


def _tiny(num_images=1, ids=(DINO, SIGLIP), image_size=IMAGE, seed=0):
    kwargs = [TINY, SIGLIP_TINY][:len(ids)]
    backbone = PrismaticVisionBackbone(list(ids), image_size=image_size, timm_model_kwargs=kwargs,
                                       num_images_in_input=num_images).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # LayerScale starts at 1e-5; random values make every block count
        for parameter in backbone.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    return backbone


def _shapes(module):
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


def _dino_keys(dim, depth, mlp, patches):
    keys = {'cls_token': (1, 1, dim), 'reg_token': (1, 4, dim), 'pos_embed': (1, patches, dim),
            'patch_embed.proj.weight': (dim, 3, 14, 14), 'patch_embed.proj.bias': (dim,),
            'norm.weight': (dim,), 'norm.bias': (dim,)}
    for i in range(depth):
        keys.update(_block_keys(f'blocks.{i}.', dim, mlp, layer_scale=True))
    return keys


def _siglip_keys(dim, depth, mlp, patches):
    keys = {'pos_embed': (1, patches, dim),
            'patch_embed.proj.weight': (dim, 3, 14, 14), 'patch_embed.proj.bias': (dim,),
            'norm.weight': (dim,), 'norm.bias': (dim,),
            'attn_pool.latent': (1, 1, dim),
            'attn_pool.q.weight': (dim, dim), 'attn_pool.q.bias': (dim,),
            'attn_pool.kv.weight': (2 * dim, dim), 'attn_pool.kv.bias': (2 * dim,),
            'attn_pool.proj.weight': (dim, dim), 'attn_pool.proj.bias': (dim,),
            'attn_pool.norm.weight': (dim,), 'attn_pool.norm.bias': (dim,),
            'attn_pool.mlp.fc1.weight': (mlp, dim), 'attn_pool.mlp.fc1.bias': (mlp,),
            'attn_pool.mlp.fc2.weight': (dim, mlp), 'attn_pool.mlp.fc2.bias': (dim,)}
    for i in range(depth):
        keys.update(_block_keys(f'blocks.{i}.', dim, mlp, layer_scale=False))
    return keys


def _block_keys(prefix, dim, mlp, layer_scale):
    keys = {'norm1.weight': (dim,), 'norm1.bias': (dim,),
            'attn.qkv.weight': (3 * dim, dim), 'attn.qkv.bias': (3 * dim,),
            'attn.proj.weight': (dim, dim), 'attn.proj.bias': (dim,),
            'norm2.weight': (dim,), 'norm2.bias': (dim,),
            'mlp.fc1.weight': (mlp, dim), 'mlp.fc1.bias': (mlp,),
            'mlp.fc2.weight': (dim, mlp), 'mlp.fc2.bias': (dim,)}
    if layer_scale:
        keys.update({'ls1.scale_factor': (dim,), 'ls2.scale_factor': (dim,)})
    return {prefix + name: shape for name, shape in keys.items()}


def _prefixed(prefix, keys):
    return {prefix + name: shape for name, shape in keys.items()}


def test_tiny_backbone_has_exactly_the_upstream_keys_at_small_width():
    backbone = PrismaticVisionBackbone([DINO, SIGLIP], timm_model_kwargs=[TINY, SIGLIP_TINY])
    expected = {**_prefixed('featurizer.', _dino_keys(32, 3, 64, 256)),
                **_prefixed('fused_featurizer.', _siglip_keys(24, 4, 48, 256))}
    assert _shapes(backbone) == expected
    assert list(backbone.buffers()) == []
    assert (backbone.embed_dim, backbone.num_patches, backbone.num_images_in_input) == (56, 256, 1)
    assert backbone.use_fused_vision_backbone and not backbone.uses_film
    # the real DINOv2 structure survives the small width: 1 cls + 4 reg tokens, pos embed only
    # on patches
    assert backbone.featurizer.num_prefix_tokens == 5 and backbone.featurizer.no_embed_class
    assert backbone.fused_featurizer.num_prefix_tokens == 0


def test_full_size_backbone_keys_and_shapes_on_meta_device():
    with torch.device('meta'):
        backbone = PrismaticVisionBackbone([DINO, SIGLIP], image_size=224)
    expected = {**_prefixed('featurizer.', _dino_keys(1024, 24, 4096, 256)),
                **_prefixed('fused_featurizer.', _siglip_keys(1152, 27, 4304, 256))}
    assert _shapes(backbone) == expected
    assert (backbone.embed_dim, backbone.num_patches) == (2176, 256)
    dino_block, siglip_block = backbone.featurizer.blocks[0], backbone.fused_featurizer.blocks[0]
    assert dino_block.attn.num_heads == 16 and siglip_block.attn.num_heads == 16
    for block in (dino_block, siglip_block):
        assert block.norm1.eps == 1e-6 and block.mlp.act.approximate == 'none'


def _vit_by_hand(vit, images, prefix_tokens, stop_after):
    """Patch embed as a convolution, pos embed on patches, prefix tokens, timm blocks 0..k."""
    state = vit.state_dict()
    x = F.conv2d(images, state['patch_embed.proj.weight'], state['patch_embed.proj.bias'],
                 stride=14)
    x = x.flatten(2).transpose(1, 2) + state['pos_embed']  # (B, P, D)
    batch = images.shape[0]
    prefix = [state[name].expand(batch, -1, -1) for name in prefix_tokens]
    x = torch.cat(prefix + [x], dim=1)
    for block in vit.blocks[:stop_after + 1]:
        x = block(x)
    return x[:, sum(tokens.shape[1] for tokens in prefix):]


def test_features_are_the_penultimate_block_output_without_norm_or_prefix_tokens():
    backbone = _tiny()
    pixels = torch.randn(2, 6, IMAGE, IMAGE)
    with torch.no_grad():
        out = backbone(pixels)
        dino = _vit_by_hand(backbone.featurizer, pixels[:, :3], ['cls_token', 'reg_token'], 1)
        siglip = _vit_by_hand(backbone.fused_featurizer, pixels[:, 3:], [], 2)
        dino_last = _vit_by_hand(backbone.featurizer, pixels[:, :3], ['cls_token', 'reg_token'],
                                 2)
    assert out.shape == (2, 16, 56)
    torch.testing.assert_close(out, torch.cat([dino, siglip], dim=-1), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out[..., :32], dino_last, atol=1e-2)  # the last block differs


def test_layer_scale_uses_scale_factor():
    """With every ls*.scale_factor zero, each DINOv2 block is the identity map."""
    backbone = _tiny()
    with torch.no_grad():
        for name, parameter in backbone.featurizer.named_parameters():
            if name.endswith('scale_factor'):
                parameter.zero_()
        pixels = torch.randn(1, 6, IMAGE, IMAGE)
        out = backbone(pixels)
        expected = _vit_by_hand(backbone.featurizer, pixels[:, :3], [], -1)
    torch.testing.assert_close(out[..., :32], expected, rtol=0, atol=1e-6)


def test_multi_image_input_equals_the_per_image_loop():
    backbone = _tiny(num_images=3)
    pixels = torch.randn(2, 18, IMAGE, IMAGE)
    with torch.no_grad():
        out = backbone(pixels)
        backbone.set_num_images_in_input(1)
        per_image = [backbone(pixels[:, 6 * n:6 * n + 6]) for n in range(3)]
    assert out.shape == (2, 3 * 16, 56)
    torch.testing.assert_close(out, torch.cat(per_image, dim=1), rtol=1e-5, atol=1e-5)
    # images really differ, so a wrong order would be caught
    assert not torch.allclose(per_image[0], per_image[1], atol=1e-2)


def test_single_backbone_uses_three_channels_per_image():
    backbone = _tiny(num_images=2, ids=(DINO,))
    assert backbone.fused_featurizer is None and not backbone.use_fused_vision_backbone
    assert backbone.embed_dim == 32
    pixels = torch.randn(1, 6, IMAGE, IMAGE)
    with torch.no_grad():
        out = backbone(pixels)
        second = _vit_by_hand(backbone.featurizer, pixels[:, 3:], ['cls_token', 'reg_token'], 1)
    assert out.shape == (1, 32, 32)
    torch.testing.assert_close(out[:, 16:], second, rtol=1e-5, atol=1e-5)


def test_activation_override_is_passed_to_timm():
    backbone = PrismaticVisionBackbone([DINO, SIGLIP], image_size=IMAGE,
                                       timm_override_act_layers=[None, 'gelu_tanh'],
                                       timm_model_kwargs=[TINY, SIGLIP_TINY])
    assert isinstance(backbone.featurizer.blocks[0].mlp.act, torch.nn.GELU)
    assert type(backbone.fused_featurizer.blocks[0].mlp.act).__name__ == 'GELUTanh'


@pytest.mark.parametrize(('shape', 'message'), [
    ((1, 6, IMAGE, IMAGE), r'expected shape \(B, 12, 56, 56\) .*got \(1, 6, 56, 56\)'),
    ((1, 12, IMAGE, 28), r'expected shape \(B, 12, 56, 56\) .*got \(1, 12, 56, 28\)'),
    ((12, IMAGE, IMAGE), r'expected shape \(B, 12, 56, 56\) .*got \(12, 56, 56\)'),
])
def test_wrong_pixel_shape_raises_value_error(shape, message):
    backbone = _tiny(num_images=2)
    with pytest.raises(ValueError, match=message):
        backbone(torch.zeros(shape))


def test_language_embeddings_without_film_are_rejected():
    backbone = _tiny()
    with pytest.raises(ValueError, match='expected None'):
        backbone(torch.zeros(1, 6, IMAGE, IMAGE), torch.zeros(1, 8))


def test_bad_constructor_arguments_raise_value_error():
    with pytest.raises(ValueError, match='expected 1 or 2 ids, got 3'):
        PrismaticVisionBackbone([DINO, SIGLIP, DINO])
    with pytest.raises(ValueError, match='expected 2 entries .* got 1'):
        PrismaticVisionBackbone([DINO, SIGLIP], timm_model_kwargs=[TINY])
    with pytest.raises(ValueError, match='depth >= 2'):
        PrismaticVisionBackbone([DINO], timm_model_kwargs=[{**TINY, 'depth': 1}])
    backbone = _tiny()
    with pytest.raises(ValueError, match='expected an int >= 1, got 0'):
        backbone.set_num_images_in_input(0)
