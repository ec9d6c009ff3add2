"""Prismatic vision backbone: fused DINOv2 + SigLIP timm ViTs, penultimate-block patch features.

OPENVLA_OFT_REFERENCE.md section 3.1. Each ViT is a stock timm `VisionTransformer`; the only
structural change is that timm's LayerScale (`ls*.gamma`) becomes `ls*.scale_factor`, the name
stored in OpenVLA checkpoints, so our `state_dict()` keys equal upstream's minus the
`vision_backbone.` prefix. Features are the output of block depth-2 (no final norm, prefix
tokens dropped). With FiLM applied (see `film.py`) every block is also conditioned on a language
embedding.
"""

from typing import Any, List, Mapping, Optional, Sequence

import timm
from timm.layers import LayerScale as TimmLayerScale
import torch
from torch import nn

from openvla_ros.model.film import FiLMedVisionBlock

CHANNELS_PER_VIT = 3


class LayerScale(nn.Module):
    """Per-channel scale `x * scale_factor` (timm's LayerScale with the checkpoint's name)."""

    def __init__(self, scale_factor: torch.Tensor):
        super().__init__()
        self.scale_factor = nn.Parameter(scale_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale_factor


def _rename_layer_scales(vit: nn.Module) -> None:
    """Swap every timm LayerScale for ours, keeping its values (`gamma` -> `scale_factor`)."""
    for parent in list(vit.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, TimmLayerScale):
                if child.inplace:
                    raise ValueError(
                        f'{name}: expected an out-of-place timm LayerScale, got inplace')
                setattr(parent, name, LayerScale(child.gamma.detach().clone()))


def create_vit(model_id: str, image_size: int, act_layer: Optional[str] = None,
               model_kwargs: Optional[Mapping[str, Any]] = None) -> nn.Module:
    """Build a randomly initialised timm ViT as Prismatic does (no classifier head).

    `model_kwargs` (e.g. a small `embed_dim` and `depth` for tests) override the architecture
    registered under `model_id`; everything else (register tokens, layer scale, MAP head...)
    keeps the real model's structure.
    """
    kwargs = {'img_size': image_size, 'act_layer': act_layer, **dict(model_kwargs or {})}
    vit = timm.create_model(model_id, pretrained=False, num_classes=0, **kwargs)
    if len(vit.blocks) < 2:
        raise ValueError(f'{model_id}: expected a ViT with depth >= 2, got {len(vit.blocks)}')
    _rename_layer_scales(vit)
    return vit


def _penultimate_features(vit: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Patch tokens after block depth-2, no final norm: (B, 3, H, W) -> (B, P, D)."""
    penultimate = len(vit.blocks) - 2
    (features,) = vit.forward_intermediates(
        images, indices=[penultimate], norm=False, stop_early=True, output_fmt='NLC',
        intermediates_only=True)
    return features


def _film_penultimate_features(vit: nn.Module, images: torch.Tensor,
                               language_embeddings: torch.Tensor) -> torch.Tensor:
    """As `_penultimate_features`, passing the language embedding (B, llm_dim) to each block.

    Mirrors timm's `forward_intermediates` step by step; the last block is not run.
    """
    x = vit.patch_embed(images)  # (B, P, D)
    x = vit._pos_embed(x)  # (B, prefix + P, D)
    x = vit.patch_drop(x)
    x = vit.norm_pre(x)
    for block in vit.blocks[:len(vit.blocks) - 1]:
        x = block(x, language_embeddings)
    return x[:, vit.num_prefix_tokens:]  # (B, P, D)


class PrismaticVisionBackbone(nn.Module):
    """One ViT (`featurizer`) or two (+ `fused_featurizer`), patch features concatenated.

    Args:
        timm_model_ids: timm ids, DINOv2 first, e.g. ['vit_large_patch14_reg4_dinov2.lvd142m',
            'vit_so400m_patch14_siglip_224'] (one id: single backbone).
        image_size: square input resolution of every ViT.
        timm_override_act_layers: per-ViT activation override (None keeps timm's default).
        timm_model_kwargs: per-ViT extra `timm.create_model` kwargs (tiny test models).
        num_images_in_input: images stacked on the channel axis of `pixel_values`.
    """

    def __init__(self, timm_model_ids: Sequence[str], image_size: int = 224,
                 timm_override_act_layers: Optional[Sequence[Optional[str]]] = None,
                 timm_model_kwargs: Optional[Sequence[Mapping[str, Any]]] = None,
                 num_images_in_input: int = 1):
        super().__init__()
        num_vits = len(timm_model_ids)
        if num_vits not in (1, 2):
            raise ValueError(f'timm_model_ids: expected 1 or 2 ids, got {num_vits}')
        act_layers = _aligned('timm_override_act_layers', timm_override_act_layers, num_vits)
        model_kwargs = _aligned('timm_model_kwargs', timm_model_kwargs, num_vits)

        self.use_fused_vision_backbone = num_vits == 2
        self.featurizer = create_vit(timm_model_ids[0], image_size, act_layers[0],
                                     model_kwargs[0])
        self.fused_featurizer = None
        if self.use_fused_vision_backbone:
            self.fused_featurizer = create_vit(timm_model_ids[1], image_size, act_layers[1],
                                               model_kwargs[1])
        self.embed_dim = sum(vit.embed_dim for vit in self.vits)
        self.num_patches = self.featurizer.patch_embed.num_patches
        self.image_size = tuple(self.featurizer.patch_embed.img_size)
        for vit in self.vits[1:]:
            if (vit.patch_embed.num_patches, tuple(vit.patch_embed.img_size)) != (
                    self.num_patches, self.image_size):
                raise ValueError(
                    f'fused_featurizer: expected {self.num_patches} patches of a '
                    f'{self.image_size} image like the featurizer, got '
                    f'{vit.patch_embed.num_patches} patches of {vit.patch_embed.img_size}')
        self.num_images_in_input = 1
        self.set_num_images_in_input(num_images_in_input)

    @property
    def vits(self) -> List[nn.Module]:
        """The ViTs in channel order: featurizer (channels 0-2), fused_featurizer (3-5)."""
        if self.fused_featurizer is None:
            return [self.featurizer]
        return [self.featurizer, self.fused_featurizer]

    @property
    def channels_per_image(self) -> int:
        return CHANNELS_PER_VIT * len(self.vits)

    @property
    def uses_film(self) -> bool:
        return isinstance(self.featurizer.blocks[0], FiLMedVisionBlock)

    def set_num_images_in_input(self, n: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f'num_images_in_input: expected an int >= 1, got {n!r}')
        self.num_images_in_input = n

    def forward(self, pixel_values: torch.Tensor,
                language_embeddings: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Patch features of every image, images in order along the patch axis.

        Args:
            pixel_values: (B, C*N, H, W) with C = 6 (fused: DINOv2 channels 0-2, SigLIP 3-5 of
                each image) or 3 (single ViT), N = `num_images_in_input`.
            language_embeddings: (B, llm_dim) FiLM conditioning; required iff FiLM is applied.

        Returns:
            (B, N*P, embed_dim) features, P = `num_patches`.
        """
        batch = self._check_inputs(pixel_values, language_embeddings)
        n = self.num_images_in_input
        height, width = self.image_size
        channels = self.channels_per_image
        images = pixel_values.reshape(batch * n, channels, height, width)  # (B*N, C, H, W)
        if language_embeddings is not None:  # the same instruction conditions every image
            language_embeddings = language_embeddings.repeat_interleave(n, 0)  # (B*N, llm_dim)
        features = []
        for k, vit in enumerate(self.vits):
            first = CHANNELS_PER_VIT * k
            vit_images = images[:, first:first + CHANNELS_PER_VIT]  # (B*N, 3, H, W)
            if language_embeddings is None:
                features.append(_penultimate_features(vit, vit_images))
            else:
                features.append(
                    _film_penultimate_features(vit, vit_images, language_embeddings))
        fused = torch.cat(features, dim=-1)  # (B*N, P, embed_dim)
        return fused.reshape(batch, n * self.num_patches, self.embed_dim)  # (B, N*P, embed_dim)

    def _check_inputs(self, pixel_values: torch.Tensor,
                      language_embeddings: Optional[torch.Tensor]) -> int:
        expected = (self.channels_per_image * self.num_images_in_input, *self.image_size)
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != expected:
            raise ValueError(
                f'pixel_values: expected shape (B, {expected[0]}, {expected[1]}, {expected[2]}) '
                f'({self.num_images_in_input} image(s) x {self.channels_per_image} channels), '
                f'got {tuple(pixel_values.shape)}')
        batch = pixel_values.shape[0]
        if not self.uses_film:
            if language_embeddings is not None:
                raise ValueError('language_embeddings: expected None (FiLM is not applied), '
                                 f'got a tensor of shape {tuple(language_embeddings.shape)}')
            return batch
        llm_dim = self.featurizer.blocks[0].llm_dim
        if language_embeddings is None:
            raise ValueError(f'language_embeddings: expected shape ({batch}, {llm_dim}) '
                             'because FiLM is applied, got None')
        if tuple(language_embeddings.shape) != (batch, llm_dim):
            raise ValueError(f'language_embeddings: expected shape ({batch}, {llm_dim}), '
                             f'got {tuple(language_embeddings.shape)}')
        return batch


def _aligned(name: str, values: Optional[Sequence[Any]], count: int) -> List[Any]:
    if values is None:
        return [None] * count
    if len(values) != count:
        raise ValueError(f'{name}: expected {count} entries (one per timm id), '
                         f'got {len(values)}')
    return list(values)
