"""Llama on stock transformers: bidirectional vs causal attention (spec 3.3), cache, recompute."""

import math

import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig

from openvla_ros.model.llm import (
    build_language_model, output_cache, reset_rotary_embedding, run_causal_lm, run_decoder,
    set_activation_checkpointing)

HIDDEN, HEADS, LAYERS, VOCAB = 32, 4, 2, 97


def _llm(attn_implementation='sdpa', seed=0):
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=64,
                         num_hidden_layers=LAYERS, num_attention_heads=HEADS, pad_token_id=0)
    torch.manual_seed(seed)
    model = build_language_model(config, attn_implementation).eval()
    with torch.no_grad():  # non-trivial norm weights so a wrong eps/weight use shows
        for layer in model.model.layers:
            layer.input_layernorm.weight.uniform_(0.5, 1.5)
            layer.post_attention_layernorm.weight.uniform_(0.5, 1.5)
    return model


def _reference_decoder(model, x, causal):
    """Run Llama-2 as written in the spec, independently of transformers.

    RMSNorm (eps 1e-6, fp32), RoPE half-rotation with inv_freq = 10000^(-2i/d) over positions
    0..L-1, plain softmax attention, SiLU-gated MLP, final norm.
    """
    batch, length, _ = x.shape
    head_dim = HIDDEN // HEADS
    inv_freq = 1.0 / 10000 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.arange(length, dtype=torch.float32)[:, None] * inv_freq[None]  # (L, d/2)
    cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()

    def rms(h, weight):
        return weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6))

    def rotate(t):
        first, second = t[..., :head_dim // 2], t[..., head_dim // 2:]
        return t * cos + torch.cat([-second, first], -1) * sin

    for layer in model.model.layers:
        attn = layer.self_attn
        h = rms(x, layer.input_layernorm.weight)
        q, k, v = (proj(h).view(batch, length, HEADS, head_dim).transpose(1, 2)
                   for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
        scores = rotate(q) @ rotate(k).transpose(-1, -2) / math.sqrt(head_dim)
        if causal:
            scores = scores.masked_fill(torch.ones(length, length).triu(1).bool(), -math.inf)
        out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, length, HIDDEN)
        x = x + attn.o_proj(out)
        h = rms(x, layer.post_attention_layernorm.weight)
        x = x + layer.mlp.down_proj(F.silu(layer.mlp.gate_proj(h)) * layer.mlp.up_proj(h))
    return rms(x, model.model.norm.weight)


@pytest.mark.parametrize('attn_implementation', ['sdpa', 'eager'])
@pytest.mark.parametrize('bidirectional', [True, False])
def test_decoder_matches_an_independent_llama(attn_implementation, bidirectional):
    model = _llm(attn_implementation)
    x = torch.randn(2, 9, HIDDEN, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = run_decoder(model, x, bidirectional=bidirectional).last_hidden_state
        reference = _reference_decoder(model, x, causal=not bidirectional)
    torch.testing.assert_close(ours, reference, atol=2e-5, rtol=1e-4)


def test_bidirectional_attention_lets_a_later_token_change_an_earlier_position():
    model = _llm()
    x = torch.randn(1, 12, HIDDEN, generator=torch.Generator().manual_seed(2))
    changed = x.clone()
    changed[:, -1] += 1.0
    with torch.no_grad():
        runs = {mode: [run_decoder(model, inputs, bidirectional=mode).last_hidden_state
                       for inputs in (x, changed)] for mode in (True, False)}
    bidirectional, causal = runs[True], runs[False]
    assert (bidirectional[0][:, 0] - bidirectional[1][:, 0]).abs().max() > 1e-3
    assert torch.equal(causal[0][:, :-1], causal[1][:, :-1])  # the past never sees the future


def test_bidirectional_padding_hides_only_the_padded_keys():
    model = _llm()
    x = torch.randn(1, 10, HIDDEN, generator=torch.Generator().manual_seed(3))
    changed = x.clone()
    changed[:, -2:] = torch.randn(1, 2, HIDDEN)
    padding = torch.ones(1, 10, dtype=torch.long)
    padding[:, -2:] = 0
    with torch.no_grad():
        first = run_decoder(model, x, padding, bidirectional=True).last_hidden_state
        second = run_decoder(model, changed, padding, bidirectional=True).last_hidden_state
        unpadded = _reference_decoder(model, x[:, :8], causal=False)
    torch.testing.assert_close(first[:, :8], second[:, :8], atol=1e-6, rtol=0)
    torch.testing.assert_close(first[:, :8], unpadded, atol=2e-5, rtol=1e-4)


def test_language_mode_is_causal_and_the_kv_cache_reproduces_it():
    model = _llm()
    ids = torch.tensor([[5, 17, 42, 8, 66, 23, 90]])
    with torch.no_grad():
        full = run_causal_lm(model, bidirectional=False, input_ids=ids).logits
        prefix = run_causal_lm(model, bidirectional=False, input_ids=ids[:, :4], use_cache=True)
        cache = output_cache(prefix)
        steps = [prefix.logits[:, -1]]
        for position in range(4, 7):
            step = run_causal_lm(model, bidirectional=False,
                                 input_ids=ids[:, position:position + 1],
                                 past_key_values=cache, use_cache=True)
            cache = output_cache(step)
            steps.append(step.logits[:, -1])
    torch.testing.assert_close(torch.stack(steps, 1), full[:, 3:], atol=1e-5, rtol=1e-4)


def test_loss_is_shifted_cross_entropy_with_ignore_index():
    model = _llm()
    ids = torch.tensor([[5, 17, 42, 8, 66]])
    labels = torch.tensor([[-100, 17, -100, 8, 66]])
    with torch.no_grad():
        out = run_causal_lm(model, bidirectional=True, input_ids=ids, labels=labels)
    expected = F.cross_entropy(out.logits[0, :-1], labels[0, 1:], ignore_index=-100)
    torch.testing.assert_close(out.loss, expected)


def test_bidirectional_refuses_a_kv_cache_and_4d_masks():
    model = _llm()
    x = torch.randn(1, 4, HIDDEN)
    with pytest.raises(ValueError, match='expected no KV cache'):
        run_causal_lm(model, bidirectional=True, inputs_embeds=x, use_cache=True)
    with pytest.raises(ValueError, match='expected a 2-D padding mask'):
        run_decoder(model, x, torch.ones(1, 1, 4, 4, dtype=torch.bool), bidirectional=True)
    with pytest.raises(ValueError, match="expected one of .* got 'flash_attention_2'"):
        _llm('flash_attention_2')


def test_gradient_checkpointing_recomputes_with_the_same_bidirectional_mask():
    grads = []
    for checkpointing in (False, True):
        model = _llm().train()
        if checkpointing:
            set_activation_checkpointing(model, True)
            assert model.model.layers[0].gradient_checkpointing
        x = torch.randn(1, 8, HIDDEN, generator=torch.Generator().manual_seed(4))
        out = run_decoder(model, x, bidirectional=True).last_hidden_state
        out[:, 0].square().sum().backward()  # position 0 depends on later ones only if bidir.
        grads.append(model.model.layers[0].self_attn.k_proj.weight.grad.clone())
    assert grads[0].abs().max() > 0
    torch.testing.assert_close(grads[1], grads[0], atol=1e-6, rtol=1e-5)


def test_reset_rotary_embedding_after_a_meta_build():
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=HEADS)
    with torch.device('meta'):
        model = build_language_model(config)
    assert model.model.rotary_emb.inv_freq.is_meta
    reset_rotary_embedding(model, 'cpu')
    head_dim = HIDDEN // HEADS
    expected = 10000.0 ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    inv_freq = model.model.rotary_emb.inv_freq
    assert inv_freq.dtype == torch.float32 and inv_freq.device.type == 'cpu'
    torch.testing.assert_close(inv_freq.double(), expected, atol=1e-7, rtol=1e-6)
