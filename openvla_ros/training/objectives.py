"""OFT fine-tuning objectives on a batch: L1 regression and diffusion noise prediction.

Upstream `vla-scripts/finetune.py` (`run_forward_pass`) runs the VLA on
`[BOS | patches | proprio? | timestep? | prompt incl. 29871 | H*A action slots | STOP | pad]`
with bidirectional attention, reads the last hidden states one position left of each action slot
and trains:

* L1 head: `L1Loss()(ground_truth, action_head.predict_action(hidden))`, the mean absolute error
  over the normalized (B, H, A) chunk;
* diffusion head: noise ~ N(0, 1) (B, H, A), one timestep per sample uniform in
  [0, num_diffusion_steps_train), `noisy = scheduler.add_noise(actions, noise, t)` fills the
  action slots through the noisy-action projector, the sinusoidal embedding of t is one extra
  token after proprio, and the loss is `mse_loss(predict_noise(hidden), noise)`.

`action_hidden_states` is the batched, gradient-carrying twin of `predict_action`'s sequence
(the same layout and read offsets; rows of different prompt length are right-padded after STOP
and masked, as upstream's collator pads). One deliberate difference: FiLM's language embedding
averages BOS, prompt and STOP without the padding (upstream averages a padded row's pad
embeddings too, which batch-1 inference never sees).
"""

from typing import Optional, Sequence

import torch
from torch.nn import functional

from openvla_ros.model.config import EMPTY_PIECE_INDEX, STOP_INDEX
from openvla_ros.model.llm import run_decoder
from openvla_ros.model.modeling import ACTION_PLACEHOLDER_INDEX, OpenVLAForActionPrediction


def prompt_with_empty_piece(prompt_ids: Sequence[int]) -> list:
    """Append token 29871 unless it is already last, as `predict_action` does."""
    ids = list(prompt_ids)
    if not ids or ids[-1] != EMPTY_PIECE_INDEX:
        ids.append(EMPTY_PIECE_INDEX)
    return ids


def pad_prompts(prompts: Sequence[Sequence[int]], pad_token_id: int):
    """Right-pad prompts (BOS first) to a (B, L) tensor; also return their lengths (B,)."""
    prompts = [prompt_with_empty_piece(ids) for ids in prompts]
    lengths = torch.tensor([len(ids) for ids in prompts])
    ids = torch.full((len(prompts), int(lengths.max())), pad_token_id, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, :len(prompt)] = torch.tensor(prompt)
    return ids, lengths


