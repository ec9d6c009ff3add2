"""OpenVLA-OFT assembled: vision backbone, projector, Llama, action heads; `predict_action`.

Sequence layout of one action query (OPENVLA_OFT_REFERENCE.md section 5), batch size 1::

    [BOS | N*P patches | proprio? | timestep? | prompt incl. 29871 | H*A action slots | STOP]
     0     1 ..                                                                         L-1

`num_patches` = N*P (+1 proprio) (+1 diffusion timestep). The action hidden states are read at
`[num_patches + num_prompt_tokens, num_patches + num_prompt_tokens + H*A)`: one position left of
each action slot (starting at the 29871 token), the causal-LM label shift of training, even
though attention is bidirectional. Do not "fix" this off-by-one.

Public API:

* `OpenVLAForActionPrediction(config, action_config, attn_implementation='sdpa')`; normally
  built by `checkpoint.load_openvla`. Attributes mirror the checkpoint: `vision_backbone`,
  `projector`, `language_model` (stock `LlamaForCausalLM`), `action_head` (None for discrete),
  `proprio_projector`, `noisy_action_projector`; plus `config`, `action_config`, `norm_stats`
  ({unnorm_key: DatasetStats}).
* `predict_action(input_ids, pixel_values, proprio=None, noise=None, generator=None,
  unnormalize=False, unnorm_key=None) -> ActionPrediction` (inference mode, batch 1).
* `forward(...) -> OpenVLAOutput`: the seed model's three modes (cached generation,
  language-only, multimodal with `labels` -> loss), for fine-tuning and original-OpenVLA
  decoding. `gradient_checkpointing_enable()` turns on checkpointing in the LLM.

Thread safety: a model instance must be used by one thread at a time (the diffusion head's
scheduler and any KV cache carry state); the attention mode itself is per call.
"""

import dataclasses
import time
from typing import Any, Dict, Optional

import numpy as np
import torch
from torch import nn

from openvla_ros.model.action_heads import DiffusionActionHead, L1RegressionActionHead
from openvla_ros.model.config import (
    ACTION_TOKEN_BEGIN_IDX, ActionConfig, BOS_INDEX, EMPTY_PIECE_INDEX, IGNORE_INDEX,
    OpenVLAConfig, STOP_INDEX)
from openvla_ros.model.film import apply_film
from openvla_ros.model.llm import (
    build_language_model, output_cache, reset_rotary_embedding, run_causal_lm, run_decoder,
    set_activation_checkpointing)
from openvla_ros.model.projectors import (
    NoisyActionProjector, PrismaticProjector, ProprioProjector)
from openvla_ros.model.vision import PrismaticVisionBackbone
from openvla_ros.normalization import DatasetStats, resolve_unnorm_key, unnormalize_actions

# Placeholder id of the action slots before their embeddings are zeroed / replaced (upstream: 1).
ACTION_PLACEHOLDER_INDEX = 1
# Label that marks a placeholder as an action position (> ACTION_TOKEN_BEGIN_IDX).
ACTION_PLACEHOLDER_LABEL = ACTION_TOKEN_BEGIN_IDX + 1


@dataclasses.dataclass
class OpenVLAOutput:
    """Result of `forward` (upstream `PrismaticCausalLMOutputWithPast`).

    `projector_features` are the tokens inserted after BOS: projected patches, then the proprio
    and diffusion-timestep tokens when present (B, num_patches, D).
    """

    loss: Optional[torch.Tensor] = None
    logits: Optional[torch.Tensor] = None
    past_key_values: Any = None
    hidden_states: Optional[tuple] = None
    projector_features: Optional[torch.Tensor] = None


@dataclasses.dataclass(frozen=True)
class ActionPrediction:
    """Result of `predict_action`.

    Args:
        normalized_actions: (H, A) tensor on the model's device; float32 for the L1 and diffusion
            heads (the head output cast like upstream's `.float()`), float64 for discrete tokens
            (upstream's numpy bin centers). Pass `.cpu().numpy()` as it is to
            `normalization.unnormalize_actions` to reproduce upstream exactly.
        actions: (H, A) float64 numpy, unnormalized with `norm_stats` (only if asked for).
        unnorm_key: The dataset whose statistics produced `actions`.
        action_token_ids: (H*A,) argmax token ids of the discrete path, else None.
        timings: seconds per stage: 'vision' (embeddings, ViTs, projector, proprio), 'llm'
            (decoder passes) and 'head' (action head, token decoding or DDIM updates).
    """

    normalized_actions: torch.Tensor
    actions: Optional[np.ndarray] = None
    unnorm_key: Optional[str] = None
    action_token_ids: Optional[torch.Tensor] = None
    timings: Dict[str, float] = dataclasses.field(default_factory=dict)


