"""When the arm stood still, so a chunk can tell how far the arm got along its plan."""

from collections import deque
import math


class MotionLog:
    """Standstills of the arm (ticks without a fresh action) on the caller's clock.

    A chunk plans its steps as if the arm moved all the time from the observation on. If the arm
    stood still for part of that time (before the first action, during an underrun), the steps
    planned for the standstill were never executed; `moved_since` tells how much of the time
    since the observation the arm actually moved. After a reset the arm stands still.
    """

    def __init__(self, max_kept: int = 64):
        self._finished = deque(maxlen=max_kept)  # (start, end) of past standstills
        self.stalled_since_s = -math.inf  # start of the current standstill; None while moving

    def reset(self) -> None:
        """Forget the history; the arm stands still from now on."""
        self._finished.clear()
        self.stalled_since_s = -math.inf

    def stop(self, t: float) -> None:
        """Record that the arm stopped at `t` (ignored while it already stands still)."""
        if self.stalled_since_s is None:
            self.stalled_since_s = t

    def move(self, now: float) -> None:
        """Record that the arm got a fresh action at `now`."""
        if self.stalled_since_s is not None:
            self._finished.append((self.stalled_since_s, now))
            self.stalled_since_s = None

    def moved_since(self, t_from: float, now: float) -> float:
        """Time the arm was moving between `t_from` and `now`."""
        moved = now - t_from
        stalls = list(self._finished)
        if self.stalled_since_s is not None:
            stalls.append((self.stalled_since_s, now))
        for start, end in stalls:
            moved -= max(0.0, min(end, now) - max(start, t_from))
        return max(moved, 0.0)
