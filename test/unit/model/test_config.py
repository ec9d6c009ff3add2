"""config.json parsing (spec 2.1) and platform-constant resolution (spec 1, openvla-oft#47)."""

import json

import pytest

from openvla_ros.model.config import (
    ActionConfig, CheckpointFacts, ConfigError, OpenVLAConfig, platform_preset, PLATFORMS,
    resolve_action_config, text_config_diff)
from openvla_ros.normalization import NormalizationType

# config.json of a released 7B checkpoint, as listed in OPENVLA_OFT_REFERENCE.md section 2.1.
RELEASED_CONFIG = {
    'arch_specifier': 'no-align+fused-gelu-mlp',
    'architectures': ['OpenVLAForActionPrediction'],
    'auto_map': {
        'AutoConfig': 'configuration_prismatic.OpenVLAConfig',
        'AutoModelForVision2Seq': 'modeling_prismatic.OpenVLAForActionPrediction',
    },
    'hf_llm_id': 'meta-llama/Llama-2-7b-hf',
    'image_resize_strategy': 'resize-naive',
    'image_sizes': [224, 224],
    'llm_backbone_id': 'llama2-7b-pure',
    'llm_max_length': 2048,
    'model_type': 'openvla',
    'n_action_bins': 256,
    'norm_stats': {'bridge_orig': {'action': {
        'mean': [0.0] * 7, 'std': [1.0] * 7, 'min': [-1.0] * 7, 'max': [1.0] * 7,
        'q01': [-0.9] * 7, 'q99': [0.9] * 7, 'mask': [True] * 6 + [False]}}},
    'output_projector_states': False,
    'pad_to_multiple_of': 64,
    'pad_token_id': 32000,
    'text_config': {'model_type': 'llama', 'pad_token_id': 32000, 'torch_dtype': 'bfloat16',
                    'vocab_size': 32064},
    'timm_model_ids': ['vit_large_patch14_reg4_dinov2.lvd142m', 'vit_so400m_patch14_siglip_224'],
    'timm_override_act_layers': [None, None],
    'torch_dtype': 'bfloat16',
    'transformers_version': '4.40.1',
    'use_fused_vision_backbone': True,
    'vision_backbone_id': 'dinosiglip-vit-so-224px',
}


def test_released_config_gives_the_llama2_7b_text_model():
    config = OpenVLAConfig.from_dict(RELEASED_CONFIG)
    llama = config.llama_config()
    assert (llama.hidden_size, llama.intermediate_size) == (4096, 11008)
    assert (llama.num_hidden_layers, llama.num_attention_heads) == (32, 32)
    assert llama.num_key_value_heads == 32
    assert llama.rms_norm_eps == 1e-6  # 4.40.1 LlamaConfig default, not Llama-2's 1e-5
    assert llama.rope_parameters['rope_theta'] == 10000.0
    assert llama.max_position_embeddings == 2048
    assert (llama.vocab_size, llama.pad_token_id) == (32064, 32000)
    assert llama.tie_word_embeddings is False and llama.attention_bias is False
    assert llama.hidden_act == 'silu'
    assert config.text_vocab_size == 32000  # action tokens count down from here
    assert config.llm_dim == 4096 and config.image_size == 224
    assert config.timm_model_ids[0].startswith('vit_large_patch14_reg4_dinov2')  # DINOv2 first


def test_text_config_values_override_the_defaults():
    data = dict(RELEASED_CONFIG, text_config={'hidden_size': 64, 'rms_norm_eps': 1e-5,
                                              'rope_theta': 500000.0, 'vocab_size': 32064})
    llama = OpenVLAConfig.from_dict(data).llama_config()
    assert llama.hidden_size == 64 and llama.rms_norm_eps == 1e-5
    assert llama.rope_parameters['rope_theta'] == 500000.0
    assert llama.num_hidden_layers == 32  # still the default


def test_to_dict_round_trips_and_keeps_unknown_keys():
    config = OpenVLAConfig.from_dict(RELEASED_CONFIG)
    data = config.to_dict()
    assert data == RELEASED_CONFIG  # nothing lost, nothing added
    assert OpenVLAConfig.from_dict(json.loads(json.dumps(data))).to_dict() == data


def test_text_config_diff_writes_only_what_differs():
    values = {'hidden_size': 64, 'rms_norm_eps': 1e-6, 'vocab_size': 32064, 'pad_token_id': 32000,
              'hidden_act': 'silu'}
    assert text_config_diff(values) == {'hidden_size': 64, 'model_type': 'llama',
                                        'pad_token_id': 32000, 'torch_dtype': 'bfloat16',
                                        'vocab_size': 32064}


