"""Property tests: random latencies, tick jitter and settings; invariants that must always hold.

A small driver plays the node: it ticks at the control rate with jitter, starts an inference
whenever the engine asks, and pushes the chunk when the drawn latency has passed. Chunks encode
where each value came from, so the invariants are checked from the published numbers, not from
the engine's own bookkeeping.
"""

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np

from openvla_ros.execution import ExecutionConfig, ExecutionEngine

EPS = 1e-9


@dataclass
class Pushed:
    seq: int  # order of the inference
    t_obs: float
    arrival: float
    actions: np.ndarray
    accepted: bool


def drive(config, horizon, latencies, jitters, camera_delays, duration_s, make_chunk,
          replays=()):
    """Run a fake node; returns (ticks as (now, result), pushed chunks, engine).

    After the inferences numbered in `replays`, the previous chunk is delivered once more (a
    late duplicate, as a second worker or a reset race could produce).
    """
    engine = ExecutionEngine(config)
    period = 1.0 / config.control_rate_hz
    ticks, pushed, pending = [], [], None
    for i in range(int(duration_s * config.control_rate_hz)):
        now = i * period + jitters[i % len(jitters)] * period
        if pending is not None and pending.arrival <= now:
            pending.accepted = engine.push_chunk(pending.actions, pending.t_obs, pending.arrival)
            pushed.append(pending)
            if pending.seq in replays and pending.seq > 0:
                old = pushed[pending.seq - 1]
                assert not engine.push_chunk(old.actions, old.t_obs, pending.arrival)
            pending = None
        ticks.append((now, engine.tick(now)))
        if pending is None and engine.needs_inference(now):
            engine.inference_started(now)
            seq = len(pushed)
            t_obs = now - camera_delays[seq % len(camera_delays)]
            latency = latencies[seq % len(latencies)]
            pending = Pushed(seq, t_obs, now + latency, make_chunk(seq, horizon), False)
    return ticks, pushed, engine


def labelled_chunk(seq, horizon):
    """Dimension 0 = 1000 * (seq + 1) + step: every published value names its source."""
    return (1000.0 * (seq + 1) + np.arange(horizon, dtype=np.float64))[:, None]


def one_hot_chunk(seq, horizon):
    """Delta chunk whose step k increments dimension k by 1: sums count how often each step ran."""
    return np.eye(horizon)


timing = dict(
    latencies=st.lists(st.floats(0.005, 0.6), min_size=1, max_size=12),
    jitters=st.lists(st.floats(-0.3, 0.3), min_size=1, max_size=12),
    camera_delays=st.lists(st.floats(0.0, 0.03), min_size=1, max_size=6),
)


@settings(max_examples=150, deadline=None)
@given(mode=st.sampled_from(['sync', 'async']),
       blend=st.sampled_from(['none', 'crossfade', 'ensemble']),
       rate=st.sampled_from([10.0, 20.0, 25.0]),
       ticks_per_step=st.sampled_from([0.5, 1.0, 2.0, 5.0]),
       horizon=st.integers(2, 10),
       policy=st.sampled_from(['hold', 'silent']),
       max_age=st.floats(0.2, 2.0),
       resume=st.booleans(),
       replays=st.sets(st.integers(0, 12)),
       **timing)
def test_ownership_is_monotonic_and_no_stale_action_is_published(
        mode, blend, rate, ticks_per_step, horizon, policy, max_age, resume, replays, latencies,
        jitters, camera_delays):
    config = ExecutionConfig(execution_mode=mode, blend=blend, action_rate_hz=rate,
                             control_rate_hz=rate * ticks_per_step, interpolation='hold',
                             underrun_policy=policy, max_action_age_s=max_age,
                             resume_after_stall=resume)
    ticks, pushed, engine = drive(config, horizon, latencies, jitters, camera_delays, 4.0,
                                  labelled_chunk, replays)
    by_t_obs = {p.t_obs: p for p in pushed}
    newest_published, newest_t_obs = -1, -np.inf
    started = {}  # chunk_id -> first tick it published on
    for now, result in ticks:
        if result is None:
            continue
        assert result.chunk_id >= newest_published  # never back to an older chunk
        assert result.t_obs >= newest_t_obs  # nor to an older observation
        newest_published, newest_t_obs = result.chunk_id, result.t_obs
        source = by_t_obs[result.t_obs]
        started.setdefault(result.chunk_id, now)
        if blend == 'none' or mode == 'sync':
            # the value is exactly the reported chunk's reported step
            assert result.action[0] == 1000.0 * (source.seq + 1) + result.step
        if mode == 'async':
            assert now - result.t_obs <= max_age + EPS
        else:  # re-based: the age counts from the first tick, and the arrival was young enough
            assert now - started[result.chunk_id] <= max_age + EPS
            assert source.arrival - source.t_obs <= max_age + EPS
    assert engine.counters.ticks == len(ticks)
    assert engine.counters.published == sum(r is not None for _, r in ticks)


