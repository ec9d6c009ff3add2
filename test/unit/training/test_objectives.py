"""training/objectives.py: batched OFT losses against hand computation and the inference path."""

import math
import re

import pytest
import torch

from openvla_ros.model.checkpoint import load_openvla
from openvla_ros.model.testing.factory import example_inputs, tiny_checkpoint
from openvla_ros.training.objectives import (
    action_hidden_states, action_loss, l1_loss, mse_loss, pad_prompts, predict_chunks,
    sample_noisy_actions)

EMPTY_PIECE, STOP, PLACEHOLDER = 29871, 2, 1
H, A = 8, 7
# The ViTs' features come from the penultimate block (of 3): the last block, final norm and
# SigLIP's attention-pool head take no part in the OFT forward.
UNUSED_VIT_PARTS = re.compile(r'vision_backbone\.\w+\.(blocks\.2\.|attn_pool\.|norm\.)')


@pytest.fixture(scope='module')
def l1_model():
    return load_openvla(tiny_checkpoint('l1'))


@pytest.fixture(scope='module')
def diffusion_model():
    return load_openvla(tiny_checkpoint('diffusion'))


def _batch(rows=3, seed=0):
    """Rows with prompts of different lengths, random images / proprio / actions."""
    generator = torch.Generator().manual_seed(seed)
    base = example_inputs('l1')['input_ids'][0].tolist()
    prompts = [base[:len(base) - 3 * row] for row in range(rows)]
    prompt_ids, lengths = pad_prompts(prompts, 32000)
    return {'prompt_ids': prompt_ids, 'prompt_lengths': lengths,
            'pixel_values': torch.randn(rows, 12, 224, 224, generator=generator),
            'proprio': torch.rand(rows, 8, generator=generator) * 2 - 1,
            'actions': torch.rand(rows, H, A, generator=generator) * 2 - 1}, prompts


def test_l1_and_mse_match_hand_computation():
    predicted = torch.tensor([[[0.5, -1.0], [0.0, 2.0]]])
    target = torch.tensor([[[1.0, -1.0], [-0.5, 0.0]]])
    # |diffs| = 0.5, 0, 0.5, 2 -> mean 0.75; squares 0.25, 0, 0.25, 4 -> mean 1.125
    assert float(l1_loss(predicted, target)) == pytest.approx(0.75)
    assert float(mse_loss(predicted, target)) == pytest.approx(1.125)


def test_prompts_end_with_the_empty_piece_once_and_pad_right():
    ids, lengths = pad_prompts([[1, 5, 6], [1, 7, EMPTY_PIECE]], pad_token_id=32000)
    assert ids.tolist() == [[1, 5, 6, EMPTY_PIECE], [1, 7, EMPTY_PIECE, 32000]]
    assert lengths.tolist() == [4, 3]


def test_batched_l1_path_equals_predict_action_row_by_row(l1_model):
    batch, prompts = _batch()
    with torch.no_grad():
        batched = predict_chunks(l1_model, batch['prompt_ids'], batch['prompt_lengths'],
                                 batch['pixel_values'], batch['proprio'])  # (3, H, A)
    assert batched.shape == (3, H, A)
    for row, prompt in enumerate(prompts):
        single = l1_model.predict_action(
            torch.tensor([prompt]), batch['pixel_values'][row:row + 1],
            proprio=batch['proprio'][row:row + 1]).normalized_actions
        torch.testing.assert_close(batched[row], single, atol=2e-5, rtol=1e-4)


def test_batched_l1_loss_is_the_mean_absolute_error_of_predict_action(l1_model):
    batch, prompts = _batch(rows=2, seed=1)
    loss = action_loss(l1_model, batch, 'l1')
    singles = torch.stack([l1_model.predict_action(
        torch.tensor([prompt]), batch['pixel_values'][row:row + 1],
        proprio=batch['proprio'][row:row + 1]).normalized_actions
        for row, prompt in enumerate(prompts)])
    expected = (singles - batch['actions']).abs().mean()
    assert loss.requires_grad
    assert float(loss.detach()) == pytest.approx(float(expected), abs=2e-5)


def _upstream_forward_hidden(model, prompt, pixel_values, proprio, noisy=None, timestep=None):
    """Read the action hidden states of the seed model's `forward(labels=...)` as upstream.

    Upstream reads `hidden_states[-1][:, num_patches:-1]` at label positions > 31743 (shifted).
    """
    ids = torch.tensor([prompt + [PLACEHOLDER] * (H * A) + [STOP]])
    labels = torch.full_like(ids, -100)
    labels[0, len(prompt):len(prompt) + H * A] = 31800
    out = model(input_ids=ids, pixel_values=pixel_values, labels=labels, proprio=proprio,
                output_hidden_states=True, noisy_actions=noisy,
                diffusion_timestep_embeddings=timestep)
    text_hidden = out.hidden_states[-1][:, model.num_patches:-1]
    mask = labels[:, 1:] > 31743
    return text_hidden[mask].reshape(1, H * A, -1)


