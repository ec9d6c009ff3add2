"""`ros2 launch openvla_ros policy.launch.py` stopped as a terminal or a supervisor stops it.

A Ctrl-C in a terminal sends SIGINT to the whole process group, and launch forwards another
SIGINT to the node. launch itself sends SIGTERM to a node that has not exited some seconds
after SIGINT (and `kill PID` does the same). Every way, policy_node must exit 0 and launch must
report it as finished cleanly. (SIGTERM to `ros2 launch` itself makes launch exit at once and
leave its processes running: launch's behaviour, documented in docs/NODE.md.)
"""

import itertools
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip('launch', reason='launch is not installed (it ships with ROS 2, not PyPI)')
pytest.importorskip('launch_ros', reason='launch_ros is not installed (ships with ROS 2)')

pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.launch_test]

_names = itertools.count()


@pytest.mark.parametrize('how', ['ctrl-c', 'ctrl-c-twice', 'sigterm'])
def test_policy_node_exits_0_when_launch_is_stopped(how, probe_node, tmp_path):
    from openvla_ros.demo.quickstart import DemoProbe
    from openvla_ros.model.testing.factory import tiny_checkpoint

    ros2 = pathlib.Path(sys.prefix, 'bin', 'ros2')
    if not ros2.exists():
        pytest.skip(f'the ros2 command is not installed ({ros2} missing)')
    namespace = f'openvla_launch_{os.getpid()}_{next(_names)}'
    log_path = tmp_path / 'launch.log'
    with open(log_path, 'wb') as log:
        launch = subprocess.Popen(
            [str(ros2), 'launch', 'openvla_ros', 'policy.launch.py',
             f'checkpoint:={tiny_checkpoint("l1")}', 'config:=demo', 'device:=cpu',
             f'namespace:={namespace}'],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # own process group
        try:
            probe = DemoProbe(probe_node, namespace='/' + namespace)
            start = time.monotonic()
            while len(probe.actions) < 10 and time.monotonic() - start < 90:
                assert launch.poll() is None, log_path.read_text()
                probe.publish(time.monotonic() - start)
                probe.instruction.publish(probe.String(data='pick up the bowl'))
                time.sleep(0.05)
            assert len(probe.actions) >= 10, f'no actions within 90 s:\n{log_path.read_text()}'
            if how == 'sigterm':
                os.kill(_node_pid(log_path), signal.SIGTERM)
            else:
                os.killpg(launch.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
                if how == 'ctrl-c-twice':
                    time.sleep(0.1)
                    os.killpg(launch.pid, signal.SIGINT)
            exit_code = launch.wait(timeout=60)
        finally:
            if launch.poll() is None:
                os.killpg(launch.pid, signal.SIGKILL)
                launch.wait()
            _kill_if_running(log_path)
    output = log_path.read_text()
    assert 'process has finished cleanly' in output, output
    assert 'process has died' not in output and 'Traceback' not in output, output
    assert exit_code == 0, output


def _node_pid(log_path) -> int:
    found = re.search(r'policy_node-1\]: process started with pid \[(\d+)\]',
                      log_path.read_text())
    assert found, log_path.read_text()
    return int(found.group(1))


def _kill_if_running(log_path) -> None:
    """Leave no policy_node behind, whatever happened to launch."""
    try:
        pid = _node_pid(log_path)
        with open(f'/proc/{pid}/cmdline', 'rb') as cmdline:
            if b'policy_node' in cmdline.read():  # still ours, not a reused pid
                os.kill(pid, signal.SIGKILL)
    except (AssertionError, OSError):
        pass
