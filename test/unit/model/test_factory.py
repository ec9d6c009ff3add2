"""Tiny checkpoint factory: complete upstream-layout directories for every variant."""

import json

import pytest
from safetensors.torch import load_file
import torch

from openvla_ros.model.checkpoint import load_openvla
from openvla_ros.model.testing.factory import (
    example_inputs, tiny_checkpoint, TINY_VARIANTS, VARIANTS, write_tiny_checkpoint)
from openvla_ros.processing import PromptTokenizer

COMMON_FILES = {'config.json', 'generation_config.json', 'preprocessor_config.json',
                'dataset_statistics.json', 'tokenizer.json', 'tokenizer_config.json',
                'special_tokens_map.json', 'added_tokens.json', 'model.safetensors.index.json'}
# (chunk, action dim) of the presets the variants use.
SHAPES = {'LIBERO': (8, 7), 'ALOHA': (25, 14)}


@pytest.mark.parametrize('variant', TINY_VARIANTS)
def test_every_variant_loads_and_predicts_its_shapes(variant):
    spec = VARIANTS[variant]
    directory = tiny_checkpoint(variant)
    names = {path.name for path in directory.iterdir()}
    assert COMMON_FILES <= names
    components = {name.split('--')[0] for name in names if '--' in name}
    expected = {'action_head'} if spec.head_type != 'discrete' else set()
    expected |= {'proprio_projector'} if spec.use_proprio else set()
    expected |= {'noisy_action_projector'} if spec.head_type == 'diffusion' else set()
    expected |= {'vision_backbone'} if spec.uses_film else set()
    assert components == expected

    kwargs = dict(spec.load_kwargs)
    if spec.head_type == 'diffusion':
        kwargs['num_diffusion_steps'] = 2
    model = load_openvla(directory, **kwargs)
    config = model.action_config
    assert (config.head_type, config.uses_film) == (spec.head_type, spec.uses_film)
    assert config.num_images_in_input == spec.num_images
    assert config.use_proprio == spec.use_proprio
    chunk, action_dim = SHAPES[spec.platform]
    out = model.predict_action(**example_inputs(variant), unnormalize=True)
    assert out.normalized_actions.shape == (chunk, action_dim)
    assert out.actions.shape == (chunk, action_dim)
    assert torch.isfinite(out.normalized_actions).all()
    assert out.unnorm_key == spec.unnorm_key


def test_config_json_is_written_as_upstream_does():
    config = json.loads((tiny_checkpoint('l1') / 'config.json').read_text())
    assert config['model_type'] == 'openvla'
    assert config['architectures'] == ['OpenVLAForActionPrediction']
    assert config['auto_map']['AutoModelForVision2Seq'] == \
        'modeling_prismatic.OpenVLAForActionPrediction'
    assert config['text_config'] == {  # a diff against the 4.40.1 LlamaConfig defaults
        'hidden_size': 64, 'initializer_range': 0.3, 'intermediate_size': 128,
        'model_type': 'llama', 'num_attention_heads': 4, 'num_hidden_layers': 2,
        'pad_token_id': 32000, 'torch_dtype': 'bfloat16', 'vocab_size': 32064}
    assert (config['n_action_bins'], config['pad_to_multiple_of']) == (256, 64)
    assert config['timm_model_kwargs'][0]['embed_dim'] == 32
    assert config['timm_model_ids'][0] == 'vit_large_patch14_reg4_dinov2.lvd142m'
    assert 'platform_constants' not in config  # loading must infer the constants
    generation = json.loads((tiny_checkpoint('l1') / 'generation_config.json').read_text())
    assert (generation['bos_token_id'], generation['eos_token_id'],
            generation['pad_token_id']) == (1, 2, 32000)
    preprocessor = json.loads(
        (tiny_checkpoint('l1') / 'preprocessor_config.json').read_text())
    assert preprocessor['tvf_normalize_params'][0]['mean'] == [0.484375, 0.455078125, 0.40625]


def test_component_files_have_upstream_dtypes_and_prefixes():
    directory = tiny_checkpoint('diffusion')
    head = torch.load(directory / 'action_head--1000_checkpoint.pt', weights_only=True)
    assert head['module.noise_predictor.mlp_resnet.fc1.weight'].shape == (64, 7 * 64)
    assert {value.dtype for value in head.values()} == {torch.bfloat16}
    for name in ('proprio_projector', 'noisy_action_projector'):
        state = torch.load(directory / f'{name}--1000_checkpoint.pt', weights_only=True)
        assert all(key.startswith('module.') for key in state)
        assert {value.dtype for value in state.values()} == {torch.float32}
    film_file = tiny_checkpoint('film') / 'vision_backbone--1000_checkpoint.pt'
    film = torch.load(film_file, weights_only=True)
    assert all(key.startswith('vision_backbone.') for key in film)  # no module. prefix
    lora_b = [value for key, value in film.items() if key.endswith('lora_B.default.weight')]
    assert lora_b and all(value.abs().max() > 0 for value in lora_b)
    assert 'vision_backbone.fused_featurizer.blocks.0.scale.weight' in film


def test_weights_are_sharded_with_an_index():
    directory = tiny_checkpoint('film')
    index = json.loads((directory / 'model.safetensors.index.json').read_text())
    shards = sorted(set(index['weight_map'].values()))
    assert shards == ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']
    keys = set()
    for shard in shards:
        keys |= set(load_file(directory / shard))
    assert keys == set(index['weight_map'])
    # FiLM: the safetensors hold the plain (un-adapted) ViT layout
    assert 'vision_backbone.featurizer.blocks.0.attn.qkv.weight' in keys
    assert not any('.block.' in key or '.scale.' in key for key in keys)


def test_dataset_statistics_shapes_and_masks():
    libero = json.loads((tiny_checkpoint('l1') / 'dataset_statistics.json').read_text())
    aloha = json.loads((tiny_checkpoint('aloha') / 'dataset_statistics.json').read_text())
    (libero_stats,) = libero.values()
    (aloha_stats,) = aloha.values()
    assert libero_stats['action']['mask'] == [True] * 6 + [False]
    assert len(libero_stats['proprio']['q01']) == 8
    assert aloha_stats['action']['mask'] == [True] * 14
    assert len(aloha_stats['proprio']['min']) == 14
    for stats in (libero_stats['action'], aloha_stats['proprio']):
        assert all(low < high for low, high in zip(stats['q01'], stats['q99']))
        assert all(low < q for low, q in zip(stats['min'], stats['q01']))


def test_same_seed_same_bytes_other_seed_other_weights(tmp_path):
    first = write_tiny_checkpoint(tmp_path / 'a', 'l1', seed=0)
    second = write_tiny_checkpoint(tmp_path / 'b', 'l1', seed=0)
    third = write_tiny_checkpoint(tmp_path / 'c', 'l1', seed=1)
    for name in ('model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors',
                 'action_head--1000_checkpoint.pt', 'dataset_statistics.json'):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    assert (first / 'action_head--1000_checkpoint.pt').read_bytes() != \
        (third / 'action_head--1000_checkpoint.pt').read_bytes()


def test_the_tokenizer_is_usable_by_the_processing_layer():
    tokenizer = PromptTokenizer.from_checkpoint(tiny_checkpoint('l1'))
    ids = tokenizer.encode('pick up the black bowl')
    assert ids[0] == 1 and ids[-1] != 29871


def test_cached_checkpoints_and_unknown_variants():
    assert tiny_checkpoint('l1') == tiny_checkpoint('l1')
    with pytest.raises(ValueError, match="variant: expected one of .* got 'huge'"):
        tiny_checkpoint('huge')
