"""One accepted action chunk placed on the time axis, and how actions are read out of it.

Step k of a chunk is due at `t_base + k / action_rate_hz` and owns the period until step k+1.
Each step is also split into `substeps = round(control_rate_hz / action_rate_hz)` equal
sub-steps (sub-step p due at `t_base + p / (substeps * action_rate_hz)`): the unit in which a
chunk is consumed. Absolute actions are held or linearly interpolated between steps; a delta step
is spread evenly over its sub-steps and each sub-step is published exactly once, so the sum of a
chunk's increments is preserved at any control rate.
"""

import math
from typing import NamedTuple, Optional

import numpy as np

from openvla_ros.execution.config import ExecutionConfig

# A due time within this much of `now` counts as reached. Large enough to absorb the rounding of
# float seconds since the epoch (about 2e-7 s today), far below any control period.
TIME_EPS_S = 1e-6


class Reading(NamedTuple):
    """An action read out of a chunk for one tick."""

    action: np.ndarray  # (A,)
    step: int
    position: float  # in steps


class ScheduledChunk:
    """An accepted chunk: its actions, its place in time and how far it has been consumed.

    Args:
        chunk_id: increasing id given by the engine.
        actions: (H, A) array; only the first `end_step` steps are ever used.
        t_obs: time of the observation the chunk was predicted from.
        t_base: time step 0 is due (t_obs in async mode; None until the first tick in sync mode).
        end_step: number of steps used (execute_steps, capped by H).
        config: execution settings (rates, action kind, interpolation).
        hold_idx: indices of the hold dimensions.
    """

    def __init__(self, chunk_id: int, actions: np.ndarray, t_obs: float,
                 t_base: Optional[float], end_step: int, config: ExecutionConfig,
                 hold_idx: np.ndarray):
        self.chunk_id = chunk_id
        self.actions = actions  # (H, A)
        self.t_obs = t_obs
        self.t_base = t_base
        self.end_step = end_step
        self.substeps = config.substeps_per_step
        self.n_substeps = end_step * self.substeps
        self._rate_hz = config.action_rate_hz
        self._delta = config.action_kind == 'delta'
        self._linear = config.interpolation == 'linear'
        self._hold_idx = hold_idx
        # cumulative[k] = sum of steps 0..k-1, so a run of sub-steps is a difference of two rows.
        cumulative = np.zeros((end_step + 1, actions.shape[1]))  # (H+1, A)
        np.cumsum(actions[:end_step], axis=0, out=cumulative[1:])
        self._cumulative = cumulative
        self.cursor = 0  # next sub-step not yet consumed
        self.last_step = -1  # last step anything was published from
        self.first_tick_s = None  # time of the first tick that published from this chunk
        self.skipped_steps = 0  # steps passed over unpublished, for the engine's counter

    @property
    def t_end(self) -> float:
        """Time the last used step's period ends (inf while a sync chunk has not started)."""
        if self.t_base is None:
            return math.inf
        return self.t_base + self.end_step / self._rate_hz

    def position(self, now: float) -> float:
        """Return the steps elapsed since step 0 was due (2.5: halfway through step 2), >= 0."""
        return max((now - self.t_base) * self._rate_hz, 0.0)

    def substep_index(self, t: float) -> int:
        """Index of the last sub-step due at or before `t` (-1 before step 0)."""
        return math.floor((t - self.t_base + TIME_EPS_S) * self._rate_hz * self.substeps)

    def covers(self, now: float) -> bool:
        """Whether some used step's period contains `now`."""
        return self.t_base is not None and now < self.t_end - TIME_EPS_S

    def resume(self, now: float, moved_s: float) -> None:
        """Re-base the chunk to the arm's motion: it moved only `moved_s` since `t_obs`.

        The arm stood still for part of the time since the observation (before the first action,
        during an underrun), so the chunk continues from the step planned for `t_obs + moved_s`
        instead of skipping the steps planned for the standstill, which were never executed.
        """
        self.t_base = now - moved_s
        substep_rate = self._rate_hz * self.substeps
        self.cursor = max(0, math.ceil((moved_s - TIME_EPS_S) * substep_rate))

    def read_sync(self, now: float) -> Optional[Reading]:
        """Sync mode: the next sub-steps in order, at most one step per tick, none skipped.

        A late tick makes the chunk lag rather than skip. Returns None once every used step was
        published and the last one's period is over.
        """
        due = self.substep_index(now)
        if self.cursor >= self.n_substeps and due >= self.n_substeps:
            return None
        last = min(due, self.cursor + self.substeps - 1, self.n_substeps - 1)
        if last < self.cursor:  # nothing new is due: stay on the last consumed sub-step
            return self._read(None, self.cursor - 1, (self.cursor - 1) / self.substeps)
        first, self.cursor = self.cursor, last + 1
        self.last_step = last // self.substeps
        return self._read(first, last, last / self.substeps)

    def read_async(self, now: float, window_start: float) -> Optional[Reading]:
        """Async mode: what is due at `now`; steps whose period passed unpublished are skipped.

        Delta sub-steps due in (window_start, now] are summed (the caller passes the previous
        tick, so consecutive ticks never share a sub-step). Returns None once the chunk is used
        up.
        """
        due = self.substep_index(now)
        last_sub = self.n_substeps - 1
        if self._delta:
            first = max(self.cursor, self.substep_index(window_start) + 1, 0)
            last = min(due, last_sub)
            if first > last_sub:
                return self._used_up()
            if last < first:  # no increment due on this tick
                sub = min(max(due, 0), last_sub)
                return self._read(None, sub, self.position(now))
        else:
            if due > last_sub:
                return self._used_up()
            first = last = max(due, 0)
        self.skipped_steps += max(0, first // self.substeps - self.last_step - 1)
        self.last_step = last // self.substeps
        self.cursor = last + 1
        return self._read(first, last, self.position(now))

    def value_at(self, position: float) -> np.ndarray:
        """Absolute action at a position in steps, held or linearly interpolated."""
        position = min(max(position, 0.0), self.end_step - 1.0)
        step = min(int(position + TIME_EPS_S * self._rate_hz), self.end_step - 1)
        fraction = position - step
        current = self.actions[step]  # (A,)
        if not self._linear or fraction <= 0.0 or step + 1 >= self.end_step:
            return current.copy()
        value = current + fraction * (self.actions[step + 1] - current)  # (A,)
        value[self._hold_idx] = current[self._hold_idx]
        return value

    def delta_sum(self, first: int, last: int) -> np.ndarray:
        """Sum delta sub-steps first..last (inclusive); a sub-step is 1/substeps of a step."""
        return self._partial_sum(last + 1) - self._partial_sum(first)

    def _partial_sum(self, n: int) -> np.ndarray:
        """Sum of the first n sub-steps."""
        step, part = divmod(n, self.substeps)
        if part == 0:
            return self._cumulative[step]
        return self._cumulative[step] + (part / self.substeps) * self.actions[step]

    def _read(self, first: Optional[int], last: int, position: float) -> Reading:
        """Build the action for sub-steps first..last; first None: nothing new (delta: zeros)."""
        step = last // self.substeps
        if not self._delta:
            return Reading(self.value_at(position), step, position)
        if first is None:
            action = np.zeros(self.actions.shape[1])
        else:
            action = self.delta_sum(first, last)
        action[self._hold_idx] = self.actions[step, self._hold_idx]
        return Reading(action, step, position)

    def _used_up(self) -> None:
        self.skipped_steps += self.end_step - 1 - self.last_step
        self.last_step = self.end_step - 1
        return None
