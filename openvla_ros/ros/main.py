"""Entry point of `policy_node` (ros2 run openvla_ros policy_node)."""

import os
import signal
import socket
import sys
import threading
import time

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn

from openvla_ros.ros.node import PolicyNode

# How long a thread waiting for the GIL waits before the running one must hand it over. Python's
# 5 ms default lets the inference thread delay control ticks by tens of milliseconds (GIL
# convoy); 0.2 ms keeps the control loop on time at no measurable inference cost.
GIL_SWITCH_INTERVAL_S = 0.0002


def prepare_process_for_control() -> None:
    """Process-wide settings that keep the control loop on time (bench/bench_node.py).

    Call before torch is imported. Besides the GIL switch interval: torch's CPU ops (image
    preprocessing, or the whole model on a CPU) run OpenMP threads that keep spinning after each
    op; on every core they starve the control thread (p99 tick error 3.8 ms instead of 0.2 ms
    on 2 cores). So leave one core free unless OMP_NUM_THREADS is set already.
    """
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    os.environ.setdefault('OMP_NUM_THREADS', str(max(1, (os.cpu_count() or 1) - 1)))


def make_executor(context=None) -> SingleThreadedExecutor:
    """Return the executor policy_node spins.

    Single-threaded on purpose: the subscriptions only store messages and the services and
    diagnostics are short, while the control loop and inference have threads of their own.
    rclpy's MultiThreadedExecutor keeps its dispatcher and pool threads passing the GIL around,
    which alone raised a 100 Hz loop's p99 tick error from 2 ms to 19 ms (bench_node).
    """
    return SingleThreadedExecutor(context=context)


def _interrupt_once(signum, frame) -> None:
    """Stop on the first SIGINT/SIGTERM and ignore the rest while shutting down.

    A Ctrl-C under `ros2 launch` signals the whole process group and launch forwards another
    SIGINT; the second must not interrupt the cleanup (that ended the process with -2). rclpy's
    own handler runs first and shuts the context down; `WakeOnShutdown` then ends spin().
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if not _spinning.is_set():  # configuring: nothing else would stop the loading
        raise KeyboardInterrupt
    # spinning: the shut-down context ends spin(); an exception raised here could land in the
    # middle of rclpy's task bookkeeping and leave a half-built Task behind


_spinning = threading.Event()


class WakeOnShutdown:
    """Wake the executor once a shutdown signal has shut the context down.

    rclpy's SIGINT/SIGTERM handler wakes the executor first and shuts the context down after
    (rmw first, which takes a while): an executor woken in between reads the context as ok and
    waits again, and then only an entity that becomes ready wakes it. On sim time with /clock
    stopped (the simulator ended first) none ever does, and the node hung until SIGKILL in
    about one shutdown of three. Python's wakeup fd tells this thread that a signal came; it
    waits for the context to read shut down (shuts it down itself if nothing has within
    `grace_s`: rclpy's handler replaced by another library's) and wakes the executor.
    """

    def __init__(self, executor, context, grace_s: float = 1.0):
        self._executor, self._context, self._grace_s = executor, context, grace_s
        self._receiver, self._sender = socket.socketpair()
        self._sender.setblocking(False)
        self._closed = threading.Event()
        self._previous_fd = signal.set_wakeup_fd(self._sender.fileno(),
                                                 warn_on_full_buffer=False)
        self._thread = threading.Thread(target=self._run, name='openvla_wake_on_shutdown',
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if not self._receiver.recv(1) or self._closed.is_set():
            return  # closed: the node is ending without a signal
        deadline = time.monotonic() + self._grace_s
        while self._context.ok() and time.monotonic() < deadline:
            if self._closed.wait(0.005):
                return
        self._context.try_shutdown()  # nothing to do after rclpy's handler
        self._executor.wake()

    def close(self) -> None:
        """Stop the thread before the executor is destroyed (a late wake() would race it)."""
        signal.set_wakeup_fd(self._previous_fd)
        self._closed.set()
        self._sender.close()  # the receiver reads end-of-file
        self._thread.join(timeout=5.0)
        self._receiver.close()


def main(args=None) -> int:
    prepare_process_for_control()
    signal.signal(signal.SIGINT, _interrupt_once)
    signal.signal(signal.SIGTERM, _interrupt_once)
    rclpy.init(args=args)
    node = PolicyNode()
    executor = make_executor()
    executor.add_node(node)
    waker = WakeOnShutdown(executor, node.context)
    try:
        if node.get_parameter('autostart').value:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().fatal('configure failed; see the error above')
                return 1
            node.trigger_activate()
        _spinning.set()
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:  # noqa: B902 - an rclpy call cut short by the signal surfaces as anything
        if rclpy.ok():
            raise  # not shutting down: a real error (exit code 1)
    finally:
        waker.close()
        node.release()  # the worker thread and the model, whatever state the node is in
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
