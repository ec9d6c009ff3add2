"""Checkpoint I/O (spec 2): round trip, dtypes, prefixes, strict errors, FiLM, statistics."""

import json
import pathlib
import shutil

import pytest
from safetensors.torch import load_file, save_file
import torch

from openvla_ros.model.checkpoint import (
    CheckpointError, find_component_file, load_component_state_dict, load_openvla,
    read_checkpoint_facts, save_openvla)
from openvla_ros.model.config import ActionConfig, OpenVLAConfig
from openvla_ros.model.modeling import OpenVLAForActionPrediction
from openvla_ros.model.testing.factory import example_inputs, tiny_checkpoint, VARIANTS


def _copy(variant, tmp_path) -> pathlib.Path:
    return pathlib.Path(shutil.copytree(tiny_checkpoint(variant), tmp_path / variant))


def _predict(model, variant, **kwargs):
    if model.action_config.head_type == 'diffusion':
        noise = torch.randn(1, 8, 7, generator=torch.Generator().manual_seed(0))
        kwargs.setdefault('noise', noise)
    return model.predict_action(**example_inputs(variant), **kwargs).normalized_actions


@pytest.mark.parametrize('variant', ['l1', 'diffusion', 'discrete', 'film'])
def test_save_then_load_reproduces_outputs_exactly(variant, tmp_path):
    kwargs = VARIANTS[variant].load_kwargs
    if variant == 'diffusion':
        kwargs = dict(kwargs, num_diffusion_steps=3)
    model = load_openvla(tiny_checkpoint(variant), **kwargs)
    saved = save_openvla(model, tmp_path / 'saved', step=7, copy_from=tiny_checkpoint(variant),
                         max_shard_bytes=4 * 10**6)
    reloaded = load_openvla(saved)  # no arguments: config.json records the constants
    assert reloaded.action_config == model.action_config
    assert reloaded.norm_stats == model.norm_stats
    assert torch.equal(_predict(reloaded, variant), _predict(model, variant))
    names = {path.name for path in saved.iterdir()}
    assert {'tokenizer.json', 'preprocessor_config.json', 'dataset_statistics.json',
            'model.safetensors.index.json', 'generation_config.json'} <= names
    assert len([name for name in names if name.startswith('model-0')]) >= 2


