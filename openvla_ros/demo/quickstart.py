"""Quickstart: policy_node on a tiny OpenVLA-OFT checkpoint, driven over DDS.

What `tools/run_demo.sh` runs. It writes a tiny LIBERO-shaped checkpoint (real file layout,
random weights) and starts the installed `policy_node` on it with config/demo.yaml. It then
publishes two synthetic camera streams, joint states and an instruction from a probe node, and
prints what the node streams back: each new action chunk, the action rate on `action`, and the
inference latency from /diagnostics. The node gets SIGINT at the end and must exit cleanly.

    python -m openvla_ros.demo.quickstart [--seconds 15] [--checkpoint DIR]
"""

import argparse
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

# DDS stays on this machine (set before rclpy loads; the child inherits it).
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('ROS_DOMAIN_ID', str(os.getpid() % 100 + 1))

import numpy as np  # noqa: E402

PACKAGE_ROOT = pathlib.Path(__file__).resolve().parents[2]
NAMESPACE = '/openvla'


def share_file(*parts) -> pathlib.Path:
    """Return a file from the installed share directory, or from the source tree."""
    try:
        from ament_index_python.packages import get_package_share_directory

        path = pathlib.Path(get_package_share_directory('openvla_ros')).joinpath(*parts)
        if path.exists():
            return path
    except (ImportError, LookupError, ValueError):
        pass
    return PACKAGE_ROOT.joinpath(*parts)


def policy_node_command(checkpoint: pathlib.Path, params_file: pathlib.Path,
                        namespace: str = NAMESPACE, *extra: str) -> list:
    """Return the command that starts policy_node (installed, or its module) on `checkpoint`."""
    installed = pathlib.Path(sys.prefix, 'lib', 'openvla_ros', 'policy_node')
    command = [str(installed)] if installed.exists() else [
        sys.executable, '-m', 'openvla_ros.ros.main']
    return command + ['--ros-args', '-r', f'__ns:={namespace}', '--params-file',
                      str(params_file), '-p', f'checkpoint:={checkpoint}', *extra]


def _node_command(checkpoint: pathlib.Path, namespace: str = NAMESPACE) -> list:
    return policy_node_command(checkpoint, share_file('config', 'demo.yaml'), namespace)


def _camera_frame(t: float, hue: int) -> np.ndarray:
    """Draw a 128x128 RGB frame with a square moving in a circle (so images change)."""
    frame = np.full((128, 128, 3), 40, np.uint8)
    x, y = int(64 + 40 * np.cos(t)), int(64 + 40 * np.sin(t))
    frame[max(0, y - 10):y + 10, max(0, x - 10):x + 10] = (hue, 255 - hue, 128)
    return frame


class DemoProbe:
    """Publishes the robot side of the demo and prints what comes back."""

    def __init__(self, node, namespace: str = NAMESPACE):
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import Float64MultiArray, String
        from trajectory_msgs.msg import JointTrajectory

        self.node, self.Image, self.JointState, self.String = node, Image, JointState, String
        self.cameras = [node.create_publisher(Image, f'{namespace}/camera/{name}',
                                              qos_profile_sensor_data)
                        for name in ('primary', 'wrist')]
        self.joints = node.create_publisher(JointState, f'{namespace}/joint_states',
                                            qos_profile_sensor_data)
        self.instruction = node.create_publisher(String, f'{namespace}/instruction', 10)
        self.actions, self.chunks, self.latency = [], 0, None
        node.create_subscription(Float64MultiArray, f'{namespace}/action',
                                 lambda m: self.actions.append(list(m.data)), 10)
        node.create_subscription(JointTrajectory, f'{namespace}/action_chunk',
                                 self._on_chunk, 10)
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)

    def _on_chunk(self, msg) -> None:
        self.chunks += 1
        if self.chunks <= 3 or self.chunks % 10 == 0:
            first = ', '.join(f'{v:+.3f}' for v in msg.points[0].positions)
            print(f'chunk {self.chunks:3d}: {len(msg.points)} steps, first action [{first}]')

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            if 'engine.latency_p50_s' in values:
                self.latency = values['engine.latency_p50_s']

    def publish(self, t: float) -> None:
        stamp = self.node.get_clock().now().to_msg()
        for publisher, hue in zip(self.cameras, (200, 60)):
            frame = _camera_frame(t, hue)
            msg = self.Image(height=128, width=128, encoding='rgb8', step=384,
                             data=frame.tobytes())
            msg.header.stamp = stamp
            publisher.publish(msg)
        joints = self.JointState(name=[f'joint{i}' for i in range(8)],
                                 position=[0.1 * np.sin(t + i) for i in range(8)])
        joints.header.stamp = stamp
        self.joints.publish(joints)


def run(seconds: float, checkpoint: pathlib.Path) -> int:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    node_process = subprocess.Popen(_node_command(checkpoint))
    rclpy.init()
    probe_node = rclpy.create_node('openvla_demo_probe')
    probe = DemoProbe(probe_node)
    executor = SingleThreadedExecutor()
    executor.add_node(probe_node)
    start, next_report, reported = time.monotonic(), time.monotonic() + 1.0, 0
    try:
        while time.monotonic() - start < seconds and node_process.poll() is None:
            t = time.monotonic() - start
            probe.publish(t)
            if probe.chunks == 0:  # until the node has heard it (instruction QoS is volatile)
                probe.instruction.publish(probe.String(data='pick up the black bowl'))
            executor.spin_once(timeout_sec=1.0 / 15)
            if time.monotonic() >= next_report:
                rate = len(probe.actions) - reported
                reported, next_report = len(probe.actions), next_report + 1.0
                print(f't={t:4.1f}s  actions/s on {NAMESPACE}/action: {rate:3d}  chunks: '
                      f'{probe.chunks:3d}  inference p50: {probe.latency or "-"} s')
    finally:
        node_process.send_signal(signal.SIGINT)
        try:
            exit_code = node_process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            node_process.kill()
            exit_code = node_process.wait()
        executor.shutdown()
        probe_node.destroy_node()
        rclpy.try_shutdown()
    print(f'received {probe.chunks} chunks and {len(probe.actions)} actions; '
          f'policy_node exited with {exit_code}')
    if probe.actions:
        print('last action:', ', '.join(f'{v:+.3f}' for v in probe.actions[-1]))
    return 0 if probe.actions and probe.chunks and exit_code == 0 else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seconds', type=float, default=15.0)
    parser.add_argument('--checkpoint', type=pathlib.Path, default=None,
                        help='use this checkpoint instead of building the tiny one')
    args = parser.parse_args(argv)
    checkpoint = args.checkpoint
    if checkpoint is None:
        from openvla_ros.model.testing.factory import write_tiny_checkpoint

        checkpoint = pathlib.Path(tempfile.gettempdir(), 'openvla_ros_demo', 'tiny-l1')
        print(f'writing a tiny LIBERO-shaped L1 checkpoint to {checkpoint}')
        write_tiny_checkpoint(checkpoint, variant='l1')
    return run(args.seconds, checkpoint)


if __name__ == '__main__':
    sys.exit(main())
