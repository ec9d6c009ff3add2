"""Crossfade and ACT temporal ensembling at chunk switches (async, absolute actions)."""

import numpy as np
import pytest

from openvla_ros.execution import ExecutionConfig, ExecutionEngine
from openvla_ros.execution.blending import crossfade_weight, ensemble_weights


def test_crossfade_weight_rises_linearly_over_k_steps():
    weights = [crossfade_weight(k / 10.0, 10.0, 3) for k in range(5)]
    assert weights == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])
    assert crossfade_weight(0.05, 10.0, 3) == pytest.approx(0.375)  # continuous between steps


def test_ensemble_weights_are_acts_exponential_weights_normalised():
    np.testing.assert_allclose(ensemble_weights(3, 0.01),
                               np.exp(-0.01 * np.arange(3)) / np.exp(-0.01 * np.arange(3)).sum())
    np.testing.assert_allclose(ensemble_weights(4, 0.0), [0.25] * 4)
    assert ensemble_weights(2, 1.0)[0] > ensemble_weights(2, 1.0)[1]  # positive: older wins
    assert np.isfinite(ensemble_weights(50, -100.0)).all()  # no overflow


def test_crossfade_from_the_previous_chunk_to_the_new_one_over_three_steps():
    config = ExecutionConfig(action_rate_hz=10.0, control_rate_hz=10.0, interpolation='hold',
                             blend='crossfade', crossfade_steps=3, hold_dims=(1,))
    engine = ExecutionEngine(config)
    old = np.tile([0.0, -1.0], (10, 1))
    new = np.tile([1.0, 1.0], (10, 1))
    engine.push_chunk(old, t_obs=0.0, now=0.0)
    assert [engine.tick(t).action[0] for t in (0.0, 0.1)] == [0.0, 0.0]
    engine.push_chunk(new, t_obs=0.15, now=0.18)
    actions = np.array([engine.tick(t).action for t in (0.2, 0.3, 0.4, 0.5, 0.6)])
    np.testing.assert_allclose(actions[:, 0], [0.25, 0.5, 0.75, 1.0, 1.0])
    np.testing.assert_array_equal(actions[:, 1], [1.0] * 5)  # the gripper switches at once
    assert engine.counters.max_switch_discontinuity == pytest.approx(0.25)


def test_crossfade_ends_early_when_the_previous_chunk_runs_out():
    config = ExecutionConfig(action_rate_hz=10.0, control_rate_hz=10.0, interpolation='hold',
                             blend='crossfade', crossfade_steps=4)
    engine = ExecutionEngine(config)
    engine.push_chunk(np.zeros((3, 1)), t_obs=0.0, now=0.0)
    engine.tick(0.0)
    engine.push_chunk(np.ones((10, 1)), t_obs=0.15, now=0.18)
    assert [float(engine.tick(t).action[0]) for t in (0.2, 0.3, 0.4)] == \
        pytest.approx([0.2, 1.0, 1.0])  # the old chunk covered [0, 0.3) only


def brute_force_ensemble(chunks, t, rate_hz, decay):
    """Offline reference: average every received chunk whose steps cover t (hold), ACT weights.

    Grid for three chunks of 8 steps observed 0.1 s apart at 10 Hz (x: a step that covers t):

        t:        0.0 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9
        chunk 0:   x   x   x   x   x   x   x   x
        chunk 1:       x   x   x   x   x   x   x   x
        chunk 2:           x   x   x   x   x   x   x   x
    """
    covering = [(t_obs, actions) for t_obs, arrival, actions in chunks
                if arrival <= t and t_obs <= t < t_obs + len(actions) / rate_hz]
    values = np.array([actions[int(np.floor((t - t_obs) * rate_hz + 1e-9))]
                       for t_obs, actions in covering])  # (n, A), oldest first
    weights = np.exp(-decay * np.arange(len(covering)))
    return weights @ values / weights.sum()


@pytest.mark.parametrize('decay', [0.01, 0.5, -0.5])
def test_online_ensemble_matches_the_offline_computation(decay):
    rate_hz, horizon, latency = 10.0, 8, 0.03
    config = ExecutionConfig(action_rate_hz=rate_hz, control_rate_hz=100.0, interpolation='hold',
                             blend='ensemble', ensemble_decay=decay, max_action_age_s=5.0,
                             resume_after_stall=False)  # chunk 0 keeps t_obs as its time base
    engine = ExecutionEngine(config)
    rng = np.random.default_rng(7)
    chunks = [(0.1 * i, 0.1 * i + latency, rng.normal(size=(horizon, 3))) for i in range(12)]
    pending = list(chunks)
    for tick in range(150):
        t = tick / 100.0 + 0.001
        while pending and pending[0][1] <= t:
            t_obs, arrival, actions = pending.pop(0)
            assert engine.push_chunk(actions, t_obs=t_obs, now=arrival)
        result = engine.tick(t)
        if t < latency:
            assert result is None
            continue
        np.testing.assert_allclose(result.action, brute_force_ensemble(chunks, t, rate_hz, decay),
                                   rtol=1e-12, atol=1e-12)


def test_ensemble_keeps_the_newest_value_on_hold_dims():
    config = ExecutionConfig(action_rate_hz=10.0, control_rate_hz=10.0, interpolation='hold',
                             blend='ensemble', ensemble_decay=0.0, hold_dims=(1,))
    engine = ExecutionEngine(config)
    engine.push_chunk(np.tile([0.0, -1.0], (8, 1)), t_obs=0.0, now=0.0)
    engine.tick(0.0)
    engine.push_chunk(np.tile([1.0, 1.0], (8, 1)), t_obs=0.05, now=0.08)
    np.testing.assert_allclose(engine.tick(0.1).action, [0.5, 1.0])
