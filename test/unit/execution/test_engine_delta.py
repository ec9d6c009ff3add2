"""Delta actions: split over the control ticks of a period, never over-applied."""

import numpy as np
import pytest

from openvla_ros.execution import ExecutionConfig, ExecutionEngine

# Two delta dimensions and an absolute gripper (dimension 2).
CHUNK = np.array([[1.0, -0.5, 1.0],
                  [2.0, 0.5, 1.0],
                  [4.0, 1.5, -1.0]])


def delta_engine(**overrides):
    settings = dict(action_kind='delta', action_rate_hz=10.0, control_rate_hz=50.0,
                    hold_dims=(2,))
    settings.update(overrides)
    return ExecutionEngine(ExecutionConfig(**settings))


@pytest.mark.parametrize('mode', ['sync', 'async'])
def test_each_step_is_split_evenly_over_its_five_ticks(mode):
    engine = delta_engine(execution_mode=mode)
    engine.push_chunk(CHUNK, t_obs=0.0, now=0.0)
    actions = np.array([engine.tick(i / 50.0).action for i in range(15)])  # (15, 3)
    np.testing.assert_allclose(actions[:, 0], [0.2] * 5 + [0.4] * 5 + [0.8] * 5)
    np.testing.assert_allclose(actions[:, 1], [-0.1] * 5 + [0.1] * 5 + [0.3] * 5)
    # the gripper is absolute: published as is, never divided
    np.testing.assert_array_equal(actions[:, 2], [1.0] * 10 + [-1.0] * 5)
    np.testing.assert_allclose(actions[:, :2].sum(axis=0), CHUNK[:, :2].sum(axis=0))


def test_hold_on_underrun_publishes_zero_increments_and_keeps_the_gripper():
    engine = delta_engine(underrun_policy='hold')
    engine.push_chunk(CHUNK, t_obs=0.0, now=0.0)
    for i in range(15):
        engine.tick(i / 50.0)
    held = engine.tick(0.3)
    assert not held.fresh
    np.testing.assert_array_equal(held.action, [0.0, 0.0, -1.0])


@pytest.mark.parametrize('control_hz', [3.0, 7.0, 10.0, 13.0, 50.0, 100.0, 170.0])
def test_the_sum_of_a_chunk_is_preserved_at_any_control_rate(control_hz):
    rng = np.random.default_rng(int(control_hz))
    chunk = rng.normal(size=(8, 3))
    engine = delta_engine(control_rate_hz=control_hz)
    t_obs = 0.013
    engine.push_chunk(chunk, t_obs=t_obs, now=t_obs)
    period = 1.0 / control_hz
    times = t_obs + period * np.arange(int(1.2 * control_hz) + 2)
    times[1:] += rng.uniform(-0.3, 0.3, times.size - 1) * period  # jittery, still increasing
    total = sum(r.action[:2] for r in map(engine.tick, times) if r.fresh)
    np.testing.assert_allclose(total, chunk[:, :2].sum(axis=0), atol=1e-12)
    assert engine.counters.skipped_stale_steps == 0


def test_sync_mode_preserves_the_sum_of_the_executed_steps_with_late_ticks():
    engine = delta_engine(execution_mode='sync', execute_steps=2, control_rate_hz=20.0)
    engine.push_chunk(CHUNK, t_obs=0.0, now=0.0)
    times = [0.0, 0.05, 0.2, 0.22, 0.25, 0.3, 0.35]  # a 0.15 s stall after the second tick
    results = [engine.tick(t) for t in times]
    total = sum(r.action[:2] for r in results if r.fresh)
    np.testing.assert_allclose(total, CHUNK[:2, :2].sum(axis=0))
    # two sub-steps per step (20 Hz / 10 Hz); the stalled tick catches up step 1 only
    assert [float(r.action[0]) for r in results[:3]] == [0.5, 0.5, 2.0]
    assert [r.fresh for r in results] == [True] * 3 + [False] * 4


def test_sync_mode_catches_up_at_most_one_step_per_tick():
    engine = delta_engine(execution_mode='sync', control_rate_hz=10.0)
    engine.push_chunk(CHUNK, t_obs=0.0, now=0.0)
    results = [engine.tick(t) for t in (0.0, 0.25, 0.26, 0.3)]
    assert [float(r.action[0]) for r in results[:3]] == [1.0, 2.0, 4.0]
    assert not results[3].fresh


def test_after_a_stalled_control_loop_at_most_one_action_period_is_caught_up():
    engine = delta_engine(execution_mode='async')
    engine.push_chunk(CHUNK, t_obs=0.0, now=0.0)
    first = engine.tick(0.0).action[0]
    late = engine.tick(0.25).action[0]  # 0.25 s without a tick: steps 0-2 were all due
    assert first == pytest.approx(0.2)
    # only (0.15, 0.25]: the rest of step 1 (0.2 .. 0.3 was step 2) -> 4 sub-steps of 2 + 1 of 4
    assert late == pytest.approx(0.4 * 2 + 0.8 * 3)
    assert engine.counters.skipped_stale_steps == 0  # step 1 was partly published


def test_a_new_chunk_never_repeats_increments_the_previous_one_already_published():
    engine = delta_engine()
    ones = np.ones((4, 3))
    engine.push_chunk(ones, t_obs=0.0, now=0.0)
    published = [engine.tick(i / 50.0).action[0] for i in range(6)]  # 0 .. 0.1
    engine.push_chunk(ones * 3.0, t_obs=0.05, now=0.11)
    published += [engine.tick(i / 50.0).action[0] for i in range(6, 11)]  # 0.12 .. 0.2
    # 0.2 per tick from the first chunk, then 0.6 per tick: one tick's worth each time
    np.testing.assert_allclose(published, [0.2] * 6 + [0.6] * 5)


def test_a_resumed_chunk_skips_the_sub_step_the_previous_chunk_partly_covered():
    engine = delta_engine(execution_mode='async')
    engine.push_chunk(np.ones((2, 3)), t_obs=0.0, now=0.0)  # covers [0, 0.2)
    fresh = [engine.tick(i / 50.0).fresh for i in range(12)]  # 0.0 .. 0.22
    assert fresh == [True] * 10 + [False] * 2
    # B was observed at 0.097: the arm then moved for 0.103 s more, i.e. into B's sub-step 5
    # (0.1 .. 0.12 of B's plan). That sub-step is dropped rather than applied on top.
    engine.push_chunk(10.0 * np.ones((4, 3)), t_obs=0.097, now=0.23)
    published = [float(engine.tick(t).action[0]) for t in np.arange(0.24, 0.52, 0.02)]
    assert published[:2] == [0.0, 2.0]
    assert sum(published) == pytest.approx(2.0 * 14)  # sub-steps 6 .. 19 of B, once each
