"""The training loop: AdamW on the OFT objective, seeded batches, optional open-loop evaluation.

Deterministic for a seed on one device and thread count: batches come from a seeded numpy
generator (a fresh permutation per epoch), diffusion noise from a seeded torch generator.
"""

import dataclasses
import math
from typing import Callable, List, Optional

import numpy as np
import torch

from openvla_ros.model.modeling import OpenVLAForActionPrediction
from openvla_ros.training.episodes import EpisodeDataset
from openvla_ros.training.objectives import action_loss, predict_chunks


@dataclasses.dataclass
class TrainConfig:
    """Optimisation settings.

    Args:
        steps: optimizer steps.
        batch_size: samples per step.
        learning_rate: AdamW peak learning rate (upstream default 5e-4).
        weight_decay: AdamW weight decay (upstream: 0).
        warmup_steps: linear warm-up from 0.
        schedule: 'constant' (upstream) or 'cosine' (decays to 10 % of the peak).
        schedule_steps: length of the cosine schedule (None: `steps`); a run with fewer steps
            stops part-way down it, as an interim checkpoint of the longer run would.
        objective: 'l1' or 'diffusion' (the head's upstream loss).
        mse_fraction: L1 heads only: the first `mse_fraction` of steps minimise the squared
            error instead (L1 from scratch stalls at the mean; issue 8), then L1.
        grad_clip: max global gradient norm (None: off).
        seed: batch order and diffusion noise.
        autocast_bf16: run forward / backward under bf16 autocast (CUDA fine-tuning).
        train_token_embeddings: also train the input token embeddings (from-scratch models).
        oversample_first: with `oversample_factor`, samples whose chunk starts in the first
            `oversample_first` steps of an episode are drawn `oversample_factor` times as often
            (with replacement). The start of an episode is where the instruction decides the
            motion (reach the named cube); later steps follow from proprio (issue 8).
        oversample_factor: relative weight of those samples (1: uniform epochs, upstream).
        oversample_steps: oversample only during the first `oversample_steps` optimizer steps,
            then draw uniform epochs (0: for the whole run).
    """

    steps: int = 1000
    batch_size: int = 16
    learning_rate: float = 5e-4
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: str = 'constant'
    schedule_steps: Optional[int] = None
    objective: str = 'l1'
    mse_fraction: float = 0.0
    grad_clip: Optional[float] = 1.0
    seed: int = 0
    autocast_bf16: bool = False
    train_token_embeddings: bool = False
    oversample_first: int = 0
    oversample_factor: float = 1.0
    oversample_steps: int = 0

    def __post_init__(self):
        if self.schedule not in ('constant', 'cosine'):
            raise ValueError(f"schedule: expected 'constant' or 'cosine', got {self.schedule!r}")
        if self.objective not in ('l1', 'diffusion'):
            raise ValueError(f"objective: expected 'l1' or 'diffusion', got {self.objective!r}")
        if not 0.0 <= self.mse_fraction <= 1.0:
            raise ValueError(f'mse_fraction: expected 0..1, got {self.mse_fraction}')
        if self.oversample_first < 0 or not self.oversample_factor > 0 \
                or self.oversample_steps < 0:
            raise ValueError(f'oversample_first / oversample_factor / oversample_steps: expected '
                             f'>= 0 / > 0 / >= 0, got {self.oversample_first} / '
                             f'{self.oversample_factor} / {self.oversample_steps}')
        if self.schedule_steps is not None and self.schedule_steps < self.steps:
            raise ValueError(f'schedule_steps: expected >= steps ({self.steps}), got '
                             f'{self.schedule_steps}')
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f'steps and batch_size: expected >= 1, got {self.steps}, '
                             f'{self.batch_size}')

    def objective_at(self, step: int) -> str:
        if self.objective == 'l1' and step < round(self.mse_fraction * self.steps):
            return 'mse'
        return self.objective

    def oversamples_at(self, step: int) -> bool:
        return not self.oversample_steps or step < self.oversample_steps

    def learning_rate_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.learning_rate * (step + 1) / self.warmup_steps
        if self.schedule == 'constant':
            return self.learning_rate
        total = self.schedule_steps or self.steps
        progress = (step - self.warmup_steps) / max(total - self.warmup_steps, 1)
        return self.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