def test_timm_model_kwargs_must_align_with_the_timm_ids():
    kwargs = [{'embed_dim': 32, 'depth': 3}, {'embed_dim': 48, 'depth': 3}]
    config = OpenVLAConfig.from_dict(dict(RELEASED_CONFIG, timm_model_kwargs=kwargs))
    assert config.timm_model_kwargs == tuple(kwargs)
    assert config.to_dict()['timm_model_kwargs'] == kwargs
    with pytest.raises(ConfigError, match='timm_model_kwargs: expected 2 entries'):
        OpenVLAConfig.from_dict(dict(RELEASED_CONFIG, timm_model_kwargs=kwargs[:1]))


@pytest.mark.parametrize('change, message', [
    ({'model_type': 'llava'}, 'model_type: expected "openvla"'),
    ({'timm_model_ids': ['a']}, 'timm_model_ids: expected 2 ids'),
    ({'arch_specifier': 'no-align+linear'}, 'arch_specifier: expected'),
    ({'image_sizes': [224, 384]}, 'image_sizes: expected equal sizes'),
    ({'text_config': {'vocab_size': 64}}, 'expected more than n_action_bins'),
])
def test_invalid_config_is_rejected(change, message):
    with pytest.raises(ConfigError, match=message):
        OpenVLAConfig.from_dict(dict(RELEASED_CONFIG, **change))


def test_from_json_file_names_the_file(tmp_path):
    path = tmp_path / 'config.json'
    path.write_text('{not json')
    with pytest.raises(ConfigError, match='config.json: cannot read'):
        OpenVLAConfig.from_json_file(path)
    with pytest.raises(ConfigError, match='not found'):
        OpenVLAConfig.from_json_file(tmp_path / 'missing.json')


def test_presets_match_upstream_constants():
    table = {name: (p.chunk_len, p.action_dim, p.proprio_dim, p.normalization_type.value)
             for name, p in PLATFORMS.items()}
    assert table == {'LIBERO': (8, 7, 8, 'bounds_q99'), 'ALOHA': (25, 14, 14, 'bounds'),
                     'BRIDGE': (5, 7, 7, 'bounds_q99')}
    assert platform_preset('aloha').name == 'ALOHA'
    with pytest.raises(ConfigError, match="platform: expected one of .* got 'franka'"):
        platform_preset('franka')


def _l1_facts(action_dim, proprio_dim=None, **kwargs):
    return CheckpointFacts(head_type='l1', action_dim=action_dim,
                           action_dim_source='action_head--5_checkpoint.pt (model.fc2.weight)',
                           proprio_dim=proprio_dim,
                           proprio_dim_source='proprio_projector--5_checkpoint.pt',
                           **kwargs)


@pytest.mark.parametrize('action_dim, proprio_dim, platform, chunk, norm', [
    (7, 8, 'LIBERO', 8, 'bounds_q99'),
    (14, 14, 'ALOHA', 25, 'bounds'),
    (7, 7, 'BRIDGE', 5, 'bounds_q99'),
    (14, None, 'ALOHA', 25, 'bounds'),  # only ALOHA has 14-dim actions
])
def test_platform_is_inferred_from_unambiguous_shapes(action_dim, proprio_dim, platform, chunk,
                                                      norm):
    config = resolve_action_config(_l1_facts(action_dim, proprio_dim))
    assert (config.platform, config.chunk_len, config.action_dim) == (platform, chunk, action_dim)
    assert config.normalization_type.value == norm
    assert config.use_proprio == (proprio_dim is not None)
    assert config.proprio_dim == PLATFORMS[platform].proprio_dim
    assert config.num_images_in_input == PLATFORMS[platform].num_images_in_input


def test_ambiguous_shapes_ask_for_a_platform():
    with pytest.raises(ConfigError) as error:
        resolve_action_config(_l1_facts(7))
    message = str(error.value)
    assert 'LIBERO and BRIDGE' in message and 'platform=' in message
    assert 'action_head--5_checkpoint.pt' in message
    assert resolve_action_config(_l1_facts(7), platform='bridge').chunk_len == 5


def test_wrong_platform_names_the_file_and_the_fix():
    """openvla-oft#47: an ALOHA setting on a LIBERO head must fail with a clear message."""
    with pytest.raises(ConfigError) as error:
        resolve_action_config(_l1_facts(7, 8), platform='ALOHA')
    message = str(error.value)
    assert 'action_head--5_checkpoint.pt' in message
    assert '7-dim actions' in message and 'action_dim 14' in message
    assert "platform='LIBERO'" in message


