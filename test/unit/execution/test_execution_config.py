"""execution/config.py: defaults, validation messages, derived sub-step count."""

import pytest

from openvla_ros.execution.config import ExecutionConfig


def test_defaults_are_async_at_upstream_rates():
    config = ExecutionConfig()
    assert config.execution_mode == 'async'
    assert (config.action_rate_hz, config.control_rate_hz) == (20.0, 100.0)
    assert config.latency_quantile == 0.95
    assert config.substeps_per_step == 5


@pytest.mark.parametrize('control_hz, action_hz, substeps', [
    (100.0, 20.0, 5), (20.0, 20.0, 1), (10.0, 20.0, 1), (30.0, 20.0, 2), (50.0, 20.0, 2),
])
def test_substeps_are_control_ticks_per_action_period_rounded(control_hz, action_hz, substeps):
    config = ExecutionConfig(control_rate_hz=control_hz, action_rate_hz=action_hz)
    assert config.substeps_per_step == substeps


def test_hold_dims_from_a_list_become_a_tuple_of_ints():
    assert ExecutionConfig(hold_dims=[6, 2]).hold_dims == (6, 2)


@pytest.mark.parametrize('kwargs, field', [
    (dict(execution_mode='batch'), 'execution_mode'),
    (dict(action_rate_hz=0.0), 'action_rate_hz'),
    (dict(control_rate_hz=float('inf')), 'control_rate_hz'),
    (dict(execute_steps=0), 'execute_steps'),
    (dict(execute_steps=2.5), 'execute_steps'),
    (dict(latency_quantile=0.0), 'latency_quantile'),
    (dict(latency_quantile=1.5), 'latency_quantile'),
    (dict(latency_window=0), 'latency_window'),
    (dict(latency_initial_s=-0.1), 'latency_initial_s'),
    (dict(latency_margin_s=float('nan')), 'latency_margin_s'),
    (dict(blend='average'), 'blend'),
    (dict(crossfade_steps=0), 'crossfade_steps'),
    (dict(ensemble_decay=float('nan')), 'ensemble_decay'),
    (dict(action_kind='velocity'), 'action_kind'),
    (dict(interpolation='cubic'), 'interpolation'),
    (dict(hold_dims=(-1,)), 'hold_dims'),
    (dict(hold_dims=(3, 3)), 'hold_dims'),
    (dict(hold_dims=(True,)), 'hold_dims'),
    (dict(hold_dims=6), 'hold_dims'),
    (dict(resume_after_stall='yes'), 'resume_after_stall'),
    (dict(underrun_policy='repeat'), 'underrun_policy'),
    (dict(max_action_age_s=0.0), 'max_action_age_s'),
    (dict(action_kind='delta', blend='crossfade'), 'blend'),
])
def test_invalid_values_name_the_field_and_the_value(kwargs, field):
    with pytest.raises(ValueError, match=rf'`{field}.*Got'):
        ExecutionConfig(**kwargs)


def test_blend_is_accepted_in_sync_mode_and_ignored_there():
    assert ExecutionConfig(execution_mode='sync', blend='ensemble').blend == 'ensemble'
