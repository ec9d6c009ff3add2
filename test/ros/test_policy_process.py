"""policy_node as a real process (the installed entry point) on a tiny checkpoint, over DDS.

What only a process can show: a message that used to kill it (a decompression bomb) is
rejected while it keeps publishing, it exits 0 on one or two SIGINTs and on SIGTERM, and a
truncated checkpoint shard stops it with the file and the fix.
"""

import io
import itertools
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]

_names = itertools.count()
# policy_node's main with rclpy's SIGINT/SIGTERM handlers left out
_MAIN_WITHOUT_RCLPY_HANDLERS = (
    'import functools, sys, rclpy\n'
    'from rclpy.signals import SignalHandlerOptions\n'
    'rclpy.init = functools.partial(rclpy.init, signal_handler_options=SignalHandlerOptions.NO)\n'
    'from openvla_ros.ros.main import main\n'
    'sys.exit(main())\n')


class PolicyProcess:
    """policy_node on the demo config in a namespace of its own, and a DemoProbe driving it."""

    def __init__(self, checkpoint, probe_node, log_path, *parameters,
                 without_rclpy_handlers=False):
        from openvla_ros.demo.quickstart import _node_command, DemoProbe

        self.namespace = f'/openvla_proc_{os.getpid()}_{next(_names)}'
        command = _node_command(checkpoint, self.namespace)
        if without_rclpy_handlers:
            command[:command.index('--ros-args')] = [sys.executable, '-c',
                                                     _MAIN_WITHOUT_RCLPY_HANDLERS]
        for parameter in parameters:
            command += ['-p', parameter]
        self.log_path = log_path
        self._log = open(log_path, 'wb')
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        self.probe = DemoProbe(probe_node, namespace=self.namespace)
        self.diagnostics = {}

        def on_diagnostics(msg):
            for status in msg.status:
                if status.name.startswith('policy'):
                    self.diagnostics = {kv.key: kv.value for kv in status.values}
                    self.diagnostics['level'] = status.level
        probe_node.create_subscription(type(self._diagnostic_array()), '/diagnostics',
                                       on_diagnostics, 10)

    @staticmethod
    def _diagnostic_array():
        from diagnostic_msgs.msg import DiagnosticArray

        return DiagnosticArray()

    def stream_until(self, predicate, timeout_s=60.0, extra=None) -> bool:
        start = time.monotonic()
        while time.monotonic() - start < timeout_s:
            assert self.process.poll() is None, f'policy_node exited:\n{self.output()}'
            self.probe.publish(time.monotonic() - start)
            self.probe.instruction.publish(self.probe.String(data='pick up the bowl'))
            if extra is not None:
                extra()
            if predicate():
                return True
            time.sleep(0.05)
        return False

    def output(self) -> str:
        self._log.flush()
        with open(self.log_path, 'rb') as log:
            return log.read().decode(errors='replace')

    def wait(self, timeout_s=30.0) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f'policy_node did not exit in {timeout_s} s:\n{self.output()}')

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()


@pytest.fixture
def policy_process(probe_node, tmp_path):
    from openvla_ros.model.testing.factory import tiny_checkpoint

    started = []

    def start(*parameters, **options):
        started.append(PolicyProcess(tiny_checkpoint('l1'), probe_node,
                                     tmp_path / f'policy_node_{len(started)}.log', *parameters,
                                     **options))
        return started[-1]

    yield start
    for process in started:
        process.close()