class StageTimer:
    """Time spent per named stage; repeated stages (diffusion steps) add up.

    On CUDA it records events on the current stream, so timing never synchronises mid-way; the
    totals wait for the last event. Elsewhere it reads the wall clock.
    """

    def __init__(self, device: torch.device):
        self._cuda = device.type == 'cuda'
        self._previous = self._mark()
        self._laps = []  # (stage, start mark, end mark)

    def _mark(self):
        if not self._cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def lap(self, stage: str) -> None:
        """Attribute the time since the previous lap to `stage`."""
        mark = self._mark()
        self._laps.append((stage, self._previous, mark))
        self._previous = mark

    def totals(self) -> Dict[str, float]:
        """Seconds per stage."""
        if self._cuda and self._laps:
            self._laps[-1][2].synchronize()
        totals: Dict[str, float] = {}
        for stage, start, end in self._laps:
            seconds = start.elapsed_time(end) / 1e3 if self._cuda else end - start
            totals[stage] = totals.get(stage, 0.0) + seconds
        return totals


def discrete_bin_centers(n_action_bins: int) -> np.ndarray:
    """Return the midpoints of `n_action_bins` bins over [-1, 1] (255 float64 values for 256)."""
    bins = np.linspace(-1.0, 1.0, n_action_bins)
    return (bins[:-1] + bins[1:]) / 2.0


