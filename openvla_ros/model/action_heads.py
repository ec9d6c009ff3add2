"""Continuous action heads of OpenVLA-OFT: L1 regression and DDIM diffusion.

Both heads read the LLM's last hidden states at the H*A action slots (one slot per action
dimension), concatenate the A slot states of each chunk step, and run an MLP-ResNet on them
(OPENVLA_OFT_REFERENCE.md section 3.4). Parameter names match the upstream `action_head--*.pt`
files: `model.*` (L1) and `noise_predictor.mlp_resnet.*` (diffusion).
"""

import math
from typing import Union

import torch
from torch import nn


class MLPResNetBlock(nn.Module):
    """x + ReLU(Linear(LayerNorm(x))); parameters under `ffn.0` (LayerNorm) and `ffn.1`."""

    def __init__(self, dim: int):
        super().__init__()
        self.ffn = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ffn(x)


class MLPResNet(nn.Module):
    """LayerNorm, fc1, ReLU, `num_blocks` residual blocks, LayerNorm, fc2."""

    def __init__(self, num_blocks: int, input_dim: int, hidden_dim: int, output_dim: int):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(input_dim)
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.relu = nn.ReLU()
        self.mlp_resnet_blocks = nn.ModuleList(
            MLPResNetBlock(hidden_dim) for _ in range(num_blocks))
        self.layer_norm2 = nn.LayerNorm(hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.fc1(self.layer_norm1(x)))
        for block in self.mlp_resnet_blocks:
            x = block(x)
        return self.fc2(self.layer_norm2(x))


def _group_slots_by_step(actions_hidden_states: torch.Tensor, input_dim: int,
                         action_dim: int, num_actions_chunk: int) -> torch.Tensor:
    """(B, H*A, D) -> (B, H, A*D): the A consecutive slot states of one step, concatenated."""
    num_slots = num_actions_chunk * action_dim
    shape = tuple(actions_hidden_states.shape)
    if len(shape) != 3 or shape[1] != num_slots or shape[2] != input_dim:
        raise ValueError(
            f'actions_hidden_states: expected shape (B, {num_slots}, {input_dim}) '
            f'(chunk {num_actions_chunk} x action dim {action_dim} slots), got {shape}')
    batch = shape[0]
    grouped_dim = action_dim * input_dim
    return actions_hidden_states.reshape(batch, num_actions_chunk, grouped_dim)  # (B, H, A*D)


class L1RegressionActionHead(nn.Module):
    """Regresses the normalized action chunk directly (trained with an L1 loss)."""

    def __init__(self, input_dim: int, hidden_dim: int, action_dim: int, num_actions_chunk: int):
        super().__init__()
        self.input_dim = input_dim
        self.action_dim = action_dim
        self.num_actions_chunk = num_actions_chunk
        self.model = MLPResNet(2, input_dim * action_dim, hidden_dim, action_dim)

    def predict_action(self, actions_hidden_states: torch.Tensor) -> torch.Tensor:
        """Map action-slot hidden states (B, H*A, D) to a normalized chunk (B, H, A)."""
        grouped = _group_slots_by_step(
            actions_hidden_states, self.input_dim, self.action_dim, self.num_actions_chunk)
        return self.model(grouped)


class SinusoidalPositionalEncoding(nn.Module):
    """Transformer-style timestep embedding, [sin(t f_k), cos(t f_k)] with sin half first.

    f_k = exp(-ln(10000) k / (dim/2 - 1)) for k = 0 .. dim/2 - 1. The frequencies are computed in
    float32 on every call (no buffer), so casting the head to bf16 does not round them.
    """

    def __init__(self, dim: int):
        super().__init__()
        if dim < 4 or dim % 2:
            raise ValueError(f'dim: expected an even number >= 4, got {dim}')
        self.dim = dim

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        """Embed timesteps (B,) as (B, dim) float32."""
        if timesteps.dim() != 1:
            raise ValueError(
                f'timesteps: expected a 1-D tensor (B,), got shape {tuple(timesteps.shape)}')
        half = self.dim // 2
        k = torch.arange(half, device=timesteps.device, dtype=torch.float32)
        frequencies = torch.exp(k * -math.log(10000.0) / (half - 1))  # (dim/2,)
        angles = timesteps.to(torch.float32)[:, None] * frequencies[None, :]  # (B, dim/2)
        return torch.cat((angles.sin(), angles.cos()), dim=-1)  # (B, dim)


