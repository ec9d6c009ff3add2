"""execution/filters.py: clip, rate limit, scale, non-finite guard and their chain."""

import numpy as np
import pytest

from openvla_ros.execution.filters import (
    clip_to_bounds, finite_or_none, rate_limit, SafetyFilter, SafetyLimits, scale_action)


def test_clip_to_bounds_per_dimension_with_an_open_side():
    clipped = clip_to_bounds([-2.0, 0.5, 9.0], [-1.0, -1.0, -np.inf], [1.0, 1.0, 5.0])
    np.testing.assert_array_equal(clipped, [-1.0, 0.5, 5.0])


def test_rate_limit_moves_at_most_max_step_from_previous():
    limited = rate_limit([1.0, -1.0, 0.05], previous=np.zeros(3), max_step=0.1)
    np.testing.assert_allclose(limited, [0.1, -0.1, 0.05])
    per_dim = rate_limit([1.0, 1.0], previous=np.array([0.0, 0.0]), max_step=[0.5, 0.25])
    np.testing.assert_allclose(per_dim, [0.5, 0.25])


def test_rate_limit_without_previous_passes_the_action():
    np.testing.assert_array_equal(rate_limit([3.0], None, 0.1), [3.0])


def test_scale_action_scalar_and_vector():
    np.testing.assert_allclose(scale_action([1.0, 2.0], 0.5), [0.5, 1.0])
    np.testing.assert_allclose(scale_action([1.0, 2.0], [2.0, 0.0]), [2.0, 0.0])


def test_finite_or_none():
    assert finite_or_none([1.0, np.nan]) is None
    assert finite_or_none([np.inf]) is None
    np.testing.assert_array_equal(finite_or_none([1, 2]), [1.0, 2.0])


def test_chain_scales_then_clips_then_rate_limits_and_counts():
    safety = SafetyFilter(SafetyLimits(low=-1.0, high=[1.0, 1.0], max_step_per_tick=0.5,
                                       scale=2.0))
    np.testing.assert_allclose(safety([0.3, 0.9]), [0.6, 1.0])  # 1.8 clipped to 1.0
    assert (safety.clipped, safety.rate_limited) == (1, 0)
    np.testing.assert_allclose(safety([-0.9, 0.9]), [0.1, 1.0])  # -1.0 reached 0.5 at a time
    np.testing.assert_allclose(safety([-0.9, 0.9]), [-0.4, 1.0])
    np.testing.assert_allclose(safety([-0.9, 0.9]), [-0.9, 1.0])
    np.testing.assert_allclose(safety([-0.9, 0.9]), [-1.0, 1.0])
    assert safety.rate_limited == 3


def test_chain_drops_non_finite_actions_and_keeps_its_memory():
    safety = SafetyFilter(SafetyLimits(max_step_per_tick=0.1))
    safety([0.0])
    assert safety([np.nan]) is None
    assert safety.rejected_nonfinite == 1
    np.testing.assert_allclose(safety([1.0]), [0.1])


def test_reset_can_seed_the_rate_limiter_with_the_measured_position():
    safety = SafetyFilter(SafetyLimits(max_step_per_tick=0.2))
    safety.reset(previous=[1.0])
    np.testing.assert_allclose(safety([0.0]), [0.8])
    safety.reset()
    np.testing.assert_allclose(safety([0.0]), [0.0])


def test_rate_limited_output_stays_inside_the_bounds():
    rng = np.random.default_rng(0)
    low, high = np.array([-1.0, 0.0]), np.array([1.0, 0.5])
    safety = SafetyFilter(SafetyLimits(low=low, high=high, max_step_per_tick=0.3))
    for action in rng.normal(0.0, 3.0, (200, 2)):
        out = safety(action)
        assert np.all(out >= low) and np.all(out <= high)


@pytest.mark.parametrize('kwargs, message', [
    (dict(low=[1.0, 0.0], high=[0.0, 1.0]), 'low <= high'),
    (dict(max_step_per_tick=-0.1), 'max_step_per_tick >= 0'),
    (dict(low=[[0.0]]), 'scalar or a vector'),
    (dict(low=[0.0, 0.0], dims=3), 'vector of 3 values'),
    (dict(high=[np.nan]), 'without NaN'),
])
def test_bad_limits_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SafetyLimits(**kwargs)


def test_mismatched_vectors_and_actions_raise():
    with pytest.raises(ValueError, match='share one length'):
        SafetyLimits(low=[0.0, 0.0], high=[1.0, 1.0, 1.0])
    safety = SafetyFilter(SafetyLimits(low=[0.0, 0.0]))
    with pytest.raises(ValueError, match=r'expected an action of shape \(2,\), got \(3,\)'):
        safety([0.0, 0.0, 0.0])