class BatchSampler:
    """Seeded epochs of shuffled sample indices, cut into batches (the last partial one too).

    With `weights` (one per sample), each batch is drawn with replacement in proportion to them.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int,
                 weights: Optional[np.ndarray] = None):
        self._rng = np.random.default_rng(seed)
        self._num_samples = num_samples
        self._batch_size = min(batch_size, num_samples)
        self._order = np.empty(0, dtype=np.int64)
        self._probabilities = None
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64)
            if weights.shape != (num_samples,) or np.any(weights < 0) or weights.sum() <= 0:
                raise ValueError(f'weights: expected {num_samples} non-negative values with a '
                                 f'positive sum, got shape {weights.shape}')
            self._probabilities = weights / weights.sum()

    def next(self) -> List[int]:
        if self._probabilities is not None:
            return self._rng.choice(self._num_samples, size=self._batch_size,
                                    p=self._probabilities).tolist()
        if len(self._order) < self._batch_size:
            self._order = np.concatenate([self._order, self._rng.permutation(self._num_samples)])
        batch, self._order = self._order[:self._batch_size], self._order[self._batch_size:]
        return batch.tolist()


def freeze_unused(model: OpenVLAForActionPrediction, train_token_embeddings: bool) -> None:
    """Freeze the LM head (the action objectives never reach it) and optionally the embeddings.

    A fine-tuned released model keeps its token embeddings (as upstream's LoRA does). A
    from-scratch model must train them: at init (std 0.02) a prompt token is ~7x smaller than a
    projected image patch, so after one layer the colour word's residual differs by ~0.01 between
    'red' and 'blue' and the policy ignores it (measured: frozen, open-loop output identical to
    1e-5 with the colour swapped after 3000 steps).
    """
    model.language_model.lm_head.weight.requires_grad_(False)
    model.language_model.model.embed_tokens.weight.requires_grad_(train_token_embeddings)


def trainable_parameters(model: OpenVLAForActionPrediction) -> List[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def sample_weights(dataset: EpisodeDataset, config: TrainConfig) -> Optional[np.ndarray]:
    """Per-sample draw weights for `config.oversample_*`, None for upstream's uniform epochs."""
    if config.oversample_first == 0 or config.oversample_factor == 1.0:
        return None
    early = dataset.chunk_starts < config.oversample_first
    return np.where(early, config.oversample_factor, 1.0)


@dataclasses.dataclass
class StepRecord:
    step: int
    loss: float
    objective: str
    learning_rate: float


def train(model: OpenVLAForActionPrediction, dataset: EpisodeDataset, config: TrainConfig,
          on_step: Optional[Callable[[StepRecord], None]] = None) -> List[StepRecord]:
    """Train `model` in place; returns the loss of every step."""
    freeze_unused(model, config.train_token_embeddings)
    parameters = trainable_parameters(model)
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    uniform = BatchSampler(len(dataset), config.batch_size, config.seed)
    weights = sample_weights(dataset, config)
    oversampled = None if weights is None else BatchSampler(
        len(dataset), config.batch_size, config.seed, weights)
    generator = torch.Generator(device=model.device).manual_seed(config.seed)
    autocast = torch.autocast(model.device.type, dtype=torch.bfloat16,
                              enabled=config.autocast_bf16)
    history = []
    model.train()
    for step in range(config.steps):
        learning_rate = config.learning_rate_at(step)
        for group in optimizer.param_groups:
            group['lr'] = learning_rate
        objective = config.objective_at(step)
        sampler = oversampled if oversampled and config.oversamples_at(step) else uniform
        batch = dataset.batch(sampler.next())
        with autocast:
            loss = action_loss(model, batch, objective, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
        optimizer.step()
        record = StepRecord(step + 1, float(loss.detach()), objective, learning_rate)
        history.append(record)
        if on_step is not None:
            on_step(record)
    model.eval()
    return history


@torch.no_grad()
def open_loop_l1(model: OpenVLAForActionPrediction, dataset: EpisodeDataset,
                 batch_size: int = 64, max_samples: Optional[int] = None) -> dict:
    """Mean |predicted - expert| of normalized chunks (L1 heads), as upstream logs it.

    Returns {'l1': all H steps, 'l1_first': the first action of each chunk, 'samples': n,
    'per_dim': list (A,)}; `max_samples` evaluates an evenly spaced subset.
    """
    if model.action_config.head_type != 'l1':
        raise ValueError('open_loop_l1: expected an L1 head')
    was_training = model.training
    model.eval()
    indices = np.arange(len(dataset))
    if max_samples is not None and max_samples < len(indices):
        indices = np.linspace(0, len(dataset) - 1, max_samples).round().astype(int)
    totals = None
    first = 0.0
    for begin in range(0, len(indices), batch_size):
        batch = dataset.batch(indices[begin:begin + batch_size].tolist())
        predicted = predict_chunks(model, batch['prompt_ids'], batch['prompt_lengths'],
                                   batch['pixel_values'], batch['proprio']).float().cpu()
        error = (predicted - batch['actions']).abs()  # (B, H, A)
        summed = error.sum(dim=(0, 1))  # (A,)
        totals = summed if totals is None else totals + summed
        first += float(error[:, 0].sum())
    model.train(was_training)
    count = len(indices)
    chunk, dims = dataset.chunk_len, int(totals.shape[0])
    return {'l1': float(totals.sum()) / (count * chunk * dims),
            'l1_first': first / (count * dims), 'samples': count,
            'per_dim': (totals / (count * chunk)).tolist()}
