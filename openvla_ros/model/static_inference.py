"""Static-shape action prediction: prompts padded to a few buckets, optionally CUDA graphs.

    predictor = StaticActionPredictor(model, buckets=(32, 64, 128), cuda_graphs=True)
    predictor.warmup()                        # captures every bucket's graphs (CUDA only)
    out = predictor.predict_action(input_ids, pixel_values, proprio=..., noise=...)

`out` is the `ActionPrediction` of `model.predict_action` for the same inputs (equal in fp32 up
to reduction order, within bf16 rounding in bf16). Layout of a padded sequence, bucket B >= P
(P: prompt tokens without BOS, with the appended 29871)::

    [BOS | num_patches inserted tokens | B-P pads | prompt (P) | H*A action slots | STOP]

The pads sit in front of the prompt, so the action slots and the read window stay at fixed
positions per bucket: the window starts at `num_patches + B`, the last prompt token (29871), one
left of the first slot, exactly as the unpadded model reads it (the training label shift; see
`modeling`). Attention is bidirectional, so pads are masked as *keys* for every query, and
`position_ids` give each real token its unpadded RoPE position. Nothing but the pad count and the
prompt ids changes between calls of one bucket; both live in device buffers, which is what lets
a CUDA graph replay the whole computation. Diffusion sampling captures one denoising step (the
DDIM update in tensor form, coefficients indexed by a step counter on the device) and replays it
once per step.

Stages (one graph each, so the timings keep the 'vision' / 'llm' / 'head' split): vision builds
the sequence, llm runs the decoder (diffusion: after inserting the noisy-action and timestep
tokens), head maps the action hidden states to actions (diffusion: noise and DDIM update).
Prompts longer than the largest bucket fall back to the eager model (`eager_fallbacks` counts
them). One predictor serves one thread at a time, like the model.
"""

import dataclasses
from typing import Callable, Dict, List, Optional, Sequence

import torch

from openvla_ros.model.config import BOS_INDEX, EMPTY_PIECE_INDEX, STOP_INDEX
from openvla_ros.model.modeling import ActionPrediction, OpenVLAForActionPrediction, StageTimer

DEFAULT_PROMPT_BUCKETS = (32, 64, 128, 256)
# Id written into padded prompt positions; they are masked, so any valid id works.
PAD_TOKEN_ID = 0
STAGES = ('vision', 'llm', 'head')
_WARMUP_RUNS = 3  # eager runs on a side stream before capture (cuBLAS/allocator warm-up)


def ddim_coefficients(scheduler, device) -> Dict[str, torch.Tensor]:
    """Per-step (T,) float32 tables of a diffusers DDIMScheduler after `set_timesteps`.

    `sqrt_alpha`, `sqrt_beta` (of alpha_prod_t) and `sqrt_alpha_prev`, `sqrt_beta_prev` (of the
    previous timestep, `final_alpha_cumprod` past 0), what its eta=0 `step` uses.
    """
    stride = scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    alphas = scheduler.alphas_cumprod.to(torch.float32)
    final = torch.as_tensor(scheduler.final_alpha_cumprod, dtype=torch.float32)
    current, previous = [], []
    for t in scheduler.timesteps.tolist():
        current.append(alphas[t])
        previous.append(alphas[t - stride] if t - stride >= 0 else final)
    current, previous = torch.stack(current), torch.stack(previous)
    tables = {'sqrt_alpha': current ** 0.5, 'sqrt_beta': (1 - current) ** 0.5,
              'sqrt_alpha_prev': previous ** 0.5, 'sqrt_beta_prev': (1 - previous) ** 0.5}
    return {name: table.to(device) for name, table in tables.items()}


def ddim_step(noise_pred: torch.Tensor, sample: torch.Tensor, sqrt_alpha: torch.Tensor,
              sqrt_beta: torch.Tensor, sqrt_alpha_prev: torch.Tensor,
              sqrt_beta_prev: torch.Tensor, clip_range: Optional[float]) -> torch.Tensor:
    """DDIM eta=0 epsilon update with 0-d coefficient tensors (no host sync, graph-safe).

    The operations and their order are those of diffusers' `DDIMScheduler.step` (eta 0,
    clip_sample), so the fp32 result is the same.
    """
    original = (sample - sqrt_beta * noise_pred) / sqrt_alpha
    if clip_range is not None:
        original = original.clamp(-clip_range, clip_range)
    direction = sqrt_beta_prev * noise_pred
    return sqrt_alpha_prev * original + direction


