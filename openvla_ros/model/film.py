"""FiLM language conditioning of the ViT blocks (OpenVLA-OFT+), and its checkpoint conversion.

FiLM (Perez et al. 2018, https://arxiv.org/abs/1709.07871): from the mean LLM input embedding of
the prompt, each ViT block predicts a per-channel scale gamma and shift beta, applied between
its attention and MLP halves (OPENVLA_OFT_REFERENCE.md section 3.5).

Upstream stores the fine-tuned ViT only in `vision_backbone--<step>_checkpoint.pt`, with the ViT
LoRA adapters unmerged (spec sections 2.2, 2.3). `convert_film_checkpoint` turns that file into
a plain state dict for our FiLM-applied `PrismaticVisionBackbone`, merging
W = W_base + (alpha / r) B A with alpha = min(r, 16).
"""

import re
from typing import Dict, Iterator, Mapping, Optional, Tuple, TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:  # vision.py imports this module at runtime
    from openvla_ros.model.vision import PrismaticVisionBackbone

# Keys of upstream's file are relative to the FiLM wrapper, whose backbone is `vision_backbone`.
UPSTREAM_PREFIX = 'vision_backbone.'
LORA_ALPHA_CAP = 16
# What PEFT's target_modules='all-linear' wraps inside the timm ViTs: every nn.Linear (block
# attn.qkv / attn.proj / mlp.fc1 / mlp.fc2, SigLIP attn_pool.q / kv / proj / mlp.fc1 / mlp.fc2)
# and also the patch_embed.proj Conv2d: PEFT matches the short name 'proj' of attn.proj, and
# that name also fits the patch embedding (checked against peft 0.11.1, upstream's pin). The
# FiLM scale/shift linears are created after PEFT wrapped the model: no LoRA.
LORA_TARGET = re.compile(
    r'(?:^|\.)(?:attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2|attn_pool\.q|attn_pool\.kv'
    r'|attn_pool\.proj|patch_embed\.proj)$')

_BASE_WEIGHT = '.base_layer.weight'
_BASE_BIAS = '.base_layer.bias'
_LORA_A = '.lora_A.default.weight'
_LORA_B = '.lora_B.default.weight'


class FiLMedVisionBlock(nn.Module):
    """A timm ViT block whose residual stream is modulated by a language embedding.

    x = x + ls1(attn(norm1(x)));  x = x * (1 + gamma) + beta;  x = x + ls2(mlp(norm2(x))),
    with gamma = scale(e), beta = shift(e) of the language embedding e [B x llm_dim], each
    [B x vision_dim], broadcast over the tokens of x [B x L x vision_dim].
    """

    def __init__(self, block: nn.Module, llm_dim: int, vision_dim: int):
        super().__init__()
        self.block = block
        self.llm_dim = llm_dim
        self.vision_dim = vision_dim
        reference = next(block.parameters())
        factory = {'device': reference.device, 'dtype': reference.dtype}
        self.scale = nn.Linear(llm_dim, vision_dim, **factory)
        self.shift = nn.Linear(llm_dim, vision_dim, **factory)

    def forward(self, x: torch.Tensor, language_embeddings: torch.Tensor) -> torch.Tensor:
        block = self.block
        language_embeddings = language_embeddings.to(self.scale.weight.dtype)
        gamma = self.scale(language_embeddings)[:, None, :]  # (B, 1, D)
        beta = self.shift(language_embeddings)[:, None, :]  # (B, 1, D)
        x = x + block.drop_path1(block.ls1(block.attn(block.norm1(x))))
        x = x * (1 + gamma) + beta
        return x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))


def apply_film(backbone: 'PrismaticVisionBackbone', llm_dim: int) -> None:
    """Wrap every block of both ViTs in a `FiLMedVisionBlock` (in place, new scale/shift)."""
    if backbone.uses_film:
        raise ValueError('backbone: expected a backbone without FiLM, got one with FiLM applied')
    for vit in backbone.vits:
        for i, block in enumerate(vit.blocks):
            vit.blocks[i] = FiLMedVisionBlock(block, llm_dim, vit.embed_dim)