def test_a_decompression_bomb_is_rejected_and_the_process_keeps_publishing(policy_process,
                                                                           probe_node,
                                                                           png_claiming):
    from PIL import Image as PILImage
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage

    node = policy_process("camera_topics:=['camera/primary', 'camera/wrist/compressed']")
    wrist = probe_node.create_publisher(CompressedImage, f'{node.namespace}/camera/wrist/'
                                        'compressed', qos_profile_sensor_data)
    jpeg = io.BytesIO()
    PILImage.new('RGB', (128, 128), (60, 195, 128)).save(jpeg, format='JPEG')
    good = CompressedImage(format='jpeg', data=jpeg.getvalue())
    bomb = CompressedImage(format='png', data=png_claiming(20000, 10000))  # ~60 bytes

    def publish_wrist(message=good):
        message.header.stamp = probe_node.get_clock().now().to_msg()
        wrist.publish(message)

    assert node.stream_until(lambda: len(node.probe.actions) >= 10, extra=publish_wrist)
    assert node.stream_until(  # the bomb, now and then, among good frames
        lambda: int(node.diagnostics.get('rejected.camera1', '0')) >= 3,
        extra=lambda: publish_wrist(bomb) if time.monotonic() % 0.5 < 0.1 else publish_wrist())
    assert 'DecompressionBombError' in node.diagnostics['rejected.last_reason']
    count = len(node.probe.actions)
    assert node.stream_until(lambda: len(node.probe.actions) > count + 50, extra=publish_wrist)
    assert node.process.poll() is None
    assert node.diagnostics['errors.last'] == ''  # rejected as bad input, not a fault


@pytest.mark.parametrize('signals', [
    (signal.SIGINT,),
    (signal.SIGINT, signal.SIGINT),  # Ctrl-C under ros2 launch: the terminal's, then launch's
    (signal.SIGTERM,),
], ids=['SIGINT', 'SIGINT-twice', 'SIGTERM'])
def test_exit_code_is_0_on_shutdown_signals(policy_process, signals):
    node = policy_process()
    assert node.stream_until(lambda: len(node.probe.actions) >= 10)
    for sig in signals:
        node.process.send_signal(sig)
        time.sleep(0.05)  # the second lands while the first is being handled
    assert node.wait() == 0, node.output()
    assert 'Traceback' not in node.output(), node.output()


def test_sigint_ends_a_node_whose_sim_clock_has_stopped(policy_process, probe_node):
    """A simulator stopped before the node (Gazebo under the same ros2 launch, Ctrl-C).

    With /clock frozen no sim-time timer is ever due again, so only the signal can wake the
    executor. rclpy's handler wakes it a moment before the context reads shut down; a node
    that went back to waiting in between hung until SIGKILL (openvla-sim-eval: 1 shutdown in
    3; the next test makes that deterministic).
    """
    from rosgraph_msgs.msg import Clock

    clock = probe_node.create_publisher(Clock, '/clock', 10)
    node = policy_process('use_sim_time:=true')

    def tick():  # sim time follows the wall clock, like a sim at real-time factor 1
        clock.publish(Clock(clock=probe_node.get_clock().now().to_msg()))

    assert node.stream_until(lambda: len(node.probe.actions) >= 10, extra=tick), node.output()
    time.sleep(1.0)  # the sim has stopped: no /clock, no camera frames
    node.process.send_signal(signal.SIGINT)
    assert node.wait(timeout_s=15.0) == 0, node.output()
    assert 'Traceback' not in node.output(), node.output()


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
def test_a_signal_ends_the_node_even_without_rclpys_signal_handlers(policy_process, sig):
    """Nothing but the node's own signal handling shuts the context down and wakes spin().

    As when another library replaced rclpy's handlers, or in the race above: a context shut
    down, or a signal received, while the executor waits with nothing about to be ready.
    """
    node = policy_process(without_rclpy_handlers=True)
    assert node.stream_until(lambda: len(node.probe.actions) >= 10), node.output()
    node.process.send_signal(sig)
    assert node.wait(timeout_s=15.0) == 0, node.output()
    assert 'Traceback' not in node.output(), node.output()


def test_a_truncated_shard_fails_start_up_with_the_file_and_the_fix(tmp_path):
    from openvla_ros.demo.quickstart import _node_command
    from openvla_ros.model.testing.factory import tiny_checkpoint

    checkpoint = tmp_path / 'tiny-l1'
    shutil.copytree(tiny_checkpoint('l1'), checkpoint)
    shard = sorted(checkpoint.glob('model-*.safetensors'))[0]
    shard.write_bytes(shard.read_bytes()[:shard.stat().st_size // 2])  # interrupted download
    result = subprocess.run(_node_command(checkpoint, f'/openvla_proc_{os.getpid()}_cut'),
                            capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f'configure failed: {shard}: not a readable safetensors file' in output, output
    assert 'Fix: download this file again' in output and 'Traceback' not in output, output
