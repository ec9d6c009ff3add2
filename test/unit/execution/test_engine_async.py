"""ExecutionEngine in async mode over literal timelines (times in seconds, rates in Hz)."""

import numpy as np
import pytest

from openvla_ros.execution import ExecutionConfig, ExecutionEngine


def ramp(steps, offset=0.0):
    """Make a (steps, 2) chunk: dimension 0 is offset + k, dimension 1 is 10 k."""
    k = np.arange(steps, dtype=np.float64)
    return np.stack([offset + k, 10.0 * k], axis=1)


def engine_at_10hz(**overrides):
    """Actions and ticks both at 10 Hz, steps held: step k is exactly what a tick publishes."""
    settings = dict(action_rate_hz=10.0, control_rate_hz=10.0, interpolation='hold')
    settings.update(overrides)
    return ExecutionEngine(ExecutionConfig(**settings))


def steps_at(engine, times):
    """(chunk_id, step, dimension-0 value, fresh) per tick, None where nothing is published."""
    out = []
    for now in times:
        result = engine.tick(now)
        out.append(None if result is None else
                   (result.chunk_id, result.step, float(result.action[0]), result.fresh))
    return out


def test_step_k_is_due_at_t_obs_plus_k_over_the_action_rate():
    engine = engine_at_10hz()
    assert engine.push_chunk(ramp(4), t_obs=1.0, now=1.0)
    published = steps_at(engine, [1.0, 1.05, 1.1, 1.199, 1.2, 1.3, 1.4])
    assert [p[1] for p in published] == [0, 0, 1, 1, 2, 3, 3]
    assert [p[3] for p in published] == [True] * 6 + [False]  # 1.4: past the last period


def test_steps_due_while_the_model_ran_are_skipped_and_counted():
    engine = engine_at_10hz(resume_after_stall=False)
    engine.inference_started(0.0)
    assert engine.push_chunk(ramp(8), t_obs=0.0, now=0.25)
    assert steps_at(engine, [0.3, 0.4]) == [(0, 3, 3.0, True), (0, 4, 4.0, True)]
    assert engine.counters.skipped_stale_steps == 3


def test_the_first_chunk_starts_at_step_zero_because_the_arm_stood_still():
    engine = engine_at_10hz()  # resume_after_stall: nothing moved while the model ran
    engine.inference_started(0.0)
    assert engine.push_chunk(ramp(8), t_obs=0.0, now=0.25)
    assert steps_at(engine, [0.3, 0.4, 0.5]) == [(0, 0, 0.0, True), (0, 1, 1.0, True),
                                                 (0, 2, 2.0, True)]
    assert engine.counters.skipped_stale_steps == 0


def test_a_new_chunk_takes_over_at_its_current_step():
    engine = engine_at_10hz()
    engine.push_chunk(ramp(8), t_obs=0.0, now=0.0)
    assert [p[1] for p in steps_at(engine, [0.0, 0.1, 0.2])] == [0, 1, 2]
    assert engine.push_chunk(ramp(8, offset=100.0), t_obs=0.15, now=0.27)
    result = engine.tick(0.3)  # (0.3 - 0.15) * 10 = 1.5: step 1 of the new chunk
    assert (result.chunk_id, result.step, result.action[0], result.switched) == \
        (1, 1, 101.0, True)
    assert engine.counters.skipped_stale_steps == 1
    assert engine.counters.switches == 1
    # |101 - 2| on dimension 0, |10 - 20| on dimension 1
    assert engine.counters.max_switch_discontinuity == pytest.approx(99.0)
    assert steps_at(engine, [0.4]) == [(1, 2, 102.0, True)]