def test_l1_hidden_states_equal_upstreams_training_forward(l1_model):
    batch, prompts = _batch(rows=2, seed=2)
    with torch.no_grad():
        batched = action_hidden_states(l1_model, batch['prompt_ids'], batch['prompt_lengths'],
                                       batch['pixel_values'], batch['proprio'])
        for row, prompt in enumerate(prompts):
            reference = _upstream_forward_hidden(
                l1_model, prompt + [EMPTY_PIECE], batch['pixel_values'][row:row + 1],
                batch['proprio'][row:row + 1])
            torch.testing.assert_close(batched[row:row + 1], reference, atol=2e-5, rtol=1e-4)


def test_diffusion_noising_and_loss_match_hand_computation(diffusion_model):
    model = diffusion_model
    batch, prompts = _batch(rows=2, seed=3)
    actions = batch['actions']
    noise, noisy, embeddings, timesteps = sample_noisy_actions(
        model, actions, torch.Generator().manual_seed(7))
    draw = torch.Generator().manual_seed(7)
    assert torch.equal(noise, torch.randn(actions.shape, generator=draw))
    assert torch.equal(timesteps, torch.randint(0, 50, (2,), generator=draw))
    # DDPM forward process with the cosine schedule: alpha_bar(t) = f(t) / f(0) products.
    for row, t in enumerate(timesteps.tolist()):
        alpha_bar = 1.0
        for i in range(t + 1):
            f = [math.cos((s / 50 + 0.008) / 1.008 * math.pi / 2) ** 2 for s in (i, i + 1)]
            alpha_bar *= 1 - min(1 - f[1] / f[0], 0.999)
        expected = math.sqrt(alpha_bar) * actions[row] + math.sqrt(1 - alpha_bar) * noise[row]
        torch.testing.assert_close(noisy[row], expected, atol=1e-5, rtol=1e-5)
        half = 32  # llm_dim 64: [sin(t f_k), cos(t f_k)], f_k = 10000^(-k / (half - 1))
        freqs = torch.tensor([math.exp(-math.log(10000) * k / (half - 1)) for k in range(half)])
        expected_embedding = torch.cat([torch.sin(t * freqs), torch.cos(t * freqs)])
        torch.testing.assert_close(embeddings[row], expected_embedding, atol=1e-5, rtol=1e-5)
    # The loss: MSE between the noise predicted from upstream's training forward and the noise.
    loss = action_loss(model, batch, 'diffusion', torch.Generator().manual_seed(7))
    with torch.no_grad():
        predicted = []
        for row, prompt in enumerate(prompts):
            hidden = _upstream_forward_hidden(
                model, prompt + [EMPTY_PIECE], batch['pixel_values'][row:row + 1],
                batch['proprio'][row:row + 1], noisy=noisy[row:row + 1],
                timestep=embeddings[row:row + 1])
            predicted.append(model.action_head.predict_noise(hidden)[0])
    expected_loss = ((torch.stack(predicted) - noise) ** 2).mean()
    assert float(loss.detach()) == pytest.approx(float(expected_loss), abs=2e-5)


def test_film_batched_path_equals_predict_action_padding_left_out():
    """Average BOS, prompt and STOP for FiLM as predict_action does; padding is left out."""
    model = load_openvla(tiny_checkpoint('film'))
    batch, prompts = _batch(rows=2, seed=4)  # prompts of different lengths
    with torch.no_grad():
        batched = predict_chunks(model, batch['prompt_ids'], batch['prompt_lengths'],
                                 batch['pixel_values'], batch['proprio'])
    for row, prompt in enumerate(prompts):
        single = model.predict_action(torch.tensor([prompt]),
                                      batch['pixel_values'][row:row + 1],
                                      proprio=batch['proprio'][row:row + 1]).normalized_actions
        torch.testing.assert_close(batched[row], single, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize('variant, objective, modules', [
    ('l1', 'l1', ('vision_backbone', 'projector', 'language_model.model.layers',
                  'language_model.model.embed_tokens', 'action_head', 'proprio_projector')),
    ('diffusion', 'diffusion', ('vision_backbone', 'projector', 'language_model.model.layers',
                                'action_head', 'proprio_projector', 'noisy_action_projector')),
])
def test_gradients_reach_every_trained_module(variant, objective, modules):
    model = load_openvla(tiny_checkpoint(variant)).train()
    batch, _ = _batch(rows=2, seed=5)
    action_loss(model, batch, objective, torch.Generator().manual_seed(0)).backward()
    for prefix in modules:
        grads = [p.grad for name, p in model.named_parameters()
                 if name.startswith(prefix) and not UNUSED_VIT_PARTS.match(name)]
        assert grads and all(g is not None for g in grads), prefix
        assert sum(float(g.abs().sum()) for g in grads) > 0, prefix
    assert model.language_model.lm_head.weight.grad is None  # the LM head is not trained


def test_objective_and_head_must_agree(l1_model, diffusion_model):
    batch, _ = _batch(rows=1)
    with pytest.raises(ValueError, match='expected a diffusion head'):
        action_loss(l1_model, batch, 'diffusion')
    with pytest.raises(ValueError, match='expected an L1 head'):
        action_loss(diffusion_model, batch, 'l1')
    with pytest.raises(ValueError, match="expected 'l1', 'mse' or 'diffusion'"):
        action_loss(l1_model, batch, 'huber')
