"""execution/latency.py: the windowed quantile used to schedule inference."""

import math

import numpy as np
import pytest

from openvla_ros.execution.latency import LatencyEstimator


def test_initial_guess_until_the_first_observation():
    estimator = LatencyEstimator(quantile=0.95, window=10, initial_s=0.3)
    assert estimator.estimate_s == 0.3
    assert math.isnan(estimator.last_s)
    estimator.observe(0.05)
    assert estimator.estimate_s == 0.05
    assert estimator.last_s == 0.05
    assert estimator.count == 1


def test_p95_of_a_window_uses_the_next_higher_observation():
    estimator = LatencyEstimator(quantile=0.95, window=20, initial_s=0.0)
    for latency_ms in range(1, 21):  # 1..20 ms
        estimator.observe(latency_ms / 1000)
    # position 0.95 * 19 = 18.05 -> the 20th value (20 ms), never the interpolated 19.05 ms
    assert estimator.estimate_s == pytest.approx(0.020)
    assert estimator.median_s == pytest.approx(0.011)


def test_the_window_forgets_old_spikes():
    estimator = LatencyEstimator(quantile=1.0, window=3, initial_s=0.0)
    for latency in (0.5, 0.1, 0.1, 0.1):
        estimator.observe(latency)
    assert estimator.estimate_s == 0.1
    assert estimator.count == 3


def test_matches_numpy_quantile_higher_on_random_windows():
    rng = np.random.default_rng(3)
    estimator = LatencyEstimator(quantile=0.9, window=7, initial_s=0.0)
    seen = []
    for latency in rng.lognormal(-2.6, 0.3, 50):
        estimator.observe(latency)
        seen.append(latency)
        expected = np.quantile(seen[-7:], 0.9, method='higher')
        assert estimator.estimate_s == expected


def test_reset_returns_to_the_initial_guess():
    estimator = LatencyEstimator(initial_s=0.2)
    estimator.observe(0.07)
    estimator.reset()
    assert estimator.estimate_s == 0.2
    assert estimator.count == 0


@pytest.mark.parametrize('kwargs', [dict(quantile=0.0), dict(window=0), dict(initial_s=-1.0)])
def test_bad_settings_raise(kwargs):
    with pytest.raises(ValueError, match='expected'):
        LatencyEstimator(**kwargs)


@pytest.mark.parametrize('latency', [-0.01, float('nan'), float('inf')])
def test_bad_observations_raise(latency):
    with pytest.raises(ValueError, match='expected a finite latency'):
        LatencyEstimator().observe(latency)