def _strip_prefixes(state_dict: Mapping[str, torch.Tensor]
                    ) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """Drop a DDP `module.` prefix (if every key has one) and the wrapper's `vision_backbone.`.

    Returns the stripped state dict and, for error messages, each stripped key's original name.
    """
    strip_module = bool(state_dict) and all(key.startswith('module.') for key in state_dict)
    stripped, original_names = {}, {}
    for key, value in state_dict.items():
        name = key[len('module.'):] if strip_module else key
        if not name.startswith(UPSTREAM_PREFIX):
            raise ValueError(f"FiLM checkpoint key '{key}': expected a key starting with "
                             f"'{UPSTREAM_PREFIX}', got none")
        stripped[name[len(UPSTREAM_PREFIX):]] = value
        original_names[name[len(UPSTREAM_PREFIX):]] = key
    return stripped, original_names


def _lora_a_items(state_dict: Mapping[str, torch.Tensor]) -> Iterator[Tuple[str, torch.Tensor]]:
    return ((key, value) for key, value in state_dict.items() if key.endswith(_LORA_A))


def lora_rank_of(state_dict: Mapping[str, torch.Tensor]) -> Optional[int]:
    """Return the LoRA rank r of an upstream FiLM state dict (rows of lora_A), None if no LoRA.

    Raises ValueError when the adapters disagree on the rank.
    """
    ranks = {}
    for key, value in _lora_a_items(state_dict):
        ranks.setdefault(int(value.shape[0]), key)
    if len(ranks) > 1:
        found = ', '.join(f'{rank} ({key})' for rank, key in sorted(ranks.items()))
        raise ValueError(f'lora_A ranks: expected one rank for all adapters, got {found}')
    return next(iter(ranks), None)


def lora_scaling(rank: int) -> float:
    """Return PEFT's LoRA scaling alpha / r with upstream's alpha = min(r, 16) (r=32: 0.5)."""
    return min(rank, LORA_ALPHA_CAP) / rank


def _merge_lora(names: Mapping[str, str], module: str, base: torch.Tensor,
                lora_a: torch.Tensor, lora_b: torch.Tensor, scaling: float) -> torch.Tensor:
    """Return W + scaling * B A for a Linear [out, in] or a Conv2d [out, in, kh, kw].

    PEFT's conv layout: lora_A [r, in, kh, kw], lora_B [out, r, 1, 1].
    """
    if base.dim() not in (2, 4):
        raise ValueError(f"'{names[module + _BASE_WEIGHT]}': expected a 2-D linear or 4-D conv "
                         f'weight, got shape {tuple(base.shape)}')
    out_features, in_shape = base.shape[0], tuple(base.shape[1:])
    rank = lora_a.shape[0]
    expected_b = (out_features, rank) + (1, 1) * (base.dim() == 4)
    if tuple(lora_a.shape) != (rank,) + in_shape:
        raise ValueError(f"'{names[module + _LORA_A]}': expected shape (r, "
                         f"{', '.join(map(str, in_shape))}), got {tuple(lora_a.shape)}")
    if tuple(lora_b.shape) != expected_b:
        raise ValueError(f"'{names[module + _LORA_B]}': expected shape {expected_b}, "
                         f'got {tuple(lora_b.shape)}')
    update = lora_b.float().reshape(out_features, rank) @ lora_a.float().reshape(rank, -1)
    merged = base.float() + scaling * update.reshape(base.shape)  # (out, in[, kh, kw])
    return merged.to(base.dtype)


