"""Bucketed static-shape prediction (the CUDA-graph path, run eagerly on the CPU).

Padding a prompt to a bucket must not change the actions: fp32 outputs equal the unpadded
model's to 1e-5 for every head and input variant, and the checks fail if the pads are not
masked or the real tokens lose their RoPE positions (negative controls below).
"""

import pytest
import torch
from transformers.masking_utils import create_bidirectional_mask

from openvla_ros.model import static_inference
from openvla_ros.model.checkpoint import load_openvla
from openvla_ros.model.static_inference import (
    bidirectional_padding_mask, ddim_coefficients, ddim_step, StaticActionPredictor)
from openvla_ros.model.testing.factory import (
    example_inputs, EXAMPLE_PROMPT_IDS, tiny_checkpoint, VARIANTS)

ATOL = 1e-5  # fp32: only the reduction order differs (masked keys, masked FiLM mean)
BUCKETS = (8, 17, 24, 40)
# Prompt lengths P (after BOS, with the appended 29871) and their pads: 18 -> bucket 24 (6 pads),
# 17 -> 17 (none), 4 -> 8 (4); more below (18 in bucket 64, 4 in bucket 40).
PROMPTS = {'example': list(EXAMPLE_PROMPT_IDS),          # P = 17 + 1 = 18 -> bucket 24
           'exact': list(EXAMPLE_PROMPT_IDS[:17]),       # P = 16 + 1 = 17 -> bucket 17
           'short': list(EXAMPLE_PROMPT_IDS[:4])}        # P = 3 + 1 = 4 -> bucket 8

# End to end, diffusion runs 3 DDIM steps: the first steps divide the noise prediction by
# sqrt(alpha_prod) ~ 1e-2, so in the random tiny model a 1e-7 difference in the LLM grows ~2x per
# step (8e-3 after 50). All 50 steps are checked one at a time instead (teacher-forced, below).
E2E_DIFFUSION_STEPS = 3
_MODELS = {}


def _model(variant, **kwargs):
    key = (variant, tuple(sorted(kwargs.items())))
    if key not in _MODELS:
        _MODELS[key] = load_openvla(tiny_checkpoint(variant),
                                    **VARIANTS[variant].load_kwargs, **kwargs)
    return _MODELS[key]


def _inputs(variant, prompt, seed=0):
    inputs = example_inputs(variant, seed)
    inputs['input_ids'] = torch.tensor([prompt])
    model = _model(variant)
    if model.action_config.head_type == 'diffusion':
        cfg = model.action_config
        inputs['noise'] = torch.randn(1, cfg.chunk_len, cfg.action_dim,
                                      generator=torch.Generator().manual_seed(seed + 7))
    return inputs


@pytest.mark.parametrize('variant', ['l1', 'diffusion', 'film', 'single_image', 'aloha',
                                     'discrete'])
def test_padded_buckets_give_the_eager_actions(variant):
    steps = {'num_diffusion_steps': E2E_DIFFUSION_STEPS} if variant == 'diffusion' else {}
    model = _model(variant, **steps)
    predictor = StaticActionPredictor(model, buckets=BUCKETS)
    predictor.warmup()
    for name, prompt in PROMPTS.items():
        inputs = _inputs(variant, prompt)
        expected = model.predict_action(**inputs)
        got = predictor.predict_action(**inputs)
        assert got.normalized_actions.dtype == expected.normalized_actions.dtype
        torch.testing.assert_close(got.normalized_actions, expected.normalized_actions,
                                   atol=ATOL, rtol=0, msg=f'{variant} {name}')
        if expected.action_token_ids is not None:
            assert torch.equal(got.action_token_ids, expected.action_token_ids)
        assert set(got.timings) == {'vision', 'llm', 'head'}
    assert predictor.eager_fallbacks == 0


def test_every_ddim_step_of_the_padded_path_equals_eager():
    model = _model('diffusion')  # 50 steps
    inputs = _inputs('diffusion', PROMPTS['example'])
    steps = []  # (x_t, x_t-1) of the eager sampler
    denoise = model.action_head.denoise_step

    def recording(noise_pred, t, sample):
        steps.append((sample.clone(), denoise(noise_pred, t, sample)))
        return steps[-1][1]
    model.action_head.denoise_step = recording
    try:
        model.predict_action(**inputs)
    finally:
        del model.action_head.denoise_step
    assert len(steps) == 50
    predictor = StaticActionPredictor(model, buckets=(24, 40))
    predictor.predict_action(**inputs)  # fills the bucket-24 sequence (vision stage)
    _, llm, head = predictor._stage_functions(predictor._buckets[24])
    for step, (sample, expected) in enumerate(steps):
        predictor._sample.copy_(sample)
        predictor._step.fill_(step)
        llm()
        head()
        torch.testing.assert_close(predictor._sample, expected, atol=ATOL, rtol=0,
                                   msg=f'step {step}')


def test_the_same_prompt_in_a_larger_bucket_gives_the_same_actions():
    model = _model('film')  # FiLM: the padded language mean must also ignore pads
    inputs = _inputs('film', PROMPTS['example'])
    small = StaticActionPredictor(model, buckets=(18,)).predict_action(**inputs)
    large = StaticActionPredictor(model, buckets=(64,)).predict_action(**inputs)
    torch.testing.assert_close(large.normalized_actions, small.normalized_actions,
                               atol=ATOL, rtol=0)