def test_proprio_mismatch_names_the_projector_file():
    with pytest.raises(ConfigError, match='proprio_projector--5_checkpoint.pt takes 8-dim'):
        resolve_action_config(_l1_facts(7, 8), proprio_dim=7)


def test_explicit_overrides_win_and_are_cross_checked():
    config = resolve_action_config(_l1_facts(7, 8), chunk_len=16, normalization_type='bounds',
                                   num_images_in_input=1, use_proprio=False)
    assert (config.chunk_len, config.normalization_type) == (16, NormalizationType.BOUNDS)
    assert config.num_images_in_input == 1 and config.use_proprio is False
    with pytest.raises(ConfigError, match='expects action_dim 6'):
        resolve_action_config(_l1_facts(7, 8), action_dim=6)
    with pytest.raises(ConfigError, match=r"expected overrides among .* got \['chunk'\]"):
        resolve_action_config(_l1_facts(7, 8), chunk=4)


def test_custom_robot_needs_no_preset_when_everything_is_explicit():
    config = resolve_action_config(_l1_facts(6, 9), chunk_len=10, normalization_type='bounds')
    assert (config.chunk_len, config.action_dim, config.proprio_dim) == (10, 6, 9)
    assert config.platform is None
    with pytest.raises(ConfigError, match='cannot determine chunk_len'):
        resolve_action_config(_l1_facts(6, 9))


def test_discrete_checkpoint_without_proprio_needs_a_platform():
    facts = CheckpointFacts(head_type='discrete')
    with pytest.raises(ConfigError, match='cannot determine action_dim'):
        resolve_action_config(facts)
    assert resolve_action_config(facts, platform='LIBERO').action_dim == 7
    with_proprio = CheckpointFacts(head_type='discrete', proprio_dim=14)
    assert resolve_action_config(with_proprio).platform == 'ALOHA'


def test_use_proprio_without_projector_is_an_error():
    with pytest.raises(ConfigError, match='no proprio_projector'):
        resolve_action_config(_l1_facts(14), use_proprio=True)


def test_recorded_constants_are_used_and_an_explicit_platform_replaces_them():
    recorded = {'platform': 'LIBERO', 'chunk_len': 4, 'num_images_in_input': 1,
                'num_diffusion_steps_inference': 10}
    facts = CheckpointFacts(head_type='diffusion', action_dim=7, recorded=recorded)
    config = resolve_action_config(facts)
    assert (config.chunk_len, config.num_images_in_input) == (4, 1)
    assert config.num_diffusion_steps_inference == 10
    assert resolve_action_config(facts, platform='BRIDGE').chunk_len == 5
    bad = CheckpointFacts(head_type='l1', action_dim=7, recorded={'chunk_size': 4})
    with pytest.raises(ConfigError, match="platform_constants: expected keys.*'chunk_size'"):
        resolve_action_config(bad)


def test_action_config_validates_and_records():
    config = ActionConfig(chunk_len=8, action_dim=7, proprio_dim=8,
                          normalization_type='bounds_q99', head_type='l1', use_proprio=True,
                          num_images_in_input=2, platform='LIBERO')
    assert config.num_action_slots == 56
    facts = CheckpointFacts(head_type='l1', action_dim=7, proprio_dim=8,
                            recorded=config.to_record())
    assert resolve_action_config(facts) == config
    with pytest.raises(ConfigError, match="head_type: expected one of .* got 'mse'"):
        ActionConfig(chunk_len=8, action_dim=7, proprio_dim=8, normalization_type='bounds',
                     head_type='mse')
    with pytest.raises(ConfigError, match='chunk_len: expected a positive int, got 0'):
        ActionConfig(chunk_len=0, action_dim=7, proprio_dim=8, normalization_type='bounds',
                     head_type='l1')
    with pytest.raises(ConfigError, match='expected bounds or bounds_q99, got normal'):
        ActionConfig(chunk_len=8, action_dim=7, proprio_dim=8, normalization_type='normal',
                     head_type='l1')


def test_action_config_for_platform_takes_the_preset_constants():
    config = ActionConfig.for_platform('aloha', 'l1', uses_film=True, num_images_in_input=3,
                                       use_proprio=True)
    preset = platform_preset('ALOHA')
    assert (config.chunk_len, config.action_dim, config.proprio_dim, config.platform) == (
        preset.chunk_len, preset.action_dim, preset.proprio_dim, 'ALOHA')
    assert config.normalization_type == preset.normalization_type
    assert config.uses_film and config.num_images_in_input == 3 and config.head_type == 'l1'