def convert_film_checkpoint(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Upstream `vision_backbone--*_checkpoint.pt` keys -> FiLM-applied backbone keys, LoRA merged.

    `vision_backbone.X.base_layer.weight` + `X.lora_A.default.weight` [r, in] +
    `X.lora_B.default.weight` [out, r] (conv: [r, in, kh, kw] and [out, r, 1, 1]) become
    `X.weight` = W + (alpha / r) B A, merged in float32
    and cast back to W's dtype; `X.base_layer.bias` becomes `X.bias`; other keys only lose the
    `vision_backbone.` prefix. Raises ValueError naming the key on a missing partner, an
    unexpected LoRA key or inconsistent shapes. The input is not modified.
    """
    rank = lora_rank_of(state_dict)  # before stripping, so errors name the file's keys
    state_dict, names = _strip_prefixes(state_dict)
    scaling = lora_scaling(rank) if rank is not None else 0.0
    converted = {}
    for key, value in state_dict.items():
        if key.endswith(_BASE_WEIGHT):
            module = key[:-len(_BASE_WEIGHT)]
            for suffix in (_LORA_A, _LORA_B):
                if module + suffix not in state_dict:
                    partner = names[key][:-len(_BASE_WEIGHT)] + suffix
                    raise ValueError(
                        f"'{names[key]}': expected its LoRA partner '{partner}', got none")
            converted[module + '.weight'] = _merge_lora(
                names, module, value, state_dict[module + _LORA_A], state_dict[module + _LORA_B],
                scaling)
        elif key.endswith(_BASE_BIAS):
            converted[key[:-len(_BASE_BIAS)] + '.bias'] = value
        elif key.endswith(_LORA_A) or key.endswith(_LORA_B):
            suffix = _LORA_A if key.endswith(_LORA_A) else _LORA_B
            base_key = key[:-len(suffix)] + _BASE_WEIGHT
            if base_key not in state_dict:
                raise ValueError(f"'{names[key]}': expected its base weight "
                                 f"'{names[key][:-len(suffix)]}{_BASE_WEIGHT}', got none")
        elif '.lora_' in key or '.base_layer.' in key:
            raise ValueError(f"'{names[key]}': expected only lora_A/lora_B 'default' adapters and "
                             'base_layer weight/bias, got an unsupported LoRA key')
        else:
            converted[key] = value
    return converted


def to_upstream_film_checkpoint(backbone_state_dict: Mapping[str, torch.Tensor], lora_rank: int,
                                generator: Optional[torch.Generator] = None
                                ) -> Dict[str, torch.Tensor]:
    """Inverse layout of `convert_film_checkpoint`, for building tiny test checkpoints.

    From the state dict of a FiLM-applied backbone, write upstream's un-merged layout: every
    module matching `LORA_TARGET` (all ViT linears and patch_embed.proj; not FiLM scale/shift) gets
    `base_layer.{weight,bias}` = its weight/bias and random non-zero `lora_A` [r, in] and
    `lora_B` [out, r] (CPU `generator`, stored in the weight's dtype and device); every key gets
    the `vision_backbone.` prefix. `convert_film_checkpoint` of the result therefore yields
    weight + (alpha / r) B A, not the input weight.
    """
    if isinstance(lora_rank, bool) or not isinstance(lora_rank, int) or lora_rank < 1:
        raise ValueError(f'lora_rank: expected an int >= 1, got {lora_rank!r}')
    upstream = {}
    for key, value in backbone_state_dict.items():
        module, _, leaf = key.rpartition('.')
        if not LORA_TARGET.search(module) or leaf not in ('weight', 'bias'):
            upstream[UPSTREAM_PREFIX + key] = value
            continue
        prefix = UPSTREAM_PREFIX + module
        upstream[f'{prefix}.base_layer.{leaf}'] = value
        if leaf == 'weight':  # Linear (out, in) or the patch-embedding Conv2d (out, in, kh, kw)
            out_features, in_shape = value.shape[0], tuple(value.shape[1:])
            lora_a = torch.randn((lora_rank,) + in_shape, generator=generator) / lora_rank
            lora_b = torch.randn((out_features, lora_rank) + (1, 1) * (value.dim() == 4),
                                 generator=generator) * 0.02
            upstream[prefix + _LORA_A] = lora_a.to(value.device, value.dtype)
            upstream[prefix + _LORA_B] = lora_b.to(value.device, value.dtype)
    return upstream