def test_prompts_longer_than_every_bucket_fall_back_to_eager():
    model = _model('l1')
    predictor = StaticActionPredictor(model, buckets=(8,))
    inputs = _inputs('l1', PROMPTS['example'])
    got = predictor.predict_action(**inputs)
    assert predictor.eager_fallbacks == 1
    torch.testing.assert_close(got.normalized_actions,
                               model.predict_action(**inputs).normalized_actions)


def _max_deviation(variant, monkeypatch, broken):
    model = _model(variant, **({'num_diffusion_steps': E2E_DIFFUSION_STEPS}
                               if variant == 'diffusion' else {}))
    inputs = _inputs(variant, PROMPTS['short'])
    expected = model.predict_action(**inputs).normalized_actions
    with monkeypatch.context() as patch:
        broken(patch)
        got = StaticActionPredictor(model, buckets=(40,)).predict_action(**inputs)
    return float((got.normalized_actions - expected).abs().max())


@pytest.mark.parametrize('variant', ['l1', 'diffusion'])
def test_negative_control_unmasked_pads_change_the_actions(variant, monkeypatch):
    def unmasked(patch):
        original = bidirectional_padding_mask
        patch.setattr(static_inference, 'bidirectional_padding_mask',
                      lambda valid, *args: original(torch.ones_like(valid), *args))
    assert _max_deviation(variant, monkeypatch, unmasked) > 100 * ATOL


def test_negative_control_shifted_positions_change_the_actions(monkeypatch):
    def shifted(patch):  # pads take RoPE positions: the real tokens move by the pad count
        original = static_inference.unpadded_positions

        def positions(length, prompt_start, pad_count):
            _, is_pad = original(length, prompt_start, pad_count)
            return torch.arange(length), is_pad
        patch.setattr(static_inference, 'unpadded_positions', positions)
    assert _max_deviation('l1', monkeypatch, shifted) > 100 * ATOL


def test_ddim_step_equals_the_diffusers_scheduler():
    model = _model('diffusion')
    scheduler = model.action_head.noise_scheduler
    tables = ddim_coefficients(scheduler, 'cpu')
    generator = torch.Generator().manual_seed(3)
    sample = torch.randn(1, 8, 7, generator=generator)
    for step, t in enumerate(scheduler.timesteps.tolist()):
        noise_pred = torch.randn(1, 8, 7, generator=generator)
        expected = scheduler.step(noise_pred, t, sample, eta=0.0).prev_sample
        got = ddim_step(noise_pred, sample, clip_range=1.0,
                        **{name: table[step] for name, table in tables.items()})
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=0, msg=f'step {step}')
        sample = expected


@pytest.mark.parametrize('implementation', ['sdpa', 'eager'])
def test_padding_mask_matches_transformers(implementation):
    model = _model('l1')
    config = model.language_model.config
    valid = torch.tensor([[True, True, False, False, True, True, True]])
    embeds = torch.zeros(1, valid.shape[1], 4)
    previous = config._attn_implementation
    config._attn_implementation = implementation
    try:
        expected = create_bidirectional_mask(config=config, inputs_embeds=embeds,
                                             attention_mask=valid,
                                             allow_is_bidirectional_skip=False)
    finally:
        config._attn_implementation = previous
    got = bidirectional_padding_mask(valid, implementation, embeds.dtype)
    assert got.dtype == expected.dtype
    assert torch.equal(got, expected.expand_as(got))


def test_cuda_graphs_need_a_cuda_model():
    with pytest.raises(ValueError, match='cuda_graphs: expected a model on a CUDA device'):
        StaticActionPredictor(_model('l1'), cuda_graphs=True)


def test_bf16_padded_path_stays_within_bf16_rounding():
    model = load_openvla(tiny_checkpoint('l1'), dtype=torch.bfloat16)
    inputs = _inputs('l1', PROMPTS['short'])
    expected = model.predict_action(**inputs).normalized_actions
    got = StaticActionPredictor(model, buckets=(40,)).predict_action(**inputs).normalized_actions
    scale = float(expected.abs().max())
    assert float((got - expected).abs().max()) <= 0.05 * scale


def _traces_as_one_graph(predictor, bucket):
    for stage in predictor._stage_functions(predictor._buckets[bucket]):
        with torch.inference_mode():
            torch.compile(stage, fullgraph=True, backend='eager')()


@pytest.mark.parametrize('variant', ['diffusion', 'film'])  # every stage kind; FiLM is L1
def test_stages_have_no_data_dependent_branch_so_cuda_graphs_can_capture_them(variant):
    # A captured graph replays one fixed kernel sequence: a Python branch on a tensor value
    # (e.g. "skip the mask when there are no pads", as transformers' mask helpers do) would
    # freeze the branch taken at capture. Dynamo's fullgraph mode refuses such branches, and it
    # runs on the CPU. (It does not flag every host sync: `.item()` feeding an op passes.)
    torch._dynamo.reset()
    _traces_as_one_graph(StaticActionPredictor(_model(variant), buckets=(24,)), 24)


def test_negative_control_a_data_dependent_branch_breaks_the_trace(monkeypatch):
    original = static_inference.unpadded_positions

    def branching(length, prompt_start, pad_count):
        if pad_count.sum() == 0:  # capture-hostile: decided once, at capture
            return torch.arange(length), torch.zeros(length, dtype=torch.bool)
        return original(length, prompt_start, pad_count)
    monkeypatch.setattr(static_inference, 'unpadded_positions', branching)
    torch._dynamo.reset()
    with pytest.raises(Exception, match='(?i)data-dependent'):
        _traces_as_one_graph(StaticActionPredictor(_model('l1'), buckets=(24,)), 24)
