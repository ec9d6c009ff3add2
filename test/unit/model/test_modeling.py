"""OpenVLA-OFT assembly: sequence layout, action slice, heads and forward modes (spec 3, 5, 6).

Expected values are re-derived here from the spec (layout arithmetic, sinusoids, the DDIM
formula, bin centers, unnormalization), using the model only for its parameterised parts.
"""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from openvla_ros.model.checkpoint import load_openvla
from openvla_ros.model.llm import run_decoder
from openvla_ros.model.testing.factory import example_inputs, tiny_checkpoint

P = 256  # patches per 224 px image (16 x 16 at patch 14)
BOS, STOP, EMPTY_PIECE, IGNORE = 1, 2, 29871, -100


@pytest.fixture(scope='module')
def l1_model():
    return load_openvla(tiny_checkpoint('l1'))


def _capture(module, store_list):
    def hook(_, args, kwargs, output):
        store_list.append({'inputs_embeds': kwargs.get('inputs_embeds'),
                           'hidden': output.last_hidden_state})
    return module.register_forward_hook(hook, with_kwargs=True)


def _embed(model, ids):
    return model.language_model.model.embed_tokens(torch.tensor([ids]))[0]  # (L, D)


def _stats(variant):
    data = json.loads((tiny_checkpoint(variant) / 'dataset_statistics.json').read_text())
    (stats,) = data.values()
    return stats['action']


def test_sequence_layout_and_the_off_by_one_action_slice(l1_model):
    model = l1_model
    inputs = example_inputs('l1')
    prompt = inputs['input_ids'][0].tolist() + [EMPTY_PIECE]
    num_prompt_tokens = len(prompt) - 1  # without BOS, with 29871
    num_patches = 2 * P + 1  # two images + proprio token
    slots = 8 * 7
    calls, head_inputs = [], []
    handles = [_capture(model.language_model.model, calls),
               model.action_head.model.register_forward_pre_hook(
                   lambda _, args: head_inputs.append(args[0]))]
    try:
        model.predict_action(**inputs)
    finally:
        for handle in handles:
            handle.remove()
    (call,) = calls
    sequence, hidden = call['inputs_embeds'][0], call['hidden'][0]
    assert sequence.shape[0] == 1 + num_patches + num_prompt_tokens + slots + 1
    with torch.no_grad():
        patches = model.projector(model.vision_backbone(inputs['pixel_values']))[0]
        proprio = model.proprio_projector(inputs['proprio'])[0]
        text = _embed(model, prompt + [STOP])
    torch.testing.assert_close(sequence[0], text[0])  # BOS
    torch.testing.assert_close(sequence[1:1 + 2 * P], patches)
    torch.testing.assert_close(sequence[1 + 2 * P], proprio)
    prompt_positions = slice(1 + num_patches, 1 + num_patches + num_prompt_tokens)
    torch.testing.assert_close(sequence[prompt_positions], text[1:-1])
    first_slot = 1 + num_patches + num_prompt_tokens
    assert torch.equal(sequence[first_slot:first_slot + slots], torch.zeros(slots, 64))
    torch.testing.assert_close(sequence[-1], text[-1])  # STOP
    # The head reads one position left of every slot: from the 29871 token (the last prompt
    # position) up to the second-to-last action slot.
    empty_piece_position = first_slot - 1
    assert empty_piece_position == num_patches + num_prompt_tokens
    expected = hidden[empty_piece_position:empty_piece_position + slots]  # (H*A, D)
    assert torch.equal(head_inputs[0].reshape(slots, -1), expected)


def test_trailing_empty_piece_is_appended_once(l1_model):
    inputs = example_inputs('l1')
    with_piece = dict(inputs, input_ids=torch.cat(
        [inputs['input_ids'], torch.tensor([[EMPTY_PIECE]])], dim=1))
    first = l1_model.predict_action(**inputs).normalized_actions
    second = l1_model.predict_action(**with_piece).normalized_actions
    assert torch.equal(first, second)


