"""Small MLPs that map vision patches, proprio state and noisy actions into the LLM space.

Parameter names (`fc1`, `fc2`, `fc3`) match the upstream OpenVLA-OFT checkpoints
(OPENVLA_OFT_REFERENCE.md sections 2.2, 3.2 and 3.4) so state dicts load without renaming.
"""

import torch
from torch import nn


def _check_last_dim(name: str, tensor: torch.Tensor, ndim: int, last_dim: int) -> None:
    if tensor.dim() != ndim or tensor.shape[-1] != last_dim:
        raise ValueError(
            f'{name}: expected a {ndim}-D tensor with last dimension {last_dim}, '
            f'got shape {tuple(tensor.shape)}')


class PrismaticProjector(nn.Module):
    """Per-patch MLP from the (fused) vision feature width to the LLM width.

    Fused backbone (DINOv2 + SigLIP): fc1 (V -> 4V), GELU, fc2 (4V -> D), GELU, fc3 (D -> D).
    Single backbone: fc1 (V -> D), GELU, fc2 (D -> D).
    """

    def __init__(self, vision_dim: int, llm_dim: int, use_fused_vision_backbone: bool = True):
        super().__init__()
        self.vision_dim = vision_dim
        self.llm_dim = llm_dim
        self.use_fused_vision_backbone = use_fused_vision_backbone
        if use_fused_vision_backbone:
            initial_dim = 4 * vision_dim
            self.fc1 = nn.Linear(vision_dim, initial_dim, bias=True)
            self.fc2 = nn.Linear(initial_dim, llm_dim, bias=True)
            self.fc3 = nn.Linear(llm_dim, llm_dim, bias=True)
            self.act_fn1 = nn.GELU()
            self.act_fn2 = nn.GELU()
        else:
            self.fc1 = nn.Linear(vision_dim, llm_dim, bias=True)
            self.fc2 = nn.Linear(llm_dim, llm_dim, bias=True)
            self.act_fn1 = nn.GELU()

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """Project patches (B, P, vision_dim) to (B, P, llm_dim)."""
        _check_last_dim('patches', patches, 3, self.vision_dim)
        x = self.act_fn1(self.fc1(patches))
        if self.use_fused_vision_backbone:
            x = self.act_fn2(self.fc2(x))
            return self.fc3(x)
        return self.fc2(x)


class ProprioProjector(nn.Module):
    """Normalized proprio state (B, S) -> one LLM token embedding (B, D): fc1, GELU, fc2."""

    def __init__(self, llm_dim: int, proprio_dim: int):
        super().__init__()
        self.llm_dim = llm_dim
        self.proprio_dim = proprio_dim
        self.fc1 = nn.Linear(proprio_dim, llm_dim, bias=True)
        self.fc2 = nn.Linear(llm_dim, llm_dim, bias=True)
        self.act_fn1 = nn.GELU()

    def forward(self, proprio: torch.Tensor) -> torch.Tensor:
        _check_last_dim('proprio', proprio, 2, self.proprio_dim)
        return self.fc2(self.act_fn1(self.fc1(proprio)))


class NoisyActionProjector(nn.Module):
    """Embeds every scalar of a noisy action chunk as its own LLM token (diffusion head).

    (B, H*A, 1) -> (B, H*A, D): fc1 (1 -> D), GELU, fc2 (D -> D), mirroring the
    one-token-per-action-dimension layout of the action slots.
    """

    def __init__(self, llm_dim: int):
        super().__init__()
        self.llm_dim = llm_dim
        self.fc1 = nn.Linear(1, llm_dim, bias=True)
        self.fc2 = nn.Linear(llm_dim, llm_dim, bias=True)
        self.act_fn1 = nn.GELU()

    def forward(self, noisy_actions: torch.Tensor) -> torch.Tensor:
        _check_last_dim('noisy_actions', noisy_actions, 3, 1)
        return self.fc2(self.act_fn1(self.fc1(noisy_actions)))