def action_hidden_states(model: OpenVLAForActionPrediction, prompt_ids: torch.Tensor,
                         prompt_lengths: torch.Tensor, pixel_values: torch.Tensor,
                         proprio: Optional[torch.Tensor] = None,
                         noisy_actions: Optional[torch.Tensor] = None,
                         timestep_embeddings: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Last hidden states read for the action head: (B, H*A, D), with gradients.

    Args:
        prompt_ids: (B, Lp) prompt ids incl. BOS and 29871, right-padded (`pad_prompts`).
        prompt_lengths: (B,) unpadded lengths.
        pixel_values: (B, 6N, S, S) preprocessed images.
        proprio: (B, S) normalized proprio; required iff the model uses proprio.
        noisy_actions: (B, H, A) diffusion inputs of the action slots (else the slots are zero).
        timestep_embeddings: (B, D) diffusion timestep token (with `noisy_actions`).
    """
    cfg = model.action_config
    device = model.device
    batch = prompt_ids.shape[0]
    slots = cfg.num_action_slots
    lengths = prompt_lengths.to(device)
    longest = int(prompt_lengths.max())
    text_len = longest + slots + 1  # prompt, action slots, STOP (then padding)
    positions = torch.arange(text_len, device=device)[None, :]  # (1, Lt)
    is_action = (positions >= lengths[:, None]) & (positions < lengths[:, None] + slots)
    is_stop = positions == (lengths[:, None] + slots)
    pad_id = model.config.pad_token_id
    ids = torch.full((batch, text_len), pad_id, dtype=torch.long, device=device)
    ids[:, :longest] = prompt_ids.to(device)
    ids = torch.where(positions < lengths[:, None], ids, torch.full_like(ids, pad_id))
    ids = torch.where(is_action, torch.full_like(ids, ACTION_PLACEHOLDER_INDEX), ids)
    ids = torch.where(is_stop, torch.full_like(ids, STOP_INDEX), ids)
    attention_mask = (positions <= lengths[:, None] + slots).long()  # (B, Lt), 0 = padding
    embeddings = model.embed_tokens(ids)  # (B, Lt, D)
    language_embeddings = None
    if cfg.uses_film:  # mean over BOS, prompt and STOP, as predict_action (padding left out)
        kept = (~is_action & attention_mask.bool())[..., None]  # (B, Lt, 1)
        language_embeddings = (embeddings * kept).sum(dim=1) / kept.sum(dim=1)  # (B, D)
    if noisy_actions is not None:
        projected = model.noisy_action_projector(
            noisy_actions.reshape(batch, slots, 1).to(device=device, dtype=model.dtype))
        embeddings = embeddings.masked_scatter(
            is_action[..., None], projected.reshape(-1, projected.shape[-1]))  # (B, Lt, D)
    else:
        embeddings = embeddings * (~is_action)[..., None]  # upstream multiplies by ~mask
    prefix = [model.vision_tokens(pixel_values, language_embeddings)]  # (B, N*P, D)
    if cfg.use_proprio:
        prefix.append(model.proprio_token(proprio))  # (B, 1, D)
    if cfg.head_type == 'diffusion':
        if timestep_embeddings is None or noisy_actions is None:
            raise ValueError('a diffusion head trains on noisy_actions and timestep_embeddings')
        prefix.append(timestep_embeddings.reshape(batch, 1, -1).to(model.dtype))  # (B, 1, D)
    prefix = torch.cat(prefix, dim=1)  # (B, num_patches, D)
    sequence = torch.cat([embeddings[:, :1], prefix, embeddings[:, 1:]], dim=1)  # (B, L, D)
    mask = torch.cat([attention_mask[:, :1], attention_mask.new_ones(batch, prefix.shape[1]),
                      attention_mask[:, 1:]], dim=1)  # (B, L)
    hidden = run_decoder(model.language_model, sequence, mask, bidirectional=True)
    hidden = hidden.last_hidden_state  # (B, L, D)
    # predict_action's read_start = num_patches + (prompt length without BOS), per row.
    start = model.num_patches + lengths - 1  # (B,)
    index = start[:, None] + torch.arange(slots, device=device)[None, :]  # (B, H*A)
    return hidden.gather(1, index[..., None].expand(-1, -1, hidden.shape[-1]))


def l1_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Upstream's `torch.nn.L1Loss()(ground_truth_actions, predicted_actions)`: the mean."""
    return functional.l1_loss(predicted, target.to(predicted.dtype))


def mse_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error (diffusion noise loss; also a warm-up for L1 from scratch)."""
    return functional.mse_loss(predicted, target.to(predicted.dtype))


def sample_noisy_actions(model: OpenVLAForActionPrediction, actions: torch.Tensor,
                         generator: Optional[torch.Generator] = None):
    """Upstream's `DiffusionActionHead.sample_noisy_actions` for normalized actions (B, H, A).

    Returns (noise (B, H, A), noisy actions (B, H, A), timestep embeddings (B, D), timesteps).
    """
    head = model.action_head
    batch = actions.shape[0]
    noise = torch.randn(actions.shape, generator=generator, dtype=actions.dtype,
                        device=getattr(generator, 'device', None) or actions.device)
    noise = noise.to(actions.device)
    timesteps = torch.randint(0, head.noise_scheduler.config.num_train_timesteps, (batch,),
                              generator=generator,
                              device=getattr(generator, 'device', None) or actions.device)
    timesteps = timesteps.to(actions.device)
    noisy = head.noise_scheduler.add_noise(actions, noise, timesteps)  # (B, H, A)
    embeddings = head.time_encoder(timesteps).to(actions.dtype)  # (B, D)
    return noise, noisy, embeddings, timesteps


def predict_chunks(model: OpenVLAForActionPrediction, prompt_ids, prompt_lengths, pixel_values,
                   proprio=None) -> torch.Tensor:
    """L1 head: normalized chunks (B, H, A) from one batched pass (with gradients)."""
    hidden = action_hidden_states(model, prompt_ids, prompt_lengths, pixel_values, proprio)
    return model.action_head.predict_action(hidden)


def action_loss(model: OpenVLAForActionPrediction, batch: dict, objective: str = 'l1',
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Return the training loss of one batch.

    Args:
        batch: 'prompt_ids' (B, Lp), 'prompt_lengths' (B,), 'pixel_values' (B, 6N, S, S),
            'proprio' (B, S) or None, 'actions' (B, H, A) normalized.
        objective: 'l1' (upstream's L1 head loss), 'mse' (squared error on the L1 head's output)
            or 'diffusion' (noise-prediction MSE; needs a diffusion head).
        generator: draws diffusion noise and timesteps (None: the global RNG, as upstream).
    """
    head_type = model.action_config.head_type
    actions = batch['actions'].to(device=model.device, dtype=torch.float32)
    inputs = (batch['prompt_ids'], batch['prompt_lengths'], batch['pixel_values'],
              batch.get('proprio'))
    if objective == 'diffusion':
        if head_type != 'diffusion':
            raise ValueError(f'objective diffusion: expected a diffusion head, got {head_type}')
        noise, noisy, embeddings, _ = sample_noisy_actions(model, actions, generator)
        hidden = action_hidden_states(model, *inputs, noisy_actions=noisy,
                                      timestep_embeddings=embeddings)
        noise_pred = model.action_head.predict_noise(hidden)  # (B, H, A)
        return mse_loss(noise_pred.reshape(noise.shape).float(), noise)
    if objective not in ('l1', 'mse'):
        raise ValueError(f"objective: expected 'l1', 'mse' or 'diffusion', got {objective!r}")
    if head_type != 'l1':
        raise ValueError(f'objective {objective}: expected an L1 head, got {head_type}')
    predicted = predict_chunks(model, *inputs).float()  # (B, H, A)
    return l1_loss(predicted, actions) if objective == 'l1' else mse_loss(predicted, actions)