def test_action_mode_is_bidirectional_end_to_end(l1_model):
    """Two prompts that differ only in their last token: a patch position (earlier) changes."""
    inputs = example_inputs('l1')
    other = inputs['input_ids'].clone()
    other[0, -1] = 400
    calls = []
    handle = _capture(l1_model.language_model.model, calls)
    try:
        l1_model.predict_action(**inputs)
        l1_model.predict_action(**dict(inputs, input_ids=other))
    finally:
        handle.remove()
    first_patch = [call['hidden'][0, 1] for call in calls]
    assert (first_patch[0] - first_patch[1]).abs().max() > 1e-4


def test_l1_unnormalization_follows_the_upstream_formula(l1_model):
    out = l1_model.predict_action(**example_inputs('l1'), unnormalize=True)
    assert out.unnorm_key == 'libero_tiny_no_noops'
    stats = _stats('l1')
    normalized = out.normalized_actions.numpy()
    assert normalized.dtype == np.float32 and normalized.shape == (8, 7)
    low, high = np.array(stats['q01']), np.array(stats['q99'])  # BOUNDS_Q99
    expected = 0.5 * (normalized + np.float32(1)) * (high - low + 1e-8) + low
    expected = np.where(stats['mask'], expected, normalized)  # gripper stays normalized
    assert out.actions.dtype == np.float64
    np.testing.assert_array_equal(out.actions, expected)
    assert out.actions[:, 6].tolist() == normalized[:, 6].astype(np.float64).tolist()


def test_film_language_embedding_is_the_mean_over_non_action_positions():
    model = load_openvla(tiny_checkpoint('film'))
    inputs = example_inputs('film')
    seen = []
    handle = model.vision_backbone.register_forward_pre_hook(
        lambda _, args: seen.append(args[1]))
    try:
        model.predict_action(**inputs)
    finally:
        handle.remove()
    prompt = inputs['input_ids'][0].tolist() + [EMPTY_PIECE]
    with torch.no_grad():
        expected = _embed(model, prompt + [STOP]).mean(dim=0)  # BOS, prompt, 29871, STOP
    torch.testing.assert_close(seen[0][0], expected)


def _cosine_alphas_cumprod(num_steps=50):
    def alpha_bar(u):
        return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
    betas = [min(1 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps), 0.999)
             for i in range(num_steps)]
    return np.cumprod(1.0 - np.array(betas, dtype=np.float32))


def test_diffusion_matches_an_independent_ddim_loop():
    model = load_openvla(tiny_checkpoint('diffusion'), num_diffusion_steps=10)
    inputs = example_inputs('diffusion')
    noise = torch.randn(1, 8, 7, generator=torch.Generator().manual_seed(7))
    out = model.predict_action(**inputs, noise=noise)

    timesteps = list(range(45, -1, -5))  # leading spacing, stride 50 // 10
    assert model.action_head.timesteps.tolist() == timesteps
    alphas = _cosine_alphas_cumprod()
    assert alphas[0] == pytest.approx(0.99825, abs=1e-5)
    prompt = inputs['input_ids'][0].tolist() + [EMPTY_PIECE]
    num_patches = 2 * P + 2  # two images + proprio + timestep token
    read = num_patches + len(prompt) - 1
    half = 32
    frequencies = torch.exp(-math.log(10000.0) * torch.arange(half) / (half - 1))
    x = noise
    with torch.no_grad():
        text = _embed(model, prompt + [STOP])
        patches = model.projector(model.vision_backbone(inputs['pixel_values']))
        proprio = model.proprio_projector(inputs['proprio'])[:, None]
        for t in timesteps:
            time_token = torch.cat([torch.sin(t * frequencies), torch.cos(t * frequencies)])
            actions = model.noisy_action_projector(x.reshape(1, 56, 1))
            sequence = torch.cat([text[None, :1], patches, proprio, time_token[None, None],
                                  text[None, 1:-1], actions, text[None, -1:]], dim=1)
            hidden = run_decoder(model.language_model, sequence, bidirectional=True)
            eps = model.action_head.predict_noise(hidden.last_hidden_state[:, read:read + 56])
            alpha, alpha_prev = alphas[t], (alphas[t - 5] if t - 5 >= 0 else 1.0)
            x0 = ((x - math.sqrt(1 - alpha) * eps) / math.sqrt(alpha)).clamp(-1, 1)
            x = math.sqrt(alpha_prev) * x0 + math.sqrt(1 - alpha_prev) * eps
    torch.testing.assert_close(out.normalized_actions, x[0], atol=2e-5, rtol=1e-4)


