"""`SimNode`: the MuJoCo tabletop (`openvla_ros.sim`) as a ROS robot on simulated time.

It behaves like an arm under ros2_control in Gazebo: each control step it moves the end
effector by the latest command, steps the physics, and publishes /clock, the camera image, the
joint states and the EEF pose. Commands, chosen by `command_input`:

- 'action': the policy node's `action` (Float64MultiArray, 7-D LIBERO delta in OSC input
  units, gripper 1 = open), as `policy_node` publishes it today;
- 'eef_twist': `eef_twist` (TwistStamped, m/s and rad/s in `frame_id`, integrated over one
  step, like MoveIt Servo) plus `gripper_command` (Float64MultiArray [position]; open when
  nearer `gripper_open_position` than `gripper_closed_position`).

A command is used for one step: a step with no new command holds the pose (a servo times out),
and the gripper keeps its last command. Malformed commands are rejected and counted.

The node never steps itself from a callback: MuJoCo's offscreen EGL context belongs to the
thread that created it. The owner calls `reset(seed)` and `step()` from that thread (`run` does
so on a wall-clock rate for `openvla-sim-node`); the `~/reset` service only queues a reset.
"""

import threading
import time
from typing import Optional

from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, TwistStamped
import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger

from openvla_ros.sim.env import CONTROL_HZ, CubesEnv, MAX_STEPS, PROPRIO_NAMES, sample_task
from openvla_ros.sim.scene import FINGER_OPEN

COMMAND_INPUTS = ('action', 'eef_twist')


def _stamp(seconds: float) -> Time:
    nanoseconds = int(round(seconds * 1e9))
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