def bidirectional_padding_mask(valid: torch.Tensor, attn_implementation: str,
                               dtype: torch.dtype) -> torch.Tensor:
    """4-D mask (1, 1, L, L) letting every query see every valid key, built on the device.

    Same convention as transformers' `create_bidirectional_mask`: boolean (True: attend) for
    SDPA, additive (0 / dtype min) for eager attention.
    """
    length = valid.shape[-1]
    keys = valid[:, None, None, :].expand(valid.shape[0], 1, length, length)
    if attn_implementation == 'sdpa':
        return keys
    blocked = torch.full((), torch.finfo(dtype).min, dtype=dtype, device=valid.device)
    return torch.where(keys, torch.zeros((), dtype=dtype, device=valid.device), blocked)


def unpadded_positions(length: int, prompt_start: int, pad_count: torch.Tensor):
    """Return RoPE positions (L,) and pad flags (L,) for `pad_count` (1,) pads at `prompt_start`.

    Tokens after the pads keep the positions they have without them.
    """
    index = torch.arange(length, device=pad_count.device)  # (L,)
    pad_end = prompt_start + pad_count  # (1,) first real prompt position
    is_pad = (index >= prompt_start) & (index < pad_end)
    return torch.where(index >= pad_end, index - pad_count, index), is_pad


@dataclasses.dataclass
class _Bucket:
    """Device buffers and graphs of one prompt length."""

    prompt_len: int
    prompt_ids: torch.Tensor     # (1, B) ids, pads first
    pad_count: torch.Tensor      # (1,) int64
    sequence: torch.Tensor       # (1, L, D) decoder input
    mask: torch.Tensor           # (1, 1, L, L)
    positions: torch.Tensor      # (1, L) int64
    action_hidden: torch.Tensor  # (1, H*A, D)
    graphs: Dict[str, 'torch.cuda.CUDAGraph'] = dataclasses.field(default_factory=dict)