def test_diffusion_noise_sources_are_reproducible():
    model = load_openvla(tiny_checkpoint('diffusion'), num_diffusion_steps=2)
    inputs = example_inputs('diffusion')

    def run(**kwargs):
        return model.predict_action(**inputs, **kwargs).normalized_actions

    seeded = run(generator=torch.Generator().manual_seed(3))
    assert torch.equal(seeded, run(generator=torch.Generator().manual_seed(3)))
    injected = torch.randn(1, 8, 7, generator=torch.Generator().manual_seed(3))
    assert torch.equal(seeded, run(noise=injected))
    assert not torch.equal(seeded, run(generator=torch.Generator().manual_seed(4)))
    torch.manual_seed(11)
    first = run()
    torch.manual_seed(11)
    assert torch.equal(first, run())  # global RNG, as upstream


def test_discrete_tokens_decode_to_bin_centers():
    model = load_openvla(tiny_checkpoint('discrete'))
    inputs = example_inputs('discrete')
    calls = []
    handle = _capture(model.language_model.model, calls)
    try:
        out = model.predict_action(**inputs, unnormalize=True)
    finally:
        handle.remove()
    read = 2 * P + 1 + len(inputs['input_ids'][0])  # patches + proprio + prompt with 29871
    with torch.no_grad():
        logits = model.language_model.lm_head(calls[0]['hidden'][0, read:read + 56])
    tokens = logits.argmax(-1).numpy()
    assert np.array_equal(out.action_token_ids.numpy(), tokens)
    assert (tokens >= 31744).mean() > 0.5  # the factory makes action tokens likely
    bins = np.linspace(-1, 1, 256)
    centers = (bins[:-1] + bins[1:]) / 2
    expected = centers[np.clip(32000 - tokens - 1, 0, 254)].reshape(8, 7)
    assert out.normalized_actions.dtype == torch.float64
    np.testing.assert_array_equal(out.normalized_actions.numpy(), expected)
    stats = _stats('discrete')
    low, high = np.array(stats['q01']), np.array(stats['q99'])
    unnormalized = np.where(stats['mask'], 0.5 * (expected + 1) * (high - low + 1e-8) + low,
                            expected)
    np.testing.assert_allclose(out.actions, unnormalized, rtol=0, atol=1e-15)


def _training_batch(model):
    inputs = example_inputs('l1')
    generator = torch.Generator().manual_seed(5)
    actions = torch.randint(31744, 32000, (1, 56), generator=generator)
    prompt = torch.cat([inputs['input_ids'], torch.tensor([[EMPTY_PIECE]])], dim=1)
    input_ids = torch.cat([prompt, actions, torch.tensor([[STOP]])], dim=1)
    labels = input_ids.clone()
    labels[:, :prompt.shape[1]] = IGNORE
    return input_ids, labels, inputs


