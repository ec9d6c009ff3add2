"""OpenVLAPolicy on every tiny checkpoint: shapes, unnormalization, validation, consistency."""

import dataclasses
import json
import pathlib

import numpy as np
import pytest
import torch

from openvla_ros.model.testing.factory import tiny_checkpoint, TINY_VARIANTS, VARIANTS
from openvla_ros.policy import NonFiniteActionError, OpenVLAPolicy, PolicyInputError
from openvla_ros.processing import ImagePreprocessor, PromptTokenizer

INSTRUCTION = 'Put the Cream Cheese in the bowl'


def _policy(variant, **kwargs):
    return OpenVLAPolicy.from_pretrained(tiny_checkpoint(variant), device='cpu',
                                         **{**VARIANTS[variant].policy_kwargs, **kwargs})


@pytest.fixture(scope='module')
def l1_policy():
    return _policy('l1')


def _inputs(spec, seed=0, size=(256, 256)):
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(spec.num_images)]
    proprio = None
    if spec.proprio_dim is not None:
        proprio = rng.uniform(-0.5, 0.5, spec.proprio_dim)
    return images, proprio


def _expected_unnormalized(checkpoint, unnorm_key, normalized, norm_type):
    """Spec section 6.4 re-derived from the JSON file, independently of normalization.py."""
    stats = json.loads(pathlib.Path(checkpoint, 'dataset_statistics.json').read_text())
    action = stats[unnorm_key]['action']
    high_key, low_key = ('q99', 'q01') if norm_type == 'bounds_q99' else ('max', 'min')
    high, low = np.array(action[high_key]), np.array(action[low_key])
    mask = np.array(action.get('mask', [True] * len(high)))
    return np.where(mask, 0.5 * (normalized + 1) * (high - low + 1e-8) + low, normalized)


@pytest.mark.parametrize('variant', TINY_VARIANTS)
def test_every_variant_predicts_an_unnormalized_chunk(variant):
    policy = _policy(variant, warmup=False)
    spec = policy.spec
    images, proprio = _inputs(spec)
    chunk = policy.predict(images, INSTRUCTION, proprio=proprio)
    assert chunk.actions.shape == (spec.chunk_len, spec.action_dim)
    assert chunk.actions.dtype == np.float64 and chunk.normalized_actions.dtype == np.float64
    assert np.all(np.isfinite(chunk.actions))
    # rtol: upstream computes 0.5 * (a + 1) in the model's float32 before the float64 stats
    np.testing.assert_allclose(
        chunk.actions, _expected_unnormalized(spec.checkpoint_dir, spec.unnorm_key,
                                              chunk.normalized_actions,
                                              spec.normalization_type), rtol=1e-6, atol=1e-7)
    timings = chunk.timings
    assert set(timings) == {'preprocess', 'vision', 'llm', 'head', 'model', 'total'}
    stages = timings['vision'] + timings['llm'] + timings['head']
    assert 0 < stages <= timings['model'] <= timings['total']
    assert timings['preprocess'] + timings['model'] <= timings['total']


def test_spec_describes_the_checkpoint():
    aloha = _policy('aloha', warmup=False).spec
    assert (aloha.chunk_len, aloha.action_dim, aloha.proprio_dim, aloha.num_images) == \
        (25, 14, 14, 3)
    assert aloha.uses_film and aloha.normalization_type == 'bounds'
    libero = _policy('l1', warmup=False).spec
    assert (libero.chunk_len, libero.action_dim, libero.proprio_dim) == (8, 7, 8)
    assert libero.normalization_type == 'bounds_q99' and libero.head_type == 'l1'
    assert libero.action_mask == (True,) * 6 + (False,)
    assert libero.device == 'cpu' and libero.dtype == 'float32'
    stats = json.loads((tiny_checkpoint('l1') / 'dataset_statistics.json').read_text())
    proprio = stats[libero.unnorm_key]['proprio']
    assert libero.proprio_min == tuple(proprio['min'])  # the EEF-pose sign rule's range
    assert libero.proprio_max == tuple(proprio['max'])
    assert _policy('single_image', warmup=False).spec.proprio_min is None


def test_policy_equals_the_model_driven_by_hand(l1_policy):
    """The policy is exactly: preprocess, tokenize, normalize proprio, model, unnormalize."""
    from openvla_ros.model.checkpoint import load_openvla
    from openvla_ros.normalization import normalize_proprio

    checkpoint = tiny_checkpoint('l1')
    images, proprio = _inputs(l1_policy.spec, seed=3)
    model = load_openvla(checkpoint, device='cpu')
    stats = model.norm_stats[l1_policy.spec.unnorm_key]
    pixels = ImagePreprocessor.from_checkpoint(checkpoint)(images)
    ids = torch.tensor([PromptTokenizer.from_checkpoint(checkpoint).encode(INSTRUCTION)])
    state = torch.tensor(normalize_proprio(proprio, stats.proprio, 'bounds_q99'),
                         dtype=torch.float32)[None]
    expected = model.predict_action(input_ids=ids, pixel_values=pixels, proprio=state)
    chunk = l1_policy.predict(images, INSTRUCTION, proprio=proprio)
    np.testing.assert_array_equal(chunk.normalized_actions,
                                  expected.normalized_actions.numpy().astype(np.float64))