def test_bf16_loading_and_component_dtypes(tmp_path):
    model = load_openvla(tiny_checkpoint('l1'), dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.language_model.model.rotary_emb.inv_freq.dtype == torch.float32
    out = model.predict_action(**example_inputs('l1')).normalized_actions
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    fp32 = load_openvla(tiny_checkpoint('l1'))
    torch.testing.assert_close(out, fp32.predict_action(**example_inputs('l1')).normalized_actions,
                               atol=0.1, rtol=0)
    head_file = tiny_checkpoint('l1') / 'action_head--1000_checkpoint.pt'
    head = torch.load(head_file, weights_only=True)
    assert head['module.model.fc1.weight'].dtype == torch.bfloat16  # as upstream saves it
    assert torch.equal(fp32.action_head.model.fc1.weight,
                       head['module.model.fc1.weight'].float())


def test_component_keys_with_or_without_module_prefix(tmp_path):
    directory = _copy('l1', tmp_path)
    path = directory / 'proprio_projector--1000_checkpoint.pt'
    prefixed = torch.load(path, weights_only=True)
    assert all(key.startswith('module.') for key in prefixed)
    torch.save({key[len('module.'):]: value for key, value in prefixed.items()}, path)
    assert set(load_component_state_dict(path)) == {'fc1.weight', 'fc1.bias', 'fc2.weight',
                                                    'fc2.bias'}
    reference = load_openvla(tiny_checkpoint('l1'))
    assert torch.equal(_predict(load_openvla(directory), 'l1'), _predict(reference, 'l1'))


def _edit_component(path, edit):
    state = torch.load(path, weights_only=True)
    edit(state)
    torch.save(state, path)


def test_strict_errors_name_the_file_and_the_keys(tmp_path):
    directory = _copy('l1', tmp_path)
    head = directory / 'action_head--1000_checkpoint.pt'
    _edit_component(head, lambda s: s.pop('module.model.layer_norm2.bias'))
    with pytest.raises(CheckpointError) as error:
        load_openvla(directory)
    assert 'action_head--1000_checkpoint.pt' in str(error.value)
    assert 'missing keys (1) [model.layer_norm2.bias]' in str(error.value)

    directory = _copy('l1', tmp_path / 'b')
    proprio = directory / 'proprio_projector--1000_checkpoint.pt'
    _edit_component(proprio, lambda s: s.update({'module.fc3.weight': torch.zeros(2, 2)}))
    with pytest.raises(CheckpointError, match=r'proprio_projector--1000_checkpoint.pt: strict '
                                              r'load failed: unexpected keys \(1\) \[fc3.weight'):
        load_openvla(directory)


def test_shape_mismatch_in_the_safetensors_names_the_shard(tmp_path):
    directory = _copy('l1', tmp_path)
    index = json.loads((directory / 'model.safetensors.index.json').read_text())
    key = 'projector.fc3.bias'
    shard = directory / index['weight_map'][key]
    tensors = load_file(shard)
    tensors[key] = torch.zeros(65)
    save_file(tensors, shard)
    with pytest.raises(CheckpointError) as error:
        load_openvla(directory)
    message = str(error.value)
    assert f'{key}: expected [64], got [65] ({shard.name})' in message


def test_missing_shard_and_missing_weights_are_reported(tmp_path):
    directory = _copy('l1', tmp_path)
    index = json.loads((directory / 'model.safetensors.index.json').read_text())
    shard = sorted(set(index['weight_map'].values()))[-1]
    (directory / shard).unlink()
    with pytest.raises(CheckpointError, match=f'lists shard {shard}, which is missing'):
        load_openvla(directory)
    for path in directory.glob('model*'):
        path.unlink()
    with pytest.raises(CheckpointError, match='expected merged weights'):
        load_openvla(directory)


@pytest.mark.parametrize('keep', [0.5, 20], ids=['data-cut', 'header-cut'])
def test_a_truncated_shard_is_named_with_the_fix(tmp_path, keep):
    directory = _copy('l1', tmp_path)
    shard = sorted(directory.glob('model-*.safetensors'))[0]
    data = shard.read_bytes()
    shard.write_bytes(data[:int(len(data) * keep) if keep < 1 else keep])
    with pytest.raises(CheckpointError) as error:
        load_openvla(directory)
    message = str(error.value)
    assert str(shard) in message and 'truncated' in message
    assert 'Fix: download this file again' in message


def test_two_candidate_files_are_refused(tmp_path):
    directory = _copy('l1', tmp_path)
    shutil.copy(directory / 'action_head--1000_checkpoint.pt',
                directory / 'action_head--2000_checkpoint.pt')
    with pytest.raises(CheckpointError) as error:
        load_openvla(directory)
    assert 'action_head--1000_checkpoint.pt' in str(error.value)
    assert 'action_head--2000_checkpoint.pt' in str(error.value)
    assert find_component_file(directory, 'noisy_action_projector') is None


def test_checkpoint_facts_come_from_the_component_shapes():
    config = OpenVLAConfig.from_json_file(tiny_checkpoint('aloha') / 'config.json')
    facts = read_checkpoint_facts(tiny_checkpoint('aloha'), config)
    assert (facts.head_type, facts.action_dim, facts.proprio_dim) == ('l1', 14, 14)
    assert facts.uses_film and facts.film_lora_rank == 32
    facts = read_checkpoint_facts(tiny_checkpoint('diffusion'), config)
    assert (facts.head_type, facts.action_dim, facts.uses_film) == ('diffusion', 7, False)
    assert 'noise_predictor.mlp_resnet.fc2.weight [7, 64]' in facts.action_dim_source


def test_wrong_platform_is_a_clear_error():
    with pytest.raises(CheckpointError) as error:
        load_openvla(tiny_checkpoint('l1'), platform='ALOHA')
    message = str(error.value)
    assert 'action_head--1000_checkpoint.pt (model.fc2.weight [7, 64])' in message
    assert 'expects action_dim 14' in message and "platform='LIBERO'" in message


def test_head_type_inference_errors(tmp_path):
    directory = _copy('diffusion', tmp_path)
    (directory / 'noisy_action_projector--1000_checkpoint.pt').unlink()
    with pytest.raises(CheckpointError, match='a diffusion head needs a noisy_action_projector'):
        load_openvla(directory)
    directory = _copy('l1', tmp_path / 'b')
    _edit_component(directory / 'action_head--1000_checkpoint.pt',
                    lambda s: s.update({'module.model.fc1.weight': torch.zeros(64, 14 * 64)}))
    with pytest.raises(CheckpointError, match='fc1.weight takes 896 inputs, but a head for 7-dim'):
        load_openvla(directory)


def test_a_pickled_object_is_never_executed(tmp_path):
    directory = _copy('l1', tmp_path)
    torch.save({'model.fc1.weight': torch.zeros(1), 'payload': pathlib.PurePosixPath('/x')},
               directory / 'action_head--1000_checkpoint.pt')
    with pytest.raises(CheckpointError, match='cannot read as a weights-only torch file'):
        load_openvla(directory)


def test_dataset_statistics_override_config_norm_stats(tmp_path):
    directory = _copy('l1', tmp_path)
    assert set(load_openvla(directory).norm_stats) == {'libero_tiny_no_noops'}
    config = json.loads((directory / 'config.json').read_text())
    assert set(config['norm_stats']) == {'bridge_orig'}
    (directory / 'dataset_statistics.json').unlink()
    model = load_openvla(directory)
    assert set(model.norm_stats) == {'bridge_orig'}
    expected = config['norm_stats']['bridge_orig']['action']['q99']
    assert model.norm_stats['bridge_orig'].action.q99.tolist() == expected


def test_single_file_safetensors_loads(tmp_path):
    model = load_openvla(tiny_checkpoint('l1'))
    saved = save_openvla(model, tmp_path / 'single')
    assert (saved / 'model.safetensors').is_file()
    assert not (saved / 'model.safetensors.index.json').exists()
    assert torch.equal(_predict(load_openvla(saved), 'l1'), _predict(model, 'l1'))


def test_film_weights_are_base_plus_scaled_lora_and_the_safetensors_vit_is_ignored(tmp_path):
    directory = _copy('film', tmp_path)
    film = torch.load(directory / 'vision_backbone--1000_checkpoint.pt', weights_only=True)
    prefix = 'vision_backbone.featurizer.blocks.1.block.attn.qkv.'
    base, lora_a, lora_b = (film[prefix + name] for name in (
        'base_layer.weight', 'lora_A.default.weight', 'lora_B.default.weight'))
    assert lora_a.shape[0] == 32 and lora_b.abs().max() > 0  # rank 32 -> alpha 16, scale 0.5
    model = load_openvla(directory)
    merged = model.vision_backbone.featurizer.blocks[1].block.attn.qkv.weight
    torch.testing.assert_close(merged, base + 0.5 * lora_b @ lora_a, atol=1e-6, rtol=1e-5)
    before = _predict(model, 'film')

    index = json.loads((directory / 'model.safetensors.index.json').read_text())
    for shard in set(index['weight_map'].values()):
        tensors = load_file(directory / shard)
        tensors = {key: (value + 1.0 if key.startswith('vision_backbone.') else value)
                   for key, value in tensors.items()}
        save_file(tensors, directory / shard)
    assert torch.equal(_predict(load_openvla(directory), 'film'), before)


def test_meta_build_leaves_nothing_on_meta_and_keeps_upstream_key_names():
    model = load_openvla(tiny_checkpoint('diffusion'))
    tensors = [*model.parameters(), *model.buffers()]
    assert not any(t.is_meta for t in tensors)
    assert model.action_head.noise_scheduler.alphas_cumprod.device.type == 'cpu'
    keys = set(model.state_dict())
    assert 'vision_backbone.featurizer.blocks.0.ls1.scale_factor' in keys
    assert 'action_head.noise_predictor.mlp_resnet.fc1.weight' in keys


def test_full_size_model_has_the_spec_key_names_and_shapes():
    """What a released 7B checkpoint must provide (spec 2.2 and 3), built on the meta device."""
    config = OpenVLAConfig()
    action_config = ActionConfig(chunk_len=8, action_dim=7, proprio_dim=8,
                                 normalization_type='bounds_q99', head_type='l1',
                                 use_proprio=True, num_images_in_input=2)
    with torch.device('meta'):
        model = OpenVLAForActionPrediction(config, action_config)
    shapes = {key: list(value.shape) for key, value in model.state_dict().items()}
    assert {
        'vision_backbone.featurizer.cls_token': [1, 1, 1024],
        'vision_backbone.featurizer.reg_token': [1, 4, 1024],
        'vision_backbone.featurizer.pos_embed': [1, 256, 1024],
        'vision_backbone.featurizer.patch_embed.proj.weight': [1024, 3, 14, 14],
        'vision_backbone.featurizer.blocks.23.ls2.scale_factor': [1024],
        'vision_backbone.fused_featurizer.pos_embed': [1, 256, 1152],
        'vision_backbone.fused_featurizer.blocks.26.mlp.fc1.weight': [4304, 1152],
        'vision_backbone.fused_featurizer.attn_pool.latent': [1, 1, 1152],
        'projector.fc1.weight': [8704, 2176],
        'projector.fc2.weight': [4096, 8704],
        'projector.fc3.weight': [4096, 4096],
        'language_model.model.embed_tokens.weight': [32064, 4096],
        'language_model.model.layers.31.mlp.gate_proj.weight': [11008, 4096],
        'language_model.model.norm.weight': [4096],
        'language_model.lm_head.weight': [32064, 4096],
        'action_head.model.fc1.weight': [4096, 28672],
        'action_head.model.mlp_resnet_blocks.1.ffn.1.weight': [4096, 4096],
        'action_head.model.fc2.weight': [7, 4096],
        'proprio_projector.fc1.weight': [4096, 8],
    }.items() <= shapes.items()
    assert not any('gamma' in key for key in shapes)  # LayerScale is stored as scale_factor
    assert not any(key.startswith('language_model') and key.endswith('bias') for key in shapes)
    assert model.num_patches == 513
