"""ControlLoop: ticks on its own thread, stops, and drops (and counts) overrun deadlines."""

import threading
import time

import pytest

from openvla_ros.ros.control_loop import ControlLoop


def test_ticks_until_stopped():
    ticks = []
    loop = ControlLoop(0.01, lambda: ticks.append(threading.current_thread().name), 'ctl')
    loop.start()
    time.sleep(0.3)
    loop.stop()
    count = len(ticks)
    time.sleep(0.05)
    assert len(ticks) == count, 'ticked after stop()'
    assert count >= 10  # 30 due; generous for a loaded CI machine (timing is a bench's job)
    assert set(ticks) == {'ctl'}


def test_an_overrun_drops_missed_deadlines_instead_of_bursting():
    stamps = []

    def callback():
        stamps.append(time.monotonic())
        if len(stamps) == 3:
            time.sleep(0.055)  # overruns 5 periods of 10 ms

    loop = ControlLoop(0.01, callback)
    loop.start()
    time.sleep(0.2)
    loop.stop()
    assert loop.missed_deadlines >= 4
    gaps = [b - a for a, b in zip(stamps[3:], stamps[4:])]
    assert min(gaps[:3]) > 0.004  # no back-to-back catch-up ticks after the stall


def test_rejects_a_non_positive_period():
    with pytest.raises(ValueError, match='period_s: expected > 0, got 0'):
        ControlLoop(0, lambda: None)
