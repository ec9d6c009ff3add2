"""The chunk execution engine: chunks in (with their observation time), one action per tick out.

The caller passes every time in; the engine never reads a clock and starts no threads, so the
ROS node only has to serialise calls (one lock) and tests can drive it with literal timelines.

Typical use from a control loop at `control_rate_hz`::

    result = engine.tick(now)          # None: publish nothing this tick
    if engine.needs_inference(now):    # then, in the inference worker:
        engine.inference_started(now)  #   ... run the model on the latest observation ...
    engine.push_chunk(actions, t_obs, now)  # when the chunk is ready (any thread, same lock)
"""

import math
from typing import List, Optional

import numpy as np

from openvla_ros.execution.blending import blend_overlap
from openvla_ros.execution.chunk import ScheduledChunk, TIME_EPS_S
from openvla_ros.execution.config import ExecutionConfig
from openvla_ros.execution.intake import ALL_STEPS_PAST, checked_actions, rejection_reason
from openvla_ros.execution.latency import LatencyEstimator
from openvla_ros.execution.motion import MotionLog
from openvla_ros.execution.result import ExecutionCounters, TickResult


class ExecutionEngine:
    """Schedules inference, owns the received chunks and answers each control tick.

    Ownership: the newest accepted chunk owns every tick from its arrival on; a chunk whose
    observation is not newer than the current one's is discarded, so results never go back to
    an older chunk (blends only mix older chunks in, owned by the newest). Async chunks keep
    their time base `t_obs`, so the steps that fell due while the model ran are skipped and
    counted; sync chunks are re-based to start at the first tick after they arrive and every
    used step is published, in order.

    Args:
        config: the execution settings.
    """

    def __init__(self, config: ExecutionConfig):
        self.config = config
        self.counters = ExecutionCounters()
        self._latency = LatencyEstimator(
            config.latency_quantile, config.latency_window, config.latency_initial_s)
        self.counters.latency_estimate_s = self._latency.estimate_s
        self._sync = config.execution_mode == 'sync'
        self._delta = config.action_kind == 'delta'
        self._tick_period_s = 1.0 / config.control_rate_hz
        # Deltas due since the previous tick are caught up, but never more than this much of them
        # after a stalled control loop: one action period, or two ticks if ticks are slower.
        self._catch_up_s = max(1.0 / config.action_rate_hz, 2.0 * self._tick_period_s)
        self._hold_idx = np.array(config.hold_dims, dtype=np.intp)
        self._smooth_idx = None  # (A - len(hold_dims),) indices, known with the first chunk
        self._action_dim = None
        self._next_chunk_id = 0
        self._inflight = False
        self._inflight_since_s = None
        self._latest_time_s = -math.inf
        self._last_tick_s = None
        self._motion = MotionLog()
        self._flush()
        self._flushed_until_s = -math.inf

    # ----------------------------------------------------------------------------- inference
    def needs_inference(self, now: float) -> bool:
        """Whether a new chunk should be requested now (never while one is in flight)."""
        self._note_time(now)
        if self._inflight:
            return False
        if not self._chunks:
            return True
        chunk = self._chunks[-1]
        if self._sync:
            if chunk.t_base is None:
                return False  # arrived, starts on the next tick
            if now - chunk.t_base > self.config.max_action_age_s:
                return True
            return (chunk.cursor >= chunk.n_substeps
                    and chunk.substep_index(now) >= chunk.n_substeps)
        usable_until = min(chunk.t_end, chunk.t_obs + self.config.max_action_age_s)
        return usable_until - now < self._latency.estimate_s + self.config.latency_margin_s

    def inference_started(self, now: float) -> None:
        """Record that an inference was requested at `now`; its latency is measured on arrival."""
        self._note_time(now)
        self._inflight = True
        self._inflight_since_s = now
        self.counters.inferences_started += 1

    def inference_failed(self, now: float) -> None:
        """Record that the in-flight inference ended without a chunk."""
        self._note_time(now)
        self._inflight = False
        self._inflight_since_s = None
        self.counters.inferences_failed += 1

    def push_chunk(self, actions, t_obs: float, now: float) -> bool:
        """Offer a chunk predicted from the observation taken at `t_obs`; True if accepted.

        Ends the in-flight inference (its latency is `now` minus the `inference_started` time,
        or `now - t_obs` without one). Bad shapes raise ValueError; chunks that are non-finite,
        from the future, from before the last reset, not newer than the current chunk, older
        than `max_action_age_s` or (async) entirely in the past are discarded and counted.
        """
        actions = checked_actions(actions, self._action_dim, self.config.hold_dims,
                                  self.config.execute_steps)
        if not (math.isfinite(t_obs) and math.isfinite(now)):
            raise ValueError(f'expected finite t_obs and now, got {t_obs!r} and {now!r}')
        self._note_time(now)
        self.counters.chunks_received += 1
        self._finish_inference(now, t_obs)
        if self._action_dim is None:
            self._action_dim = actions.shape[1]
            self._smooth_idx = np.setdiff1d(np.arange(self._action_dim), self._hold_idx)
        end_step = self.config.execute_steps or actions.shape[0]
        reason = rejection_reason(
            actions, t_obs, now, end_step, newest_t_obs=self._newest_t_obs,
            flushed_until_s=self._flushed_until_s, max_action_age_s=self.config.max_action_age_s,
            action_rate_hz=self.config.action_rate_hz,
            moved_s=None if self._sync else self._moved_since(t_obs, now))
        if reason == ALL_STEPS_PAST:
            self.counters.skipped_stale_steps += end_step
        if reason:
            self.counters.chunks_discarded += 1
            self.counters.last_discard_reason = reason
            return False
        chunk = ScheduledChunk(self._next_chunk_id, actions, t_obs, None if self._sync else t_obs,
                               end_step, self.config, self._hold_idx)
        self._next_chunk_id += 1
        self._newest_t_obs = t_obs
        keep = 2 if self.config.blend == 'crossfade' and not self._sync else 1
        if self.config.blend == 'ensemble' and not self._sync:
            keep = len(self._chunks) + 1
        self._chunks = (self._chunks + [chunk])[-keep:]
        return True

    # --------------------------------------------------------------------------------- ticks
    def tick(self, now: float) -> Optional[TickResult]:
        """Return the action to publish at `now`, or None to publish nothing."""
        if not math.isfinite(now):
            raise ValueError(f'expected a finite time, got {now!r}')
        if self._last_tick_s is not None and now < self._last_tick_s:
            self.reset('time went backwards', now=now)
            self._latest_time_s = now
            self._last_tick_s = None
            self._inflight_since_s = None  # on the old timeline: no latency sample
        previous_tick_s = self._last_tick_s
        self._last_tick_s = now
        self._note_time(now)
        self.counters.ticks += 1
        chunk = self._owner(now)
        result = None if chunk is None else self._read(chunk, now, previous_tick_s)
        if result is None:
            self._motion.stop(min(now, self._owner_t_end_s))
            return self._underrun(now)
        self._motion.move(now)
        self._owner_t_end_s = chunk.t_end
        self._record(result, chunk)
        return result

    def reset(self, reason: str, now: Optional[float] = None) -> None:
        """Flush every chunk (new instruction, e-stop, deactivate, time jump).

        A chunk pushed later whose observation is not newer than `now` (default: the latest time
        the engine has seen) is discarded, so an inference already running when the reset
        happened cannot bring old actions back; it still counts as in flight until it ends.
        Counters and the latency window are kept.
        """
        self._flush()
        self._flushed_until_s = self._latest_time_s if now is None else now
        self.counters.resets += 1
        self.counters.last_reset_reason = reason

    @property
    def latency_estimate_s(self) -> float:
        """Current latency quantile used for scheduling."""
        return self._latency.estimate_s

    # ------------------------------------------------------------------------------ internals
    def _flush(self):
        self._chunks: List[ScheduledChunk] = []  # accepted, oldest first; the last one owns
        self._newest_t_obs = -math.inf
        self._last_fresh = None  # last fresh TickResult: what 'hold' repeats
        self._last_fresh_ref_s = -math.inf  # time its age counts from
        self._last_output = None  # last published action, held ones included
        self._owner_id = None  # chunk that published last
        self._stale_tick = False  # this tick's chunk was too old to publish from
        self._motion.reset()
        self._owner_t_end_s = -math.inf  # end of the last publishing chunk's last step

    def _note_time(self, now):
        self._latest_time_s = max(self._latest_time_s, now)

    def _finish_inference(self, now, t_obs):
        start = self._inflight_since_s if self._inflight and self._inflight_since_s is not None \
            else t_obs
        self._inflight = False
        self._inflight_since_s = None
        if now - start >= 0.0:
            self._latency.observe(now - start)
            self.counters.latency_last_s = self._latency.last_s
            self.counters.latency_p50_s = self._latency.median_s
            self.counters.latency_estimate_s = self._latency.estimate_s

    def _owner(self, now):
        """Return the newest chunk if it may publish at `now`; starts a waiting sync chunk."""
        if not self._chunks:
            return None
        chunk = self._chunks[-1]
        if self._sync and chunk.t_base is None:
            chunk.t_base = now  # re-based: the robot waited for this chunk
        age_ref = chunk.t_base if self._sync else chunk.t_obs
        if now - age_ref > self.config.max_action_age_s:
            self._stale_tick = True
            return None
        return chunk

    def _moved_since(self, t_from, now):
        """How long the arm moved since `t_from` (all the time without resume_after_stall)."""
        if not self.config.resume_after_stall:
            return now - t_from
        return self._motion.moved_since(t_from, now)

    def _read(self, chunk, now, previous_tick_s):
        if not self._sync and chunk.first_tick_s is None:
            moved = self._moved_since(chunk.t_obs, now)
            if moved < now - chunk.t_obs - TIME_EPS_S:
                chunk.resume(now, moved)
        if self._sync:
            reading = chunk.read_sync(now)
        else:
            if previous_tick_s is None:
                previous_tick_s = now - self._tick_period_s
            reading = chunk.read_async(now, max(previous_tick_s, now - self._catch_up_s))
        self.counters.skipped_stale_steps += chunk.skipped_steps
        chunk.skipped_steps = 0
        if reading is None:
            return None
        if chunk.first_tick_s is None:
            chunk.first_tick_s = now
        action = reading.action
        if not self._sync and not self._delta and self.config.blend != 'none':
            action = self._blend(chunk, now, action)
        switched = self._owner_id is not None and chunk.chunk_id != self._owner_id
        return TickResult(action, chunk.chunk_id, reading.step, reading.position, chunk.t_obs,
                          True, switched)

    def _blend(self, chunk, now, action):
        """Mix older chunks into the owner's absolute action (crossfade or ACT ensemble)."""
        older = [c for c in self._chunks[:-1] if self._usable(c, now)]
        if self.config.blend == 'ensemble':
            # Chunks that stop covering the present never cover it again: drop them for good.
            self._chunks = older + [chunk]
        return blend_overlap(action, chunk, older, now, self.config, self._hold_idx)

    def _usable(self, chunk, now):
        return chunk.covers(now) and now - chunk.t_obs <= self.config.max_action_age_s

    def _record(self, result, chunk):
        if result.switched:
            self.counters.switches += 1
            if not self._delta and self._last_output is not None:
                jump = float(np.max(np.abs(result.action[self._smooth_idx]
                                           - self._last_output[self._smooth_idx]),
                                    initial=0.0))
                self.counters.last_switch_discontinuity = jump
                self.counters.max_switch_discontinuity = max(
                    self.counters.max_switch_discontinuity, jump)
        result.action.flags.writeable = False  # held later: callers must not edit it in place
        self._owner_id = chunk.chunk_id
        self._last_fresh = result
        self._last_fresh_ref_s = chunk.t_base if self._sync else chunk.t_obs
        self._last_output = result.action
        self.counters.published += 1

    def _underrun(self, now):
        stale, self._stale_tick = self._stale_tick, False
        last = self._last_fresh
        if last is None:
            return None  # nothing published since the last reset: starting, not an underrun
        self.counters.underruns += 1
        hold = self.config.underrun_policy == 'hold'
        too_old = now - self._last_fresh_ref_s > self.config.max_action_age_s
        if stale or (hold and too_old):
            self.counters.stale_drops += 1
        if not hold or too_old:
            return None
        action = last.action.copy()
        if self._delta:
            action[self._smooth_idx] = 0.0  # repeating an increment would over-apply it
        self.counters.published += 1
        self.counters.held += 1
        action.flags.writeable = False
        self._last_output = action
        return TickResult(action, last.chunk_id, last.step, last.position, last.t_obs, False,
                          False)
