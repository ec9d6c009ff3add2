"""Llama-2 language model of OpenVLA on stock transformers, causal or fully bidirectional.

OpenVLA-OFT predicts actions with **fully bidirectional** attention: its transformers fork
always calls SDPA with `is_causal=False` (OPENVLA_OFT_REFERENCE.md section 3.3). Here that
is done without a fork and without mutable state: a bidirectional call builds an explicit,
always-materialized 4-D mask with transformers' `create_bidirectional_mask` (every key visible
except right padding, exactly the fork's "last row of the mask" rule) and hands it to the stock
`LlamaModel`, which uses a 4-D mask as it is. Because the mode travels with the arguments:

* two threads may run causal and bidirectional calls on different model instances freely (one
  instance is still meant for one thread at a time, like any torch module with a KV cache);
* gradient checkpointing recomputes every layer with the same mask.

Causal calls (language-only, KV-cached generation) are plain stock calls.

Public API: `build_language_model`, `reset_rotary_embedding`, `run_decoder` (final-norm hidden
states), `run_causal_lm` (logits, loss, cache), `output_cache`, `set_activation_checkpointing`,
`SUPPORTED_ATTENTION`.
Supported: transformers >= 5.15 (`create_bidirectional_mask(..., allow_is_bidirectional_skip)`;
tested: 5.15 and 5.24),
attention implementations 'sdpa' (default, as upstream) and 'eager'. Flash-attention kernels
are refused: they ignore 4-D masks and would silently run causally.
"""

import inspect
from typing import Optional

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.masking_utils import create_bidirectional_mask
from transformers.models.llama.modeling_llama import LlamaModel

SUPPORTED_ATTENTION = ('sdpa', 'eager')

if 'allow_is_bidirectional_skip' not in inspect.signature(create_bidirectional_mask).parameters:
    raise ImportError('openvla_ros needs transformers >= 5.15 (create_bidirectional_mask with '
                      f'allow_is_bidirectional_skip), got {transformers.__version__}')

# transformers 5.x renamed `past_key_values` to `cache` (old name deprecated); accept both.
_CACHE_KWARG = ('cache' if 'cache' in inspect.signature(LlamaModel.forward).parameters
                else 'past_key_values')


def build_language_model(llama_config: LlamaConfig,
                         attn_implementation: str = 'sdpa') -> LlamaForCausalLM:
    """Construct `LlamaForCausalLM` (random init; use a meta device context to skip memory)."""
    if attn_implementation not in SUPPORTED_ATTENTION:
        raise ValueError(f'attn_implementation: expected one of {SUPPORTED_ATTENTION}, '
                         f'got {attn_implementation!r}')
    llama_config._attn_implementation = attn_implementation
    return LlamaForCausalLM(llama_config)


def reset_rotary_embedding(language_model: LlamaForCausalLM, device) -> None:
    """Recompute RoPE's non-persistent `inv_freq` (float32) on `device`.

    Needed after building on the meta device: buffers outside the state dict are never loaded.
    """
    rotary = language_model.model.rotary_emb
    with torch.device(device):
        language_model.model.rotary_emb = type(rotary)(config=rotary.config)


def set_activation_checkpointing(language_model: LlamaForCausalLM, enabled: bool) -> None:
    """Turn (non-reentrant) activation checkpointing of the decoder layers on or off."""
    if enabled:
        enable = getattr(language_model, 'activation_checkpointing_enable', None)
        if enable is not None:  # transformers >= 5.x name; the old one warns
            enable(activation_checkpointing_kwargs={'use_reentrant': False})
        else:
            language_model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={'use_reentrant': False})
    else:
        disable = getattr(language_model, 'activation_checkpointing_disable', None)
        (disable or language_model.gradient_checkpointing_disable)()


def _attention_mask(language_model, inputs_embeds, attention_mask, bidirectional):
    if not bidirectional:
        return attention_mask
    if attention_mask is not None and attention_mask.dim() == 4:
        raise ValueError('attention_mask: expected a 2-D padding mask (B, L) for bidirectional '
                         f'attention, got shape {tuple(attention_mask.shape)}')
    mask = create_bidirectional_mask(config=language_model.config, inputs_embeds=inputs_embeds,
                                     attention_mask=attention_mask,
                                     allow_is_bidirectional_skip=False)
    if mask is None:  # LlamaModel would then build a causal mask of its own
        raise RuntimeError(
            f'transformers {transformers.__version__} returned no bidirectional mask for '
            f'{language_model.config._attn_implementation!r}; attention would be causal')
    return mask


def run_decoder(language_model: LlamaForCausalLM, inputs_embeds: torch.Tensor,
                attention_mask: Optional[torch.Tensor] = None, *, bidirectional: bool,
                output_hidden_states: bool = False):
    """Run the decoder stack without the LM head; `.last_hidden_state` is the final-norm output.

    That is what upstream reads as `hidden_states[-1]`; skipping the LM head saves the
    (L x vocab) logits the L1 and diffusion heads never use.
    """
    mask = _attention_mask(language_model, inputs_embeds, attention_mask, bidirectional)
    return language_model.model(inputs_embeds=inputs_embeds, attention_mask=mask,
                                use_cache=False, output_hidden_states=output_hidden_states)


def run_causal_lm(language_model: LlamaForCausalLM, *, bidirectional: bool,
                  input_ids: Optional[torch.Tensor] = None,
                  inputs_embeds: Optional[torch.Tensor] = None,
                  attention_mask: Optional[torch.Tensor] = None,
                  labels: Optional[torch.Tensor] = None, past_key_values=None,
                  use_cache: Optional[bool] = None, output_hidden_states: bool = False):
    """Full `LlamaForCausalLM` call (logits, optional shifted-label loss, optional KV cache)."""
    if bidirectional and (past_key_values is not None or use_cache):
        raise ValueError('bidirectional attention: expected no KV cache (past_key_values=None, '
                         'use_cache=False), got a cache request')
    if bidirectional:
        if inputs_embeds is None:
            inputs_embeds = language_model.model.embed_tokens(input_ids)  # (B, L, D)
            input_ids = None
        attention_mask = _attention_mask(language_model, inputs_embeds, attention_mask, True)
        use_cache = False
    kwargs = {_CACHE_KWARG: past_key_values}
    return language_model(input_ids=input_ids, inputs_embeds=inputs_embeds,
                          attention_mask=attention_mask, labels=labels, use_cache=use_cache,
                          output_hidden_states=output_hidden_states, **kwargs)


def output_cache(output):
    """Return the KV cache of a transformers output (`cache` in 5.x, `past_key_values` before)."""
    if _CACHE_KWARG == 'cache':
        return output.cache
    return output.past_key_values
