"""Models to train: small from-scratch OFT architectures, or a released checkpoint to fine-tune.

A from-scratch model uses the real structure (fused DINOv2 + SigLIP timm ViTs, Prismatic
projector, Llama-2, OFT heads) at a CPU-trainable size, so its saved directory is a checkpoint
like any released one and loads with `OpenVLAPolicy.from_pretrained` unchanged.

`sim-small`: ViTs of the tiny test factory (embed 32 / 48, depth 3) at 112 px (8 x 8 = 64
patches per ViT), Llama 4 layers x 128 wide (9.4 M parameters, most of them the 32064-row
embedding and LM head). Measured (issue 8): the factory's 2 x 64 Llama ignores the colour word,
this size learns it.
"""

import dataclasses
from typing import Optional

import torch

from openvla_ros.model.checkpoint import DEFAULT_FILM_LORA_RANK
from openvla_ros.model.config import (
    ActionConfig, LLAMA_DEFAULTS, OpenVLAConfig, text_config_diff)
from openvla_ros.model.modeling import OpenVLAForActionPrediction
from openvla_ros.model.testing.factory import TINY_TIMM_MODEL_KWARGS


@dataclasses.dataclass(frozen=True)
class Architecture:
    """Sizes of a from-scratch model."""

    image_size: int
    llama: dict
    timm_model_kwargs: tuple = TINY_TIMM_MODEL_KWARGS


ARCHITECTURES = {
    'sim-small': Architecture(image_size=112, llama={
        'hidden_size': 128, 'intermediate_size': 344, 'num_hidden_layers': 4,
        'num_attention_heads': 4, 'vocab_size': 32064, 'pad_token_id': 32000,
        'initializer_range': 0.02}),
    # The test factory's Llama at 112 px: for fast tests of the training path.
    'test-tiny': Architecture(image_size=112, llama={
        'hidden_size': 64, 'intermediate_size': 128, 'num_hidden_layers': 2,
        'num_attention_heads': 4, 'vocab_size': 32064, 'pad_token_id': 32000,
        'initializer_range': 0.02}),
}


def scratch_action_config(platform: str = 'LIBERO', head_type: str = 'l1',
                          num_images: int = 1, use_proprio: bool = True,
                          uses_film: bool = False) -> ActionConfig:
    """Platform constants (chunk, dims, normalization) for a new model."""
    return ActionConfig.for_platform(
        platform, head_type, uses_film=uses_film, num_images_in_input=num_images,
        use_proprio=use_proprio, film_lora_rank=DEFAULT_FILM_LORA_RANK if uses_film else None)


def build_scratch_model(architecture: str, action_config: ActionConfig,
                        seed: int = 0) -> OpenVLAForActionPrediction:
    """Randomly initialised fp32 model (deterministic for a seed, global RNG untouched)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f'architecture: expected one of {sorted(ARCHITECTURES)}, got '
                         f'{architecture!r}')
    spec = ARCHITECTURES[architecture]
    config = OpenVLAConfig(timm_model_kwargs=spec.timm_model_kwargs,
                           image_sizes=(spec.image_size, spec.image_size),
                           text_config=text_config_diff(dict(LLAMA_DEFAULTS, **spec.llama)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = OpenVLAForActionPrediction(config, action_config)
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if name.endswith('scale_factor'):  # timm's 1e-5 LayerScale mutes new blocks
                    parameter.fill_(1.0)
    return model


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def describe(model: OpenVLAForActionPrediction, name: Optional[str] = None) -> str:
    cfg = model.action_config
    return (f'{name or "model"}: {count_parameters(model) / 1e6:.2f} M parameters, '
            f'{model.config.image_size} px, Llama {model.config.llm_dim} wide, '
            f'{cfg.head_type} head, chunk {cfg.chunk_len} x {cfg.action_dim}, '
            f'{cfg.num_images_in_input} image(s), proprio {cfg.use_proprio}')