def test_a_chunk_arriving_after_an_underrun_resumes_where_the_arm_stopped():
    # A covers [0, 0.4); B was observed at 0.25 and arrives at 0.52, after 0.12 s of holding.
    resumed, skipping = engine_at_10hz(), engine_at_10hz(resume_after_stall=False)
    for engine in (resumed, skipping):
        engine.push_chunk(ramp(4), t_obs=0.0, now=0.0)
        assert [p[3] for p in steps_at(engine, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5])] == \
            [True] * 4 + [False] * 2
        engine.push_chunk(ramp(8, offset=100.0), t_obs=0.25, now=0.52)
    # The arm moved from 0.25 to 0.4 only: B continues at 1.5 steps, not at (0.6 - 0.25) * 10.
    assert steps_at(resumed, [0.6, 0.7]) == [(1, 1, 101.0, True), (1, 2, 102.0, True)]
    assert steps_at(skipping, [0.6, 0.7]) == [(1, 3, 103.0, True), (1, 4, 104.0, True)]
    assert (resumed.counters.skipped_stale_steps, skipping.counters.skipped_stale_steps) == (1, 3)


@pytest.mark.parametrize('t_obs', [0.1, 0.2])
def test_a_chunk_not_newer_than_the_current_one_is_discarded(t_obs):
    engine = engine_at_10hz()
    assert engine.push_chunk(ramp(8), t_obs=0.2, now=0.25)
    assert not engine.push_chunk(ramp(8, offset=50.0), t_obs=t_obs, now=0.26)
    assert engine.counters.chunks_received == 2
    assert engine.counters.chunks_discarded == 1
    assert engine.counters.last_discard_reason == 'observation not newer than the current chunk'
    assert engine.tick(0.3).chunk_id == 0


def test_next_chunk_is_requested_when_time_left_drops_below_latency_estimate_plus_margin():
    engine = engine_at_10hz(latency_margin_s=0.05, resume_after_stall=False)
    assert engine.needs_inference(0.0)  # nothing buffered
    engine.inference_started(0.0)
    assert not engine.needs_inference(0.01)  # one in flight
    engine.push_chunk(ramp(10), t_obs=0.0, now=0.08)  # covers [0, 1.0); latency 0.08
    assert engine.latency_estimate_s == pytest.approx(0.08)
    # Requested once less than 0.08 + 0.05 s is left: after 0.87 s.
    assert not engine.needs_inference(0.86)
    assert engine.needs_inference(0.88)


def test_the_latency_estimate_follows_the_p95_of_observed_latencies():
    engine = engine_at_10hz(latency_quantile=0.95, latency_window=20, latency_initial_s=1.0)
    assert engine.latency_estimate_s == 1.0
    t = 0.0
    for i in range(20):
        latency = 0.05 if i != 7 else 0.2  # one slow inference in twenty
        engine.inference_started(t)
        engine.push_chunk(ramp(2), t_obs=t, now=t + latency)
        t += 1.0
    assert engine.latency_estimate_s == pytest.approx(0.2)
    assert engine.counters.latency_p50_s == pytest.approx(0.05)
    assert engine.counters.latency_last_s == pytest.approx(0.05)


def test_latency_counts_from_inference_start_or_else_from_the_observation():
    engine = engine_at_10hz()
    engine.inference_started(1.0)
    engine.push_chunk(ramp(8), t_obs=0.99, now=1.08)
    assert engine.counters.latency_last_s == pytest.approx(0.08)
    engine.push_chunk(ramp(8), t_obs=1.5, now=1.6)  # no inference_started
    assert engine.counters.latency_last_s == pytest.approx(0.1)


def test_inference_failed_clears_the_request():
    engine = engine_at_10hz()
    engine.inference_started(0.0)
    engine.inference_failed(0.3)
    assert engine.needs_inference(0.3)
    assert engine.counters.inferences_failed == 1
    assert engine.counters.latency_last_s != engine.counters.latency_last_s  # still NaN