def test_multimodal_forward_loss_and_action_masking(l1_model):
    model = l1_model
    input_ids, labels, inputs = _training_batch(model)
    with torch.no_grad():
        out = model(input_ids=input_ids, pixel_values=inputs['pixel_values'], labels=labels,
                    proprio=inputs['proprio'])
    num_inserted = 2 * P + 1
    assert out.projector_features.shape == (1, num_inserted, 64)
    assert out.logits.shape == (1, input_ids.shape[1] + num_inserted, 32064)
    full_labels = torch.cat([labels[:, :1], torch.full((1, num_inserted), IGNORE),
                             labels[:, 1:]], dim=1)
    expected = F.cross_entropy(out.logits[0, :-1], full_labels[0, 1:], ignore_index=IGNORE)
    torch.testing.assert_close(out.loss, expected)
    other_actions = input_ids.clone()
    other_actions[labels > 31743] = 31800  # action embeddings are zeroed: ids do not matter
    with torch.no_grad():
        again = model(input_ids=other_actions, pixel_values=inputs['pixel_values'],
                      labels=labels, proprio=inputs['proprio'])
    assert torch.equal(again.logits, out.logits)


def test_language_only_and_cached_generation_are_causal(l1_model):
    model = l1_model
    inputs = example_inputs('l1')
    ids = inputs['input_ids']
    with torch.no_grad():
        language = model(input_ids=ids).logits
        reference = model.language_model(input_ids=ids).logits
        torch.testing.assert_close(language, reference)
        prefill = model(input_ids=ids, pixel_values=inputs['pixel_values'],
                        proprio=inputs['proprio'], use_cache=True)
        generated, cache, step_logits = [], prefill.past_key_values, prefill.logits[:, -1]
        for _ in range(3):
            token = step_logits.argmax(-1, keepdim=True)  # (1, 1)
            generated.append(token)
            step = model(input_ids=token, past_key_values=cache, use_cache=True)
            cache, step_logits = step.past_key_values, step.logits[:, -1]
        full_ids = torch.cat([ids] + generated, dim=1)
        full = model(input_ids=full_ids, pixel_values=inputs['pixel_values'],
                     proprio=inputs['proprio'], bidirectional=False).logits
    torch.testing.assert_close(step_logits, full[:, -1], atol=1e-5, rtol=1e-4)


def test_gradient_checkpointing_gives_the_same_gradients():
    grads = []
    for checkpointing in (False, True):
        model = load_openvla(tiny_checkpoint('l1')).train()
        if checkpointing:
            model.gradient_checkpointing_enable()
        input_ids, labels, inputs = _training_batch(model)
        out = model(input_ids=input_ids, pixel_values=inputs['pixel_values'], labels=labels,
                    proprio=inputs['proprio'])
        out.loss.backward()
        grads.append(model.language_model.model.layers[0].self_attn.q_proj.weight.grad)
    assert grads[0].abs().max() > 0
    torch.testing.assert_close(grads[1], grads[0], atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize('change, message', [
    ({'input_ids': torch.tensor([[1, 5], [1, 6]])}, r'shape \(1, L\) \(batch size 1'),
    ({'input_ids': torch.tensor([[5, 6]])}, r'expected BOS \(1\) first, got 5'),
    ({'pixel_values': torch.zeros(1, 6, 224, 224)}, r'expected shape \(1, 12, 224, 224\)'),
    ({'proprio': None}, r'proprio: expected shape \(1, 8\)'),
    ({'proprio': torch.zeros(1, 7)}, r'proprio: expected shape \(1, 8\)'),
    ({'noise': torch.zeros(1, 8, 7)}, 'noise: expected None for a l1 head'),
])
def test_predict_action_rejects_bad_inputs(l1_model, change, message):
    inputs = dict(example_inputs('l1'), **change)
    with pytest.raises(ValueError, match=message):
        l1_model.predict_action(**inputs)


def test_unnormalize_with_an_unknown_key_lists_the_available_ones(l1_model):
    with pytest.raises(ValueError, match=r"one of \['libero_tiny_no_noops'\], got 'bridge'"):
        l1_model.predict_action(**example_inputs('l1'), unnormalize=True, unnorm_key='bridge')