class SimNode(Node):
    """Publishes the simulated robot's state on sim time and applies the policy's commands."""

    def __init__(self, env: Optional[CubesEnv] = None, **kwargs):
        super().__init__('sim', **kwargs)
        self.declare_parameter('command_input', 'action')
        self.declare_parameter('frame_id', 'base_link')
        self.declare_parameter('image_topic', 'camera/image')
        self.declare_parameter('seed', 0)
        self.declare_parameter('real_time_factor', 1.0)
        self.declare_parameter('gripper_open_position', FINGER_OPEN)
        self.declare_parameter('gripper_closed_position', 0.0)
        self.declare_parameter('layout', 'random')
        self.command_input = self.get_parameter('command_input').value
        if self.command_input not in COMMAND_INPUTS:
            raise ValueError(f'command_input: expected one of {COMMAND_INPUTS}, '
                             f'got {self.command_input!r}')
        self.frame_id = self.get_parameter('frame_id').value
        self.env = env if env is not None else CubesEnv(
            layout=self.get_parameter('layout').value)
        self.dt = 1.0 / CONTROL_HZ
        self.time_s = 0.0
        self.rejected = {}
        self.commands_applied = 0
        self.steps_without_command = 0
        self._lock = threading.Lock()
        self._pending = None          # (position_m, rotation_rad) for the next step
        self._gripper_open = True
        self._queued_seed = None
        self._next_seed = int(self.get_parameter('seed').value)

        self._pub_clock = self.create_publisher(Clock, '/clock', 10)
        self._pub_image = self.create_publisher(
            Image, self.get_parameter('image_topic').value, qos_profile_sensor_data)
        self._pub_joints = self.create_publisher(JointState, 'joint_states',
                                                 qos_profile_sensor_data)
        self._pub_pose = self.create_publisher(PoseStamped, 'eef_pose', 10)
        self._pub_task = self.create_publisher(String, 'sim/instruction', 10)
        if self.command_input == 'action':
            self.create_subscription(Float64MultiArray, 'action', self._on_action, 10)
        else:
            self.create_subscription(TwistStamped, 'eef_twist', self._on_twist, 10)
            self.create_subscription(Float64MultiArray, 'gripper_command',
                                     self._on_gripper_command, 10)
        self.create_service(Trigger, '~/reset', self._on_reset_service)

    # ---------------------------------------------------------------------------- commands
    def _reject(self, source: str, reason: str) -> None:
        count = self.rejected[source] = self.rejected.get(source, 0) + 1
        if count == 1 or count % 100 == 0:
            self.get_logger().warning(f'rejected {source} message #{count}: {reason}')

    def _on_action(self, msg: Float64MultiArray) -> None:
        action = np.asarray(msg.data, dtype=np.float64)
        if action.shape != (7,) or not np.all(np.isfinite(action)):
            self._reject('action', f'expected 7 finite values, got {list(msg.data)}')
            return
        delta = np.clip(action[:6], -1.0, 1.0)
        with self._lock:
            self._pending = (0.05 * delta[:3], 0.5 * delta[3:6])
            self._gripper_open = bool(action[6] >= 0.5)

    def _on_twist(self, msg: TwistStamped) -> None:
        linear = np.array([msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z])
        angular = np.array([msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z])
        if not (np.all(np.isfinite(linear)) and np.all(np.isfinite(angular))):
            self._reject('eef_twist', 'non-finite twist')
            return
        if msg.header.frame_id and msg.header.frame_id != self.frame_id:
            self._reject('eef_twist', f'expected frame {self.frame_id!r}, '
                         f'got {msg.header.frame_id!r}')
            return
        with self._lock:
            self._pending = (linear * self.dt, angular * self.dt)

    def _on_gripper_command(self, msg: Float64MultiArray) -> None:
        if len(msg.data) != 1 or not np.isfinite(msg.data[0]):
            self._reject('gripper_command', f'expected one finite position, got {list(msg.data)}')
            return
        open_position = self.get_parameter('gripper_open_position').value
        closed_position = self.get_parameter('gripper_closed_position').value
        with self._lock:
            self._gripper_open = bool(abs(msg.data[0] - open_position)
                                      <= abs(msg.data[0] - closed_position))

    def _on_reset_service(self, request, response):
        with self._lock:
            seed = self._next_seed
            self._queued_seed = seed
        task = sample_task(seed, self.env.layout)
        response.success = True
        response.message = f'seed {seed}: {task.instruction}'
        return response

    # ------------------------------------------------------------------------------ stepping
    def reset(self, seed: Optional[int] = None) -> str:
        """Start episode `seed` (default: the next one); advance one tick and publish.

        Returns the episode's instruction. Commands that arrived before are dropped.
        """
        with self._lock:
            if seed is None:
                seed = self._next_seed
            self._next_seed = seed + 1
            self._queued_seed = None
            self._pending = None
            self._gripper_open = True
        self.env.reset(seed)
        self.time_s += self.dt
        self.publish_state()
        self._pub_task.publish(String(data=self.env.task.instruction))
        return self.env.task.instruction

    def step(self) -> None:
        """Apply the latest command (or hold), step one control period and publish the state."""
        with self._lock:
            queued, pending, gripper_open = self._queued_seed, self._pending, self._gripper_open
            self._pending = None
        if queued is not None:
            self.reset(queued)
            return
        if pending is None:
            self.steps_without_command += 1
            pending = (np.zeros(3), np.zeros(3))
        else:
            self.commands_applied += 1
        self.env.step_delta(pending[0], pending[1], gripper_open)
        self.time_s += self.dt
        self.publish_state()

    def publish_state(self) -> None:
        """Publish image, joint states and EEF pose stamped `time_s`, then /clock.

        The observation goes out just before the clock that makes it current, so a node on sim
        time has it when its timer fires for that tick (allow ~1 tick of max_future_stamp_s).
        """
        stamp = _stamp(self.time_s)
        frame = self.env.render()
        image = Image(height=frame.shape[0], width=frame.shape[1], encoding='rgb8',
                      step=frame.shape[1] * 3, data=frame.tobytes())
        image.header.stamp, image.header.frame_id = stamp, 'camera'
        self._pub_image.publish(image)
        proprio = self.env.proprio().astype(np.float64)
        joints = JointState(name=list(PROPRIO_NAMES), position=proprio.tolist())
        joints.header.stamp = stamp
        self._pub_joints.publish(joints)
        position, quat = self.env.eef_pose()
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = stamp, self.frame_id
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = position.tolist()
        (pose.pose.orientation.w, pose.pose.orientation.x, pose.pose.orientation.y,
         pose.pose.orientation.z) = quat.tolist()
        self._pub_pose.publish(pose)
        self._pub_clock.publish(Clock(clock=stamp))

    def run(self, should_stop=lambda: False) -> None:
        """Step on a wall-clock rate (`real_time_factor` x real time) until `should_stop()`."""
        if self.env.task is None:
            self.reset()
        period = self.dt / max(1e-3, float(self.get_parameter('real_time_factor').value))
        deadline = time.monotonic()
        while rclpy.ok(context=self.context) and not should_stop():
            deadline += period
            time.sleep(max(0.0, deadline - time.monotonic()))
            self.step()
            if self.env.success() or self.env.steps >= MAX_STEPS:
                outcome = 'lifted' if self.env.success() else 'not lifted'
                self.get_logger().info(f'episode done at t={self.time_s:.2f}s: the '
                                       f'{self.env.task.colour} cube is {outcome}')
                self.reset()


def main(args=None) -> int:
    """`openvla-sim-node`: the tabletop on a wall-clock rate; `~/reset` starts the next seed."""
    import os
    import signal

    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    # Python's own SIGINT handling (KeyboardInterrupt in this thread), not rclpy's, which would
    # invalidate the context while a step is publishing
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    node = SimNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        node.run()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.env.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