def test_underrun_hold_repeats_the_last_absolute_action_and_counts():
    engine = engine_at_10hz(underrun_policy='hold')
    engine.push_chunk(ramp(2), t_obs=0.0, now=0.0)
    published = steps_at(engine, [0.0, 0.1, 0.2, 0.3])
    assert published == [(0, 0, 0.0, True), (0, 1, 1.0, True), (0, 1, 1.0, False),
                         (0, 1, 1.0, False)]
    counters = engine.counters
    assert (counters.ticks, counters.published, counters.held, counters.underruns) == \
        (4, 4, 2, 2)


def test_underrun_silent_publishes_nothing_but_counts():
    engine = engine_at_10hz(underrun_policy='silent')
    engine.push_chunk(ramp(2), t_obs=0.0, now=0.0)
    assert steps_at(engine, [0.0, 0.1, 0.2, 0.3])[2:] == [None, None]
    assert (engine.counters.underruns, engine.counters.published) == (2, 2)


def test_ticks_before_the_first_chunk_are_not_underruns():
    engine = engine_at_10hz()
    assert steps_at(engine, [0.0, 0.1]) == [None, None]
    assert engine.counters.underruns == 0


def test_no_action_older_than_max_action_age_is_published_held_ones_included():
    engine = engine_at_10hz(max_action_age_s=0.5, underrun_policy='hold')
    engine.push_chunk(ramp(10), t_obs=0.0, now=0.0)
    published = steps_at(engine, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    assert [p[1] for p in published[:6]] == [0, 1, 2, 3, 4, 5]
    assert published[6:] == [None, None]
    assert engine.counters.stale_drops == 2


def test_a_chunk_older_than_max_action_age_on_arrival_is_discarded():
    engine = engine_at_10hz(max_action_age_s=0.5)
    assert not engine.push_chunk(ramp(10), t_obs=0.0, now=0.6)
    assert engine.counters.last_discard_reason == 'observation older than max_action_age_s'


def test_a_chunk_whose_steps_are_all_past_is_discarded_with_its_steps_counted():
    engine = engine_at_10hz()
    engine.push_chunk(ramp(8), t_obs=0.0, now=0.0)
    steps_at(engine, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert not engine.push_chunk(ramp(3, offset=10.0), t_obs=0.1, now=0.45)  # ended at 0.4
    assert engine.counters.last_discard_reason == 'every step is already past'
    assert engine.counters.skipped_stale_steps == 3


def test_linear_interpolation_between_steps_but_hold_dims_are_held():
    config = ExecutionConfig(action_rate_hz=10.0, control_rate_hz=40.0, interpolation='linear',
                             hold_dims=(1,))
    engine = ExecutionEngine(config)
    chunk = np.array([[0.0, -1.0], [10.0, 1.0], [20.0, -1.0]])
    engine.push_chunk(chunk, t_obs=0.0, now=0.0)
    values = [engine.tick(t).action.tolist() for t in (0.0, 0.025, 0.05, 0.075, 0.1, 0.25)]
    assert values == [[0.0, -1.0], [2.5, -1.0], [5.0, -1.0], [7.5, -1.0], [10.0, 1.0],
                      [20.0, -1.0]]  # the last step has no successor: held


def test_time_going_backwards_flushes_everything():
    engine = engine_at_10hz()
    engine.push_chunk(ramp(8), t_obs=5.0, now=5.0)
    engine.inference_started(5.05)
    assert engine.tick(5.1).fresh
    assert engine.tick(1.0) is None  # the clock jumped back (e.g. a simulator reset)
    assert engine.counters.resets == 1
    assert engine.counters.last_reset_reason == 'time went backwards'
    assert engine.counters.underruns == 0
    # The inference that was running comes back stamped on the old timeline.
    assert not engine.push_chunk(ramp(8), t_obs=5.05, now=1.05)
    assert engine.counters.last_discard_reason == 'observation time is in the future'
    assert engine.push_chunk(ramp(8, offset=7.0), t_obs=1.06, now=1.08)
    assert engine.tick(1.1).action[0] == 7.0


def test_reset_flushes_and_refuses_chunks_observed_before_it():
    engine = engine_at_10hz()
    engine.push_chunk(ramp(8), t_obs=0.0, now=0.0)
    engine.inference_started(0.2)
    engine.tick(0.0)
    engine.reset('new instruction', now=0.3)
    assert engine.tick(0.35) is None
    assert engine.counters.underruns == 0  # nothing to resume after a reset
    assert not engine.push_chunk(ramp(8, offset=50.0), t_obs=0.2, now=0.4)
    assert engine.counters.last_discard_reason == 'observation predates the last reset'
    assert engine.push_chunk(ramp(8, offset=60.0), t_obs=0.31, now=0.4)
    assert engine.tick(0.45).action[0] == 60.0
    assert engine.counters.last_reset_reason == 'new instruction'


def test_non_finite_chunks_are_discarded_not_raised():
    engine = engine_at_10hz()
    chunk = ramp(4)
    chunk[2, 1] = np.nan
    assert not engine.push_chunk(chunk, t_obs=0.0, now=0.0)
    assert engine.counters.last_discard_reason == 'non-finite actions'
    assert engine.tick(0.0) is None


@pytest.mark.parametrize('actions, message', [
    (np.zeros(4), r'expected actions of shape \(H, A\), got shape \(4,\)'),
    (np.zeros((0, 2)), r'got shape \(0, 2\)'),
    ([['a', 'b']], 'expected a numeric'),
])
def test_malformed_chunks_raise(actions, message):
    with pytest.raises(ValueError, match=message):
        engine_at_10hz().push_chunk(actions, t_obs=0.0, now=0.0)


def test_chunk_shape_must_match_settings_and_earlier_chunks():
    engine = engine_at_10hz(execute_steps=4, hold_dims=(1,))
    with pytest.raises(ValueError, match='at least execute_steps=4 steps, got 3'):
        engine.push_chunk(np.zeros((3, 2)), t_obs=0.0, now=0.0)
    with pytest.raises(ValueError, match=r'more than 1 action dimensions .* got 1'):
        engine.push_chunk(np.zeros((4, 1)), t_obs=0.0, now=0.0)
    engine.push_chunk(np.zeros((4, 2)), t_obs=0.0, now=0.0)
    with pytest.raises(ValueError, match='expected 2 action dimensions as before, got 3'):
        engine.push_chunk(np.zeros((4, 3)), t_obs=0.1, now=0.1)


def test_execute_steps_caps_async_chunks_too():
    engine = engine_at_10hz(execute_steps=2)
    engine.push_chunk(ramp(8), t_obs=0.0, now=0.0)
    assert [p[3] for p in steps_at(engine, [0.0, 0.1, 0.2])] == [True, True, False]


def test_published_actions_are_read_only_so_a_hold_cannot_be_corrupted():
    engine = engine_at_10hz()
    engine.push_chunk(ramp(1), t_obs=0.0, now=0.0)
    action = engine.tick(0.0).action
    with pytest.raises(ValueError):
        action[0] = 99.0


def test_epoch_scale_timestamps_keep_step_boundaries():
    engine = engine_at_10hz()
    t0 = 1_760_000_000.1  # seconds since the epoch: ~2e-7 s resolution
    engine.push_chunk(ramp(4), t_obs=t0, now=t0)
    assert [p[1] for p in steps_at(engine, [t0 + 0.1 * k for k in range(4)])] == [0, 1, 2, 3]


def test_counters_as_dict_for_diagnostics():
    engine = engine_at_10hz()
    counters = engine.counters.as_dict()
    for key in ('ticks', 'published', 'underruns', 'skipped_stale_steps', 'chunks_received',
                'chunks_discarded', 'max_switch_discontinuity', 'latency_estimate_s'):
        assert key in counters
    assert counters['latency_estimate_s'] == 0.1  # the initial guess