def test_diffusion_noise_is_injectable():
    policy = _policy('diffusion', warmup=False)
    spec = policy.spec
    images, proprio = _inputs(spec)
    noise = np.random.default_rng(1).standard_normal((spec.chunk_len, spec.action_dim))
    first = policy.predict(images, INSTRUCTION, proprio=proprio, noise=noise)
    again = policy.predict(images, INSTRUCTION, proprio=proprio, noise=noise)
    other = policy.predict(images, INSTRUCTION, proprio=proprio, noise=noise[::-1].copy())
    np.testing.assert_array_equal(first.actions, again.actions)
    assert not np.allclose(first.actions, other.actions)
    assert spec.num_diffusion_steps == 50


def test_instruction_and_images_change_the_actions(l1_policy):
    images, proprio = _inputs(l1_policy.spec)
    base = l1_policy.predict(images, 'open the drawer', proprio=proprio).actions
    assert not np.allclose(base, l1_policy.predict(images, 'close the drawer',
                                                   proprio=proprio).actions)
    swapped = [images[1], images[0]]
    assert not np.allclose(base, l1_policy.predict(swapped, 'open the drawer',
                                                   proprio=proprio).actions)


@pytest.mark.parametrize('mutate, message', [
    (lambda i, p: (i[:1], p), 'expected 2 image(s)'),
    (lambda i, p: ([i[0].astype(np.float32), i[1]], p), 'expected uint8'),
    (lambda i, p: ([i[0][..., :1], i[1]], p), 'HxWx3'),
    (lambda i, p: (i, p[:3]), 'proprio: expected a numeric array of shape (8,)'),
    (lambda i, p: (i, np.where(np.arange(8) == 2, np.nan, p)), 'proprio: expected finite'),
    (lambda i, p: (i, None), 'proprio: expected an array of shape (8,), got None'),
])
def test_invalid_inputs_raise_clear_errors(l1_policy, mutate, message):
    images, proprio = mutate(*_inputs(l1_policy.spec))
    with pytest.raises(PolicyInputError, match=message.replace('(', r'\(').replace(')', r'\)')):
        l1_policy.predict(images, INSTRUCTION, proprio=proprio)


def test_invalid_instruction_and_noise_raise_clear_errors(l1_policy):
    images, proprio = _inputs(l1_policy.spec)
    for bad in ('', '   ', None, 'x' * 1001):
        with pytest.raises(PolicyInputError, match='instruction'):
            l1_policy.predict(images, bad, proprio=proprio)
    with pytest.raises(PolicyInputError, match='only used by diffusion'):
        l1_policy.predict(images, INSTRUCTION, proprio=proprio, noise=np.zeros((8, 7)))
    no_proprio = _policy('single_image', warmup=False)
    with pytest.raises(PolicyInputError, match='takes no proprio'):
        no_proprio.predict(images[:1], INSTRUCTION, proprio=np.zeros(8))


def test_non_finite_model_output_raises(l1_policy, monkeypatch):
    images, proprio = _inputs(l1_policy.spec)
    real = l1_policy._model.predict_action

    def poisoned(**kwargs):
        out = real(**kwargs)
        actions = out.normalized_actions.clone()
        actions[0, 0] = float('nan')
        return dataclasses.replace(out, normalized_actions=actions)

    monkeypatch.setattr(l1_policy._model, 'predict_action', poisoned)
    with pytest.raises(NonFiniteActionError, match='non-finite'):
        l1_policy.predict(images, INSTRUCTION, proprio=proprio)


def test_cuda_request_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip('CUDA is available here')
    with pytest.raises(RuntimeError, match="CUDA is not available.*device='cpu'"):
        OpenVLAPolicy.from_pretrained(tiny_checkpoint('l1'), device='cuda')


@pytest.mark.slow
def test_compiled_llm_gives_the_eager_numbers(l1_policy):
    compiled = _policy('l1', compile_llm=True)  # compiles during the warm-up (~50 s on 2 CPUs)
    images, proprio = _inputs(l1_policy.spec, seed=7)
    for instruction in ('open the drawer', 'put the black bowl on the plate'):  # two lengths
        np.testing.assert_allclose(
            compiled.predict(images, instruction, proprio=proprio).normalized_actions,
            l1_policy.predict(images, instruction, proprio=proprio).normalized_actions,
            rtol=0, atol=1e-4)
