"""ExecutionEngine in sync mode (upstream: execute the chunk, then query and wait)."""

import numpy as np

from openvla_ros.execution import ExecutionConfig, ExecutionEngine


def ramp(steps, offset=0.0):
    """Make a (steps, 1) chunk whose value is offset + step index."""
    return offset + np.arange(steps, dtype=np.float64)[:, None]


def sync_engine(**overrides):
    settings = dict(execution_mode='sync', action_rate_hz=10.0, control_rate_hz=10.0,
                    interpolation='hold')
    settings.update(overrides)
    return ExecutionEngine(ExecutionConfig(**settings))


def test_execute_steps_then_request_and_hold_until_the_next_chunk():
    engine = sync_engine(execute_steps=3)
    assert engine.needs_inference(0.0)
    engine.inference_started(0.0)
    engine.push_chunk(ramp(5), t_obs=0.0, now=0.23)
    # Re-based: step 0 on the first tick after arrival although it was due at 0.0.
    results = [engine.tick(t) for t in (0.3, 0.4, 0.5)]
    assert [(r.step, r.action[0], r.fresh) for r in results] == \
        [(0, 0.0, True), (1, 1.0, True), (2, 2.0, True)]
    assert not engine.needs_inference(0.5)  # step 2's period runs until 0.6
    held = engine.tick(0.6)
    assert (held.step, held.action[0], held.fresh) == (2, 2.0, False)
    assert engine.needs_inference(0.6)
    engine.inference_started(0.6)
    assert not engine.needs_inference(0.65)
    engine.push_chunk(ramp(5, offset=10.0), t_obs=0.6, now=0.68)
    switched = engine.tick(0.7)
    assert (switched.chunk_id, switched.step, switched.action[0], switched.switched) == \
        (1, 0, 10.0, True)
    assert engine.counters.skipped_stale_steps == 0
    assert engine.counters.underruns == 1


def test_each_step_is_held_over_the_control_ticks_of_its_period():
    engine = sync_engine(execute_steps=3, control_rate_hz=100.0)
    engine.push_chunk(ramp(5), t_obs=0.0, now=0.0)
    steps = []
    for i in range(40):
        result = engine.tick(i / 100.0)
        steps.append(result.step if result.fresh else 'hold')
    assert steps == [0] * 10 + [1] * 10 + [2] * 10 + ['hold'] * 10


def test_linear_interpolation_in_sync_mode_stops_at_the_last_executed_step():
    engine = sync_engine(execute_steps=2, control_rate_hz=40.0, interpolation='linear')
    engine.push_chunk(ramp(5), t_obs=0.0, now=0.0)
    values = [float(engine.tick(i / 40.0).action[0]) for i in range(9)]
    # step 1 is the last executed one: held, not interpolated towards step 2
    assert values == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0]


def test_a_late_tick_makes_the_chunk_lag_never_skip():
    engine = sync_engine()
    engine.push_chunk(ramp(5), t_obs=0.0, now=0.0)
    steps = [engine.tick(t).step for t in (0.0, 0.1, 0.35, 0.4, 0.5)]
    assert steps == [0, 1, 2, 3, 4]  # at 0.35 step 3 was due, step 2 still comes first
    assert engine.counters.skipped_stale_steps == 0


def test_ticks_slower_than_actions_still_execute_every_step_once():
    engine = sync_engine(control_rate_hz=5.0)
    engine.push_chunk(ramp(4), t_obs=0.0, now=0.0)
    results = [engine.tick(t) for t in (0.0, 0.2, 0.4, 0.6, 0.8)]
    assert [r.step for r in results] == [0, 1, 2, 3, 3]
    assert [r.fresh for r in results] == [True] * 4 + [False]


def test_a_sync_chunk_arriving_older_than_max_action_age_is_discarded():
    engine = sync_engine(max_action_age_s=1.0)
    assert not engine.push_chunk(ramp(5), t_obs=0.0, now=1.5)
    assert engine.counters.last_discard_reason == 'observation older than max_action_age_s'


def test_in_sync_mode_the_age_counts_from_the_re_based_start():
    engine = sync_engine(max_action_age_s=1.0)
    engine.push_chunk(ramp(20), t_obs=0.0, now=0.45)  # 0.45 s old on arrival: accepted
    results = [engine.tick(0.5 + 0.1 * i) for i in range(13)]
    fresh_steps = [r.step for r in results if r is not None and r.fresh]
    assert fresh_steps == list(range(11))  # 0.5 .. 1.5: at most 1.0 s after the start
    assert results[11:] == [None, None]  # not even held: older than 1.0 s
    assert engine.counters.stale_drops == 2


def test_a_newer_chunk_pushed_early_takes_over_in_sync_mode_too():
    engine = sync_engine()
    engine.push_chunk(ramp(8), t_obs=0.0, now=0.0)
    engine.tick(0.0)
    engine.push_chunk(ramp(8, offset=20.0), t_obs=0.05, now=0.08)
    result = engine.tick(0.1)
    assert (result.chunk_id, result.step, result.action[0]) == (1, 0, 20.0)
