"""A control loop on its own thread, ticking on absolute deadlines of the monotonic clock.

Why not an rclpy timer: with a MultiThreadedExecutor a timer callback passes several threads
(wait set, dispatcher, pool worker) before it runs, and each hand-over waits for the GIL. With
inference running in the same process that costs milliseconds per tick (docs/PERFORMANCE.md,
bench_node). This thread needs one GIL hand-over per tick. Used on the wall clock only; with
use_sim_time the node keeps an rclpy timer, which follows /clock.
"""

import threading
import time
from typing import Callable, Optional


class ControlLoop:
    """Calls `callback()` every `period_s` seconds until `stop()`.

    Deadlines are absolute (start + k * period), so jitter does not accumulate. After a stall of
    more than one period, the missed deadlines are dropped rather than run back to back.
    """

    def __init__(self, period_s: float, callback: Callable[[], None], name: str = 'control'):
        if not period_s > 0:
            raise ValueError(f'period_s: expected > 0, got {period_s!r}')
        self._period_s = period_s
        self._callback = callback
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = threading.Thread(
            target=self._run, name=name, daemon=True)
        self.missed_deadlines = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        deadline = time.monotonic() + self._period_s
        while not self._stop.wait(max(0.0, deadline - time.monotonic())):
            self._callback()
            deadline += self._period_s
            late = time.monotonic() - deadline
            if late > 0:  # overran at least one period: restart the grid, count what was lost
                skipped = int(late // self._period_s) + 1
                self.missed_deadlines += skipped
                deadline += skipped * self._period_s