@settings(max_examples=150, deadline=None)
@given(rate=st.sampled_from([10.0, 20.0]),
       ticks_per_step=st.sampled_from([0.5, 1.0, 3.0, 5.0]),
       horizon=st.integers(2, 10),
       execute_fraction=st.floats(0.1, 1.0),
       interpolation=st.sampled_from(['hold', 'linear']),
       **timing)
def test_sync_mode_publishes_every_executed_step_once_in_order(
        rate, ticks_per_step, horizon, execute_fraction, interpolation, latencies, jitters,
        camera_delays):
    execute_steps = max(1, int(round(execute_fraction * horizon)))
    config = ExecutionConfig(execution_mode='sync', action_rate_hz=rate,
                             control_rate_hz=rate * ticks_per_step, execute_steps=execute_steps,
                             interpolation=interpolation, max_action_age_s=100.0)
    ticks, pushed, _ = drive(config, horizon, latencies, jitters, camera_delays, 4.0,
                             labelled_chunk)
    runs = {}  # chunk_id -> steps of its fresh ticks, in order
    for _, result in ticks:
        if result is not None and result.fresh:
            runs.setdefault(result.chunk_id, []).append(result.step)
    finished = sorted(runs)[:-1]  # the last chunk may still be running when the drive stops
    for chunk_id in finished:
        steps = runs[chunk_id]
        assert sorted(set(steps)) == list(range(execute_steps))  # every step, none beyond
        assert steps == sorted(steps)  # in order, each as one contiguous run
    assert all(p.accepted for p in pushed)


@settings(max_examples=150, deadline=None)
@given(mode=st.sampled_from(['sync', 'async']),
       rate=st.sampled_from([10.0, 20.0]),
       ticks_per_step=st.sampled_from([0.5, 1.0, 2.0, 3.0, 5.0]),
       horizon=st.integers(2, 10),
       resume=st.booleans(),
       **timing)
def test_delta_steps_are_never_over_applied_and_whole_in_between(
        mode, rate, ticks_per_step, horizon, resume, latencies, jitters, camera_delays):
    config = ExecutionConfig(execution_mode=mode, action_kind='delta', action_rate_hz=rate,
                             control_rate_hz=rate * ticks_per_step, max_action_age_s=100.0,
                             resume_after_stall=resume)
    ticks, _, _ = drive(config, horizon, latencies, jitters, camera_delays, 4.0, one_hot_chunk)
    applied = {}  # chunk_id -> (horizon,) how much of each step was published
    for _, result in ticks:
        if result is not None:
            assert result.fresh or not result.action.any()  # a hold never repeats increments
            applied[result.chunk_id] = applied.get(result.chunk_id, 0.0) + result.action
    last = max(applied, default=None)  # None: every chunk arrived too late (no resume)
    for chunk_id, fractions in applied.items():
        assert np.all(fractions > -EPS) and np.all(fractions < 1.0 + EPS)  # never over-applied
        touched = np.flatnonzero(fractions > EPS)
        if touched.size == 0:
            continue
        inner = fractions[touched[0] + 1:touched[-1]]
        np.testing.assert_allclose(inner, 1.0)  # no step skipped or split between the ends
        if mode == 'sync' and chunk_id != last:
            np.testing.assert_allclose(fractions, 1.0)  # the whole chunk, exactly once


@settings(max_examples=100, deadline=None)
@given(latency_low=st.floats(0.005, 0.1),
       spread=st.floats(0.0, 0.08),
       draws=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=20),
       jitters=st.lists(st.floats(-0.1, 0.1), min_size=1, max_size=12),
       camera_delays=st.lists(st.floats(0.0, 0.02), min_size=1, max_size=6),
       blend=st.sampled_from(['none', 'crossfade', 'ensemble']))
def test_async_never_underruns_while_latency_allows_it(
        latency_low, spread, draws, jitters, camera_delays, blend):
    """The async target, for 8 steps at 20 Hz (0.4 s) and control at 100 Hz.

    With one inference at a time, chunk n+1 can be requested only once chunk n arrived, so no
    underrun is guaranteed while 2 * latency + control period (+ jitter) + image age <= 0.4 s,
    and latencies exceed the scheduling estimate by less than the margin minus one control
    period: here latency in [low, low + 0.08] with low <= 0.1, margin 0.1.
    """
    latencies = [latency_low + spread * d for d in draws]
    config = ExecutionConfig(action_rate_hz=20.0, control_rate_hz=100.0, blend=blend,
                             latency_margin_s=0.1)
    ticks, pushed, engine = drive(config, 8, latencies, jitters, camera_delays, 6.0,
                                  labelled_chunk)
    assert engine.counters.underruns == 0
    assert engine.counters.chunks_discarded == 0
    first = next(i for i, (_, r) in enumerate(ticks) if r is not None)
    assert all(r is not None and r.fresh for _, r in ticks[first:])
    assert len(pushed) >= 6.0 / 0.4  # it kept re-querying all along