class OpenVLAForActionPrediction(nn.Module):
    """OpenVLA-OFT: Prismatic VLM + Llama-2 with bidirectional action slots and action heads."""

    def __init__(self, config: OpenVLAConfig, action_config: ActionConfig,
                 attn_implementation: str = 'sdpa'):
        super().__init__()
        self.config = config
        self.action_config = action_config
        self.norm_stats: Dict[str, DatasetStats] = {}
        llm_dim = config.llm_dim
        self.vision_backbone = PrismaticVisionBackbone(
            config.timm_model_ids, config.image_size, config.timm_override_act_layers,
            config.timm_model_kwargs, action_config.num_images_in_input)
        if action_config.uses_film:
            apply_film(self.vision_backbone, llm_dim)
        self.projector = PrismaticProjector(self.vision_backbone.embed_dim, llm_dim,
                                            config.use_fused_vision_backbone)
        self.language_model = build_language_model(config.llama_config(), attn_implementation)
        head_args = (llm_dim, llm_dim, action_config.action_dim, action_config.chunk_len)
        self.action_head = None
        self.noisy_action_projector = None
        if action_config.head_type == 'l1':
            self.action_head = L1RegressionActionHead(*head_args)
        elif action_config.head_type == 'diffusion':
            self.action_head = DiffusionActionHead(
                *head_args, num_diffusion_steps_train=action_config.num_diffusion_steps_train,
                num_diffusion_steps_inference=action_config.num_diffusion_steps_inference)
            self.noisy_action_projector = NoisyActionProjector(llm_dim)
        self.proprio_projector = None
        if action_config.use_proprio:
            self.proprio_projector = ProprioProjector(llm_dim, action_config.proprio_dim)
        self._bin_centers = discrete_bin_centers(config.n_action_bins)

    # ----------------------------------------------------------------------------- properties

    @property
    def device(self) -> torch.device:
        return self.language_model.model.embed_tokens.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.language_model.model.embed_tokens.weight.dtype

    @property
    def num_patches(self) -> int:
        """Positions inserted after BOS: N*P patches (+1 proprio) (+1 diffusion timestep)."""
        cfg = self.action_config
        return (self.vision_backbone.num_patches * cfg.num_images_in_input
                + int(cfg.use_proprio) + int(cfg.head_type == 'diffusion'))

    @property
    def num_diffusion_steps(self) -> Optional[int]:
        """DDIM sampling steps of a diffusion head, None otherwise."""
        if self.action_config.head_type != 'diffusion':
            return None
        return self.action_head.num_inference_steps

    def set_num_diffusion_steps(self, steps: int) -> None:
        """Change the DDIM sampling steps (diffusion heads only)."""
        if self.action_config.head_type != 'diffusion':
            raise ValueError(f'num diffusion steps: expected a diffusion head, got '
                             f'{self.action_config.head_type!r}')
        self.action_head.set_num_inference_steps(steps)
        self.action_config = dataclasses.replace(self.action_config,
                                                 num_diffusion_steps_inference=steps)

    def reset_runtime_state(self, device) -> None:
        """Rebuild on `device` what the state dict does not hold (after a meta-device build).

        RoPE's float32 `inv_freq` and the diffusion head's DDIM scheduler tables.
        """
        reset_rotary_embedding(self.language_model, device)
        if self.action_config.head_type == 'diffusion':
            scheduler = self.action_head.noise_scheduler
            self.action_head.noise_scheduler = type(scheduler).from_config(scheduler.config)
            self.action_head.set_num_inference_steps(
                self.action_config.num_diffusion_steps_inference)

    def gradient_checkpointing_enable(self) -> None:
        """Recompute LLM layer activations in backward (non-reentrant checkpointing)."""
        set_activation_checkpointing(self.language_model, True)

    def gradient_checkpointing_disable(self) -> None:
        set_activation_checkpointing(self.language_model, False)

    # --------------------------------------------------------------------- building blocks

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Look up LLM input embeddings (B, L) -> (B, L, D)."""
        return self.language_model.model.embed_tokens(input_ids)

    def vision_tokens(self, pixel_values: torch.Tensor,
                      language_embeddings: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Project image patches: (B, 6N, H, W) -> (B, N*P, D); FiLM needs (B, D) language."""
        if not self.action_config.uses_film:
            language_embeddings = None
        pixel_values = pixel_values.to(device=self.device, dtype=self.dtype)
        features = self.vision_backbone(pixel_values, language_embeddings)  # (B, N*P, Dv)
        return self.projector(features)  # (B, N*P, D)

    def proprio_token(self, proprio: torch.Tensor) -> torch.Tensor:
        """Embed normalized proprio (B, S) as one token (B, 1, D)."""
        batch = proprio.shape[0]
        proprio = proprio.reshape(batch, -1).to(device=self.device, dtype=self.dtype)  # (B, S)
        return self.proprio_projector(proprio)[:, None, :]  # (B, 1, D)

    # -------------------------------------------------------------------- action prediction

    @torch.inference_mode()
    def predict_action(self, input_ids: torch.Tensor, pixel_values: torch.Tensor,
                       proprio: Optional[torch.Tensor] = None,
                       noise: Optional[torch.Tensor] = None,
                       generator: Optional[torch.Generator] = None,
                       unnormalize: bool = False,
                       unnorm_key: Optional[str] = None) -> ActionPrediction:
        """Predict one normalized action chunk (H, A), as upstream `predict_action`.

        Args:
            input_ids: (1, L) prompt ids starting with BOS; token 29871 is appended unless it
                is already last.
            pixel_values: (1, 6N, 224, 224) preprocessed images (cast to the model dtype).
            proprio: (1, S) normalized proprio; required iff `action_config.use_proprio`.
            noise: (1, H, A) initial diffusion noise (diffusion head only).
            generator: draws the initial diffusion noise when `noise` is None (else the global
                torch RNG, as upstream); ignored by deterministic heads.
            unnormalize: also return `actions` in robot units from `norm_stats`.
            unnorm_key: dataset for `unnormalize`; None requires exactly one dataset.
        """
        cfg = self.action_config
        timer = StageTimer(self.device)
        prompt_ids = self._checked_prompt(input_ids)
        self._check_predict_inputs(pixel_values, proprio, noise)
        device = self.device
        num_prompt_tokens = prompt_ids.shape[1] - 1  # without BOS, with 29871
        slots = cfg.num_action_slots
        extra = torch.tensor([[ACTION_PLACEHOLDER_INDEX] * slots + [STOP_INDEX]], device=device)
        ids = torch.cat([prompt_ids, extra], dim=1)  # (1, Lt)
        embeddings = self.embed_tokens(ids)  # (1, Lt, D)
        action_start = 1 + num_prompt_tokens
        action_end = action_start + slots
        language_embeddings = None
        if cfg.uses_film:  # mean over BOS, prompt (incl. 29871) and STOP
            non_action = torch.cat([embeddings[:, :action_start], embeddings[:, action_end:]],
                                   dim=1)  # (1, Lt - H*A, D)
            language_embeddings = non_action.mean(dim=1)  # (1, D)
        prefix = [self.vision_tokens(pixel_values, language_embeddings)]  # (1, N*P, D)
        if cfg.use_proprio:
            prefix.append(self.proprio_token(proprio))  # (1, 1, D)
        prefix = torch.cat(prefix, dim=1)  # (1, N*P [+1], D)
        timer.lap('vision')
        bos = embeddings[:, :1]
        prompt = embeddings[:, 1:action_start]
        stop = embeddings[:, action_end:]
        read_start = self.num_patches + num_prompt_tokens

        if cfg.head_type == 'diffusion':
            normalized = self._sample_diffusion(bos, prefix, prompt, stop, read_start, noise,
                                                generator, timer)  # (1, H, A)
            normalized = normalized.reshape(cfg.chunk_len, cfg.action_dim).float()  # (H, A)
            token_ids = None
        else:
            zeros = embeddings[:, action_start:action_end] * 0  # upstream multiplies by ~mask
            sequence = torch.cat([bos, prefix, prompt, zeros, stop], dim=1)  # (1, L, D)
            hidden = run_decoder(self.language_model, sequence, bidirectional=True)
            action_hidden = hidden.last_hidden_state[:, read_start:read_start + slots]
            timer.lap('llm')
            if cfg.head_type == 'l1':
                normalized = self.action_head.predict_action(action_hidden)  # (1, H, A)
                normalized = normalized.reshape(cfg.chunk_len, cfg.action_dim).float()
                token_ids = None
            else:
                normalized, token_ids = self._decode_action_tokens(action_hidden)
        timer.lap('head')
        result = ActionPrediction(normalized_actions=normalized, action_token_ids=token_ids,
                                  timings=timer.totals())
        if unnormalize:
            key = resolve_unnorm_key(self.norm_stats, unnorm_key)
            actions = unnormalize_actions(normalized.cpu().numpy(), self.norm_stats[key].action,
                                          cfg.normalization_type)
            result = dataclasses.replace(result, actions=actions, unnorm_key=key)
        return result

    def _decode_action_tokens(self, action_hidden: torch.Tensor):
        """Decode LM-head argmax tokens at the action positions to bin centers (section 6.1)."""
        cfg = self.action_config
        logits = self.language_model.lm_head(action_hidden)  # (1, H*A, V)
        token_ids = logits.argmax(dim=-1)[0]  # (H*A,)
        distance = self.config.text_vocab_size - token_ids
        bin_index = torch.clamp(distance - 1, 0, len(self._bin_centers) - 1)
        centers = torch.from_numpy(self._bin_centers).to(token_ids.device)  # (n_bins - 1,)
        normalized = centers[bin_index].reshape(cfg.chunk_len, cfg.action_dim)  # (H, A)
        return normalized, token_ids

    def _sample_diffusion(self, bos, prefix, prompt, stop, read_start, noise, generator,
                          timer: StageTimer):
        """Run the DDIM loop; every step re-runs the whole sequence (no KV cache), as upstream."""
        cfg = self.action_config
        head = self.action_head
        shape = (1, cfg.chunk_len, cfg.action_dim)
        if noise is not None:
            sample = noise.to(device=self.device, dtype=self.dtype)
        elif generator is not None:
            sample = torch.randn(shape, generator=generator, device=generator.device,
                                 dtype=self.dtype).to(self.device)
        else:
            sample = torch.randn(shape, device=self.device, dtype=self.dtype)
        timesteps = head.timesteps
        time_tokens = head.time_encoder(timesteps.to(self.device)).to(self.dtype)  # (T, D)
        slots = cfg.num_action_slots
        for step, t in enumerate(timesteps.tolist()):
            actions = self.noisy_action_projector(sample.reshape(1, slots, 1))  # (1, H*A, D)
            time_token = time_tokens[step][None, None, :]  # (1, 1, D)
            sequence = torch.cat([bos, prefix, time_token, prompt, actions, stop],
                                 dim=1)  # (1, L, D)
            timer.lap('head')
            hidden = run_decoder(self.language_model, sequence, bidirectional=True)
            action_hidden = hidden.last_hidden_state[:, read_start:read_start + slots]
            timer.lap('llm')
            noise_pred = head.predict_noise(action_hidden)  # (1, H, A)
            sample = head.denoise_step(noise_pred, t, sample)
        return sample

    def _checked_prompt(self, input_ids: torch.Tensor) -> torch.Tensor:
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 \
                or input_ids.shape[0] != 1 or input_ids.shape[1] < 1 \
                or input_ids.dtype not in (torch.int64, torch.int32):
            got = (f'{tuple(input_ids.shape)} {input_ids.dtype}'
                   if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__)
            raise ValueError(f'input_ids: expected an integer tensor of shape (1, L) (batch '
                             f'size 1, as upstream), got {got}')
        input_ids = input_ids.to(device=self.device, dtype=torch.long)
        if int(input_ids[0, 0]) != BOS_INDEX:
            raise ValueError(f'input_ids: expected BOS ({BOS_INDEX}) first, got '
                             f'{int(input_ids[0, 0])}')
        if int(input_ids[0, -1]) != EMPTY_PIECE_INDEX:
            empty_piece = torch.full((1, 1), EMPTY_PIECE_INDEX, device=self.device)
            input_ids = torch.cat([input_ids, empty_piece], dim=1)  # (1, L + 1)
        return input_ids

    def _check_predict_inputs(self, pixel_values, proprio, noise) -> None:
        cfg = self.action_config
        backbone = self.vision_backbone
        expected = (1, backbone.channels_per_image * cfg.num_images_in_input,
                    *backbone.image_size)
        if not isinstance(pixel_values, torch.Tensor) or tuple(pixel_values.shape) != expected:
            got = (tuple(pixel_values.shape) if isinstance(pixel_values, torch.Tensor)
                   else type(pixel_values).__name__)
            raise ValueError(f'pixel_values: expected shape {expected} '
                             f'({cfg.num_images_in_input} image(s)), got {got}')
        if cfg.use_proprio:
            if proprio is None or proprio.numel() != cfg.proprio_dim or proprio.shape[0] != 1:
                got = None if proprio is None else tuple(proprio.shape)
                raise ValueError(f'proprio: expected shape (1, {cfg.proprio_dim}) (normalized '
                                 f'state), got {got}')
        elif proprio is not None:
            raise ValueError('proprio: expected None because use_proprio is False, got shape '
                             f'{tuple(proprio.shape)}')
        if noise is not None:
            if cfg.head_type != 'diffusion':
                raise ValueError(f'noise: expected None for a {cfg.head_type} head (only '
                                 'diffusion heads sample), got a tensor')
            if tuple(noise.shape) != (1, cfg.chunk_len, cfg.action_dim):
                raise ValueError(f'noise: expected shape (1, {cfg.chunk_len}, '
                                 f'{cfg.action_dim}), got {tuple(noise.shape)}')

    # ------------------------------------------------------------------------------ forward

    def forward(self, input_ids: Optional[torch.Tensor] = None,
                attention_mask: Optional[torch.Tensor] = None,
                pixel_values: Optional[torch.Tensor] = None,
                labels: Optional[torch.Tensor] = None,
                inputs_embeds: Optional[torch.Tensor] = None,
                past_key_values=None, use_cache: Optional[bool] = None,
                output_hidden_states: bool = False,
                proprio: Optional[torch.Tensor] = None,
                noisy_actions: Optional[torch.Tensor] = None,
                diffusion_timestep_embeddings: Optional[torch.Tensor] = None,
                bidirectional: Optional[bool] = None) -> OpenVLAOutput:
        """Run the seed model's forward in one of three modes.

        1. Cached generation: `input_ids` (B, 1) with `past_key_values` (causal).
        2. Language only: no `pixel_values` (causal unless `bidirectional=True`).
        3. Multimodal: patches (+ proprio, + diffusion timestep token) inserted after BOS;
           `labels` (B, L) mark action positions (> 31743), whose embeddings are zeroed or, with
           `noisy_actions` (B, H, A), replaced by projected noisy actions; the returned loss is
           the shifted cross-entropy with IGNORE_INDEX at the inserted positions. Attention is
           bidirectional (as the OFT fork trains) unless `use_cache` asks for a KV cache or
           `bidirectional=False` (original OpenVLA). FiLM averages the input embeddings of the
           non-action positions (all positions when `labels` is None).
        """
        if past_key_values is not None and input_ids is not None and input_ids.shape[1] == 1:
            out = run_causal_lm(self.language_model, bidirectional=False, input_ids=input_ids,
                                past_key_values=past_key_values, use_cache=use_cache,
                                output_hidden_states=output_hidden_states)
            return self._output(out)
        if pixel_values is None:
            out = run_causal_lm(self.language_model, bidirectional=bool(bidirectional),
                                input_ids=input_ids, inputs_embeds=inputs_embeds,
                                attention_mask=attention_mask, labels=labels,
                                past_key_values=past_key_values, use_cache=use_cache,
                                output_hidden_states=output_hidden_states)
            return self._output(out)
        if input_ids is None or inputs_embeds is not None or past_key_values is not None:
            raise ValueError('multimodal forward: expected input_ids and pixel_values without '
                             'inputs_embeds or past_key_values')
        if bidirectional is None:
            bidirectional = not use_cache
        embeddings = self.embed_tokens(input_ids)  # (B, L, D)
        batch = input_ids.shape[0]
        language_embeddings = None
        if labels is not None:
            action_mask = labels > ACTION_TOKEN_BEGIN_IDX  # (B, L)
            if self.action_config.uses_film:
                counts = (~action_mask).sum(dim=1)
                if not bool((counts == counts[0]).all()):
                    raise ValueError('labels: expected the same number of non-action positions '
                                     f'in every row (FiLM averages them), got {counts.tolist()}')
                kept = embeddings[~action_mask].reshape(batch, -1, embeddings.shape[-1])
                language_embeddings = kept.mean(dim=1)  # (B, D)
            if noisy_actions is not None:
                projected = self.noisy_action_projector(
                    noisy_actions.reshape(batch, -1, 1).to(self.dtype))  # (B, H*A, D)
                embeddings = embeddings.masked_scatter(
                    action_mask[..., None], projected.reshape(-1, projected.shape[-1]))
            else:
                embeddings = embeddings * (~action_mask)[..., None]
        elif self.action_config.uses_film:
            language_embeddings = embeddings.mean(dim=1)  # (B, D)
        inserted = [self.vision_tokens(pixel_values, language_embeddings)]  # (B, N*P, D)
        if proprio is not None and self.proprio_projector is not None:
            inserted.append(self.proprio_token(proprio))  # (B, 1, D)
        if diffusion_timestep_embeddings is not None:
            inserted.append(diffusion_timestep_embeddings.reshape(batch, 1, -1).to(self.dtype))
        inserted = torch.cat(inserted, dim=1)  # (B, num_patches, D)
        num_inserted = inserted.shape[1]
        sequence = torch.cat([embeddings[:, :1], inserted, embeddings[:, 1:]], dim=1)
        if attention_mask is not None:
            ones = attention_mask.new_ones(batch, num_inserted)
            attention_mask = torch.cat([attention_mask[:, :1], ones, attention_mask[:, 1:]],
                                       dim=1)  # (B, L + num_patches)
        if labels is not None:
            ignore = labels.new_full((batch, num_inserted), IGNORE_INDEX)
            labels = torch.cat([labels[:, :1], ignore, labels[:, 1:]], dim=1)
        out = run_causal_lm(self.language_model, bidirectional=bidirectional,
                            inputs_embeds=sequence, attention_mask=attention_mask,
                            labels=labels, use_cache=use_cache,
                            output_hidden_states=output_hidden_states)
        return self._output(out, projector_features=inserted)

    @staticmethod
    def _output(out, projector_features=None) -> OpenVLAOutput:
        return OpenVLAOutput(loss=out.loss, logits=out.logits, past_key_values=output_cache(out),
                             hidden_states=out.hidden_states,
                             projector_features=projector_features)