class StaticActionPredictor:
    """Runs `model.predict_action` on bucketed static shapes, eagerly or by CUDA-graph replay.

    Args:
        model: a loaded `OpenVLAForActionPrediction` (any head type).
        buckets: prompt lengths (tokens after BOS, including 29871) to pad to.
        cuda_graphs: capture each bucket's stages at `warmup` and replay them; needs CUDA.
    """

    def __init__(self, model: OpenVLAForActionPrediction,
                 buckets: Sequence[int] = DEFAULT_PROMPT_BUCKETS, cuda_graphs: bool = False):
        buckets = tuple(sorted(set(int(b) for b in buckets)))
        if not buckets or buckets[0] < 1:
            raise ValueError(f'buckets: expected positive prompt lengths, got {buckets}')
        if cuda_graphs and model.device.type != 'cuda':
            raise ValueError(f'cuda_graphs: expected a model on a CUDA device, got '
                             f'{model.device}; CUDA graphs do not exist on the CPU '
                             '(use cuda_graphs=False)')
        self.model = model
        self.cuda_graphs = cuda_graphs
        self.eager_fallbacks = 0
        cfg = model.action_config
        self._slots = cfg.num_action_slots
        self._dtype = model.dtype
        device = model.device
        backbone = model.vision_backbone
        self._pixels = torch.zeros(
            1, backbone.channels_per_image * cfg.num_images_in_input, *backbone.image_size,
            device=device, dtype=self._dtype)
        self._proprio = (torch.zeros(1, cfg.proprio_dim, device=device, dtype=self._dtype)
                         if cfg.use_proprio else None)
        shape = (1, cfg.chunk_len, cfg.action_dim)
        self._sample = torch.zeros(shape, device=device, dtype=self._dtype)  # diffusion x_t
        self._actions = torch.zeros(cfg.chunk_len, cfg.action_dim, device=device,
                                    dtype=torch.float64 if cfg.head_type == 'discrete'
                                    else torch.float32)
        self._token_ids = torch.zeros(self._slots, device=device, dtype=torch.long)
        self._step = torch.zeros(1, device=device, dtype=torch.long)  # diffusion step index
        self._bos_stop = torch.tensor([[BOS_INDEX, STOP_INDEX]], device=device)
        self._ddim = None
        if cfg.head_type == 'diffusion':
            head = model.action_head
            self._ddim = ddim_coefficients(head.noise_scheduler, device)
            self._time_tokens = head.time_encoder(head.timesteps.to(device)).to(self._dtype)
            clip = head.noise_scheduler.config
            self._clip_range = float(clip.clip_sample_range) if clip.clip_sample else None
        if cfg.head_type == 'discrete':
            self._bin_centers = torch.from_numpy(model._bin_centers).to(device)
        self._buckets = {b: self._new_bucket(b) for b in buckets}
        self._pool = None

    @property
    def buckets(self) -> tuple:
        return tuple(self._buckets)

    def bucket_for(self, num_prompt_tokens: int) -> Optional[int]:
        """Smallest bucket that holds `num_prompt_tokens`, None if none does."""
        return next((b for b in self._buckets if b >= num_prompt_tokens), None)

    # ------------------------------------------------------------------------------ running

    @torch.inference_mode()
    def warmup(self) -> None:
        """Run every bucket once; with `cuda_graphs`, capture its stages (a few seconds)."""
        model = self.model
        for bucket in self._buckets.values():
            bucket.pad_count.fill_(bucket.prompt_len - 1)
            bucket.prompt_ids.fill_(PAD_TOKEN_ID)
            bucket.prompt_ids[0, -1] = EMPTY_PIECE_INDEX
            if not self.cuda_graphs:
                for stage in self._stage_functions(bucket):
                    stage()
                continue
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            side = torch.cuda.Stream(device=model.device)
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(_WARMUP_RUNS):
                    for stage in self._stage_functions(bucket):
                        stage()
            torch.cuda.current_stream().wait_stream(side)
            for name, stage in zip(STAGES, self._stage_functions(bucket)):
                graph = torch.cuda.CUDAGraph()
                # thread_local: other threads of the node may use CUDA during the capture
                with torch.cuda.graph(graph, pool=self._pool, capture_error_mode='thread_local'):
                    stage()
                bucket.graphs[name] = graph
            torch.cuda.synchronize(model.device)

    @torch.inference_mode()
    def predict_action(self, input_ids: torch.Tensor, pixel_values: torch.Tensor,
                       proprio: Optional[torch.Tensor] = None,
                       noise: Optional[torch.Tensor] = None,
                       generator: Optional[torch.Generator] = None) -> ActionPrediction:
        """Predict one normalized chunk (H, A); same arguments as `model.predict_action`."""
        model = self.model
        prompt_ids = model._checked_prompt(input_ids)
        model._check_predict_inputs(pixel_values, proprio, noise)
        num_prompt = prompt_ids.shape[1] - 1
        size = self.bucket_for(num_prompt)
        if size is None:
            self.eager_fallbacks += 1
            return model.predict_action(input_ids, pixel_values, proprio=proprio, noise=noise,
                                        generator=generator)
        bucket = self._buckets[size]
        timer = StageTimer(model.device)
        bucket.prompt_ids[:, :size - num_prompt].fill_(PAD_TOKEN_ID)
        bucket.prompt_ids[:, size - num_prompt:].copy_(prompt_ids[:, 1:])
        bucket.pad_count.fill_(size - num_prompt)
        self._pixels.copy_(pixel_values)
        if self._proprio is not None:
            self._proprio.copy_(proprio.reshape(1, -1))
        head_type = model.action_config.head_type
        if head_type == 'diffusion':
            self._sample.copy_(self._initial_noise(noise, generator))
        vision, llm, head = self._runners(bucket)
        vision()
        timer.lap('vision')
        if head_type == 'diffusion':
            for step in range(len(self._time_tokens)):
                self._step.fill_(step)
                llm()
                timer.lap('llm')
                head()
                timer.lap('head')
        else:
            llm()
            timer.lap('llm')
            head()
            timer.lap('head')
        token_ids = self._token_ids.clone() if head_type == 'discrete' else None
        return ActionPrediction(normalized_actions=self._actions.clone(),
                                action_token_ids=token_ids, timings=timer.totals())

    def _initial_noise(self, noise, generator) -> torch.Tensor:
        """Draw like the eager model: given noise, else the generator's, else global RNG."""
        shape, device = tuple(self._sample.shape), self.model.device
        if noise is not None:
            return noise.to(device=device, dtype=self._dtype)
        if generator is not None:
            return torch.randn(shape, generator=generator, device=generator.device,
                               dtype=self._dtype).to(device)
        return torch.randn(shape, device=device, dtype=self._dtype)

    def _runners(self, bucket: _Bucket) -> List[Callable[[], None]]:
        if self.cuda_graphs:
            if not bucket.graphs:
                raise RuntimeError('StaticActionPredictor: call warmup() before predict_action '
                                   'to capture the CUDA graphs')
            return [bucket.graphs[name].replay for name in STAGES]
        return self._stage_functions(bucket)

    # ------------------------------------------------------------------------------- stages

    def _new_bucket(self, size: int) -> _Bucket:
        model = self.model
        device = model.device
        length = 1 + model.num_patches + size + self._slots + 1
        dim = model.config.llm_dim
        mask_dtype = torch.bool if self._attn_implementation == 'sdpa' else self._dtype
        return _Bucket(
            prompt_len=size,
            prompt_ids=torch.full((1, size), PAD_TOKEN_ID, device=device, dtype=torch.long),
            pad_count=torch.zeros(1, device=device, dtype=torch.long),
            sequence=torch.zeros(1, length, dim, device=device, dtype=self._dtype),
            mask=torch.zeros(1, 1, length, length, device=device, dtype=mask_dtype),
            positions=torch.zeros(1, length, device=device, dtype=torch.long),
            action_hidden=torch.zeros(1, self._slots, dim, device=device, dtype=self._dtype))

    @property
    def _attn_implementation(self) -> str:
        return self.model.language_model.config._attn_implementation

    def _stage_functions(self, bucket: _Bucket) -> List[Callable[[], None]]:
        return [lambda: self._vision_stage(bucket), lambda: self._llm_stage(bucket),
                lambda: self._head_stage(bucket)]

    def _vision_stage(self, bucket: _Bucket) -> None:
        """Fill the sequence buffer, the key mask and the positions (all on the device)."""
        model = self.model
        cfg = model.action_config
        size = bucket.prompt_len
        num_patches = model.num_patches
        prompt_start = 1 + num_patches
        action_start = prompt_start + size
        positions, is_pad = unpadded_positions(bucket.sequence.shape[1], prompt_start,
                                               bucket.pad_count)
        bucket.positions.copy_(positions[None])
        bucket.mask.copy_(bidirectional_padding_mask(~is_pad[None], self._attn_implementation,
                                                     self._dtype))
        bos_stop = model.embed_tokens(self._bos_stop)  # (1, 2, D)
        prompt = model.embed_tokens(bucket.prompt_ids)  # (1, B, D)
        language = None
        if cfg.uses_film:  # mean over BOS, the real prompt tokens and STOP, as the eager path
            real = torch.arange(size, device=self._step.device) >= bucket.pad_count  # (B,)
            total = bos_stop.sum(dim=1) + (prompt * real[None, :, None]).sum(dim=1)  # (1, D)
            language = (total.float() / (real.sum() + 2)).to(self._dtype)
        prefix = model.vision_tokens(self._pixels, language)  # (1, N*P, D)
        sequence = bucket.sequence
        sequence[:, :1] = bos_stop[:, :1]
        sequence[:, 1:1 + prefix.shape[1]] = prefix
        if cfg.use_proprio:
            sequence[:, 1 + prefix.shape[1]] = model.proprio_token(self._proprio)[:, 0]
        sequence[:, prompt_start:action_start] = prompt
        sequence[:, action_start:action_start + self._slots] = 0
        sequence[:, -1:] = bos_stop[:, 1:]

    def _llm_stage(self, bucket: _Bucket) -> None:
        model = self.model
        sequence = bucket.sequence
        action_start = 1 + model.num_patches + bucket.prompt_len
        if self._ddim is not None:  # timestep token (last inserted one) and noisy actions
            sequence[:, model.num_patches] = self._time_tokens.index_select(0, self._step)
            sequence[:, action_start:action_start + self._slots] = model.noisy_action_projector(
                self._sample.reshape(1, self._slots, 1))
        hidden = model.language_model.model(
            inputs_embeds=sequence, attention_mask=bucket.mask, position_ids=bucket.positions,
            use_cache=False).last_hidden_state  # (1, L, D)
        read_start = action_start - 1  # one left of each slot (training label shift)
        bucket.action_hidden.copy_(hidden[:, read_start:read_start + self._slots])

    def _head_stage(self, bucket: _Bucket) -> None:
        model = self.model
        cfg = model.action_config
        hidden = bucket.action_hidden
        if cfg.head_type == 'l1':
            actions = model.action_head.predict_action(hidden)  # (1, H, A)
            self._actions.copy_(actions.reshape(cfg.chunk_len, cfg.action_dim))
        elif cfg.head_type == 'diffusion':
            noise_pred = model.action_head.predict_noise(hidden)  # (1, H, A)
            coefficients = {name: table.index_select(0, self._step).squeeze(0)  # 0-d
                            for name, table in self._ddim.items()}
            self._sample.copy_(ddim_step(noise_pred, self._sample, clip_range=self._clip_range,
                                         **coefficients))
            self._actions.copy_(self._sample.reshape(cfg.chunk_len, cfg.action_dim))
        else:
            logits = model.language_model.lm_head(hidden)  # (1, H*A, V)
            token_ids = logits.argmax(dim=-1)[0]  # (H*A,)
            distance = model.config.text_vocab_size - token_ids
            bins = torch.clamp(distance - 1, 0, len(self._bin_centers) - 1)
            self._token_ids.copy_(token_ids)
            self._actions.copy_(self._bin_centers[bins].reshape(cfg.chunk_len, cfg.action_dim))