class NoisePredictionModel(nn.Module):
    """Holds the noise-predicting MLP-ResNet under the upstream key `mlp_resnet`."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int):
        super().__init__()
        self.mlp_resnet = MLPResNet(2, input_dim, hidden_dim, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp_resnet(x)


def _make_ddim_scheduler(num_train_timesteps: int):
    """DDIM with the cosine (squaredcos_cap_v2) schedule; every other setting diffusers' default.

    Defaults relied on (spec section 3.4): clip_sample True, clip_sample_range 1.0,
    set_alpha_to_one True, steps_offset 0, prediction_type 'epsilon', timestep_spacing 'leading',
    thresholding False.
    """
    try:
        from diffusers import DDIMScheduler
    except ImportError as error:
        raise ImportError(
            'the diffusion action head needs diffusers: pip install diffusers') from error
    return DDIMScheduler(num_train_timesteps=num_train_timesteps,
                         beta_schedule='squaredcos_cap_v2')


class DiffusionActionHead(nn.Module):
    """Predicts the noise of a noisy action chunk; sampling steps through a DDIM scheduler.

    The denoising loop itself lives in the model (every step needs a full LLM pass); this head
    offers the pieces: `timesteps`, `time_encoder`, `predict_noise` and `denoise_step`.
    """

    def __init__(self, input_dim: int, hidden_dim: int, action_dim: int, num_actions_chunk: int,
                 num_diffusion_steps_train: int = 50, num_diffusion_steps_inference: int = 50):
        super().__init__()
        self.input_dim = input_dim
        self.action_dim = action_dim
        self.num_actions_chunk = num_actions_chunk
        self.num_diffusion_steps_train = num_diffusion_steps_train
        self.noise_predictor = NoisePredictionModel(
            input_dim * action_dim, hidden_dim, action_dim)
        self.noise_scheduler = _make_ddim_scheduler(num_diffusion_steps_train)
        self.time_encoder = SinusoidalPositionalEncoding(input_dim)
        self.set_num_inference_steps(num_diffusion_steps_inference)

    def set_num_inference_steps(self, n: int) -> None:
        """Choose how many DDIM steps sampling takes (leading spacing, stride train // n)."""
        if not 1 <= n <= self.num_diffusion_steps_train:
            raise ValueError(
                f'num inference steps: expected 1..{self.num_diffusion_steps_train}, got {n}')
        self.noise_scheduler.set_timesteps(n)

    @property
    def num_inference_steps(self) -> int:
        return self.noise_scheduler.num_inference_steps

    @property
    def timesteps(self) -> torch.Tensor:
        """Sampling timesteps, descending (e.g. 49..0), as an int64 CPU tensor."""
        return self.noise_scheduler.timesteps

    def predict_noise(self, actions_hidden_states: torch.Tensor) -> torch.Tensor:
        """Map action-slot hidden states (B, H*A, D) to predicted noise (B, H, A)."""
        grouped = _group_slots_by_step(
            actions_hidden_states, self.input_dim, self.action_dim, self.num_actions_chunk)
        return self.noise_predictor(grouped)

    def denoise_step(self, noise_pred: torch.Tensor, t: Union[int, torch.Tensor],
                     noisy_actions: torch.Tensor) -> torch.Tensor:
        """One deterministic DDIM step (eta 0): x_t (B, H, A) -> x_prev (B, H, A)."""
        if noise_pred.shape != noisy_actions.shape:
            raise ValueError(
                f'noise_pred: expected the shape of noisy_actions {tuple(noisy_actions.shape)}, '
                f'got {tuple(noise_pred.shape)}')
        return self.noise_scheduler.step(noise_pred, int(t), noisy_actions, eta=0.0).prev_sample
