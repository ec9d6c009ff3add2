"""The node's outputs: the generic `action` / `action_chunk` streams and controller adapters.

`plan_outputs` checks the parameters against the checkpoint (configure fails on a mismatch);
`CommandOutputs` owns the publishers. Every per-tick output gets the same safety-filtered action
that `action` carries, and the node calls `on_tick` only while it may move the robot (active,
not stopped, not dry run). The conversions themselves live in `openvla_ros.robot_io`.
"""

from dataclasses import dataclass
from typing import Optional

from geometry_msgs.msg import TwistStamped
import numpy as np
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from openvla_ros.execution.filters import clip_to_bounds, SafetyLimits, scale_action
from openvla_ros.robot_io.joints import command_indices
from openvla_ros.robot_io.trajectory import future_points
from openvla_ros.robot_io.twist import eef_twist, step_delta
from openvla_ros.ros.conversions import seconds_to_duration_fields
from openvla_ros.ros.params import RobotSettings

try:  # control_msgs ships with ROS installs (apt), not as a PyPI wheel
    from control_msgs import action as control_actions
except ImportError:  # pragma: no cover - depends on the machine
    control_actions = None

# A late-joining gripper controller still gets the current target (it is sent only on change).
GRIPPER_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)


@dataclass(frozen=True)
class OutputPlan:
    """What to publish, checked against the checkpoint."""

    outputs: frozenset
    chunk_joint_names: tuple
    command_index: Optional[np.ndarray]  # action dimension of each command joint
    robot: RobotSettings  # gripper mapping, frames, scales, joint names: as the parameters say
    action_rate_hz: float
    control_period_s: float
    substeps_per_step: int
    end_step: int
    sync: bool


def plan_outputs(settings, spec, chunk_joint_names) -> OutputPlan:
    """Check the output parameters against the policy; raises ValueError naming the parameter."""
    robot, execution = settings.robot, settings.execution
    outputs = frozenset(robot.outputs)
    joint_outputs = outputs & {'joint_command', 'joint_trajectory'}
    command_index = None
    if joint_outputs:
        if execution.action_kind != 'absolute':
            raise ValueError(f'outputs {sorted(joint_outputs)}: expected absolute (joint '
                             f"position) actions, got action_kind '{execution.action_kind}'")
        command_index = command_indices(robot.command_joint_names, settings.action_joint_names,
                                        spec.action_dim, robot.gripper.dims)
    if 'eef_twist' in outputs:
        if execution.action_kind != 'delta' or spec.action_dim < 6:
            raise ValueError(f"outputs 'eef_twist': expected EEF-delta actions (action_kind "
                             f"'delta', >= 6 dimensions), got '{execution.action_kind}' with "
                             f'{spec.action_dim}')
    if outputs & {'gripper_command', 'gripper_action'}:
        if not robot.gripper.dims:
            raise ValueError("outputs 'gripper_command' / 'gripper_action': expected "
                             'gripper_dims, got none')
        robot.gripper.check_action_dim(spec.action_dim)
    if 'gripper_action' in outputs:
        names = robot.gripper_joint_names
        if names and len(names) != len(robot.gripper.dims):
            raise ValueError(f'gripper_joint_names: expected one name per gripper dimension '
                             f'({len(robot.gripper.dims)}), got {list(names)}')
        if getattr(control_actions, robot.gripper_action_type, None) is None:
            raise ValueError(f"outputs 'gripper_action': needs control_msgs' "
                             f'{robot.gripper_action_type} (a ROS install), which is not '
                             "importable here; use 'gripper_command'")
    return OutputPlan(
        outputs=outputs, chunk_joint_names=tuple(chunk_joint_names), command_index=command_index,
        robot=robot, action_rate_hz=execution.action_rate_hz,
        control_period_s=1.0 / execution.control_rate_hz,
        substeps_per_step=execution.substeps_per_step,
        end_step=execution.execute_steps or spec.chunk_len,
        sync=execution.execution_mode == 'sync')


class CommandOutputs:
    """Publishers of every selected output; `resources` lists what the node destroys."""

    def __init__(self, node, plan: OutputPlan):
        self._plan = plan
        self._last_gripper: Optional[np.ndarray] = None
        wanted = plan.outputs
        make = node.create_publisher
        self._pub_action = make(Float64MultiArray, 'action', 10) if 'action' in wanted else None
        self._pub_chunk = (make(JointTrajectory, 'action_chunk', 10)
                           if 'action_chunk' in wanted else None)
        self._pub_joint = (make(Float64MultiArray, 'joint_command', 10)
                           if 'joint_command' in wanted else None)
        self._pub_trajectory = (make(JointTrajectory, 'joint_trajectory', 10)
                                if 'joint_trajectory' in wanted else None)
        self._pub_twist = make(TwistStamped, 'eef_twist', 10) if 'eef_twist' in wanted else None
        self._pub_gripper = (make(Float64MultiArray, 'gripper_command', GRIPPER_QOS)
                             if 'gripper_command' in wanted else None)
        self._gripper_clients = []
        if 'gripper_action' in wanted:
            from rclpy.action import ActionClient

            dims = plan.robot.gripper.dims
            names = ['gripper_action'] if len(dims) == 1 else [
                f'gripper_action_{i}' for i in range(len(dims))]
            self._gripper_action = getattr(control_actions, plan.robot.gripper_action_type)
            self._gripper_clients = [ActionClient(node, self._gripper_action, n)
                                     for n in names]
        self._last_goals = [None] * len(self._gripper_clients)
        self.resources = [p for p in (self._pub_action, self._pub_chunk, self._pub_joint,
                                      self._pub_trajectory, self._pub_twist, self._pub_gripper)
                          if p is not None] + self._gripper_clients

    def reset(self) -> None:
        """Forget the last gripper targets, so the next tick sends them again (on activate)."""
        self._last_gripper = None
        self._last_goals = [None] * len(self._gripper_clients)

    def on_tick(self, action: np.ndarray, now_s: float) -> None:
        """Publish one safety-filtered action on every per-tick output."""
        plan = self._plan
        if self._pub_action is not None:
            self._pub_action.publish(Float64MultiArray(data=action.tolist()))
        if self._pub_joint is not None:
            self._pub_joint.publish(Float64MultiArray(data=action[plan.command_index].tolist()))
        if self._pub_twist is not None:
            self._pub_twist.publish(self._twist(action, now_s))
        if self._pub_gripper is not None or self._gripper_clients:
            self._send_gripper(plan.robot.gripper.targets(action))

    def on_chunk(self, actions: np.ndarray, t_obs: float, now_s: float,
                 limits: Optional[SafetyLimits]) -> None:
        """Publish an accepted chunk: raw on action_chunk; as a JTC trajectory when `limits`.

        `limits` None means the robot must not move (inactive, stopped or dry run); otherwise
        the trajectory's points are scaled and clipped as the per-tick actions are.
        """
        if self._pub_chunk is not None:
            self._pub_chunk.publish(self._chunk_msg(actions, t_obs))
        if self._pub_trajectory is not None and limits is not None:
            msg = self._trajectory_msg(_limited(actions, limits), t_obs, now_s)
            if msg is not None:
                self._pub_trajectory.publish(msg)

    # ------------------------------------------------------------------------- messages
    def _chunk_msg(self, actions: np.ndarray, t_obs: float) -> JointTrajectory:
        msg = JointTrajectory(joint_names=list(self._plan.chunk_joint_names))
        msg.header.stamp.sec, msg.header.stamp.nanosec = seconds_to_duration_fields(t_obs)
        rate = self._plan.action_rate_hz
        for k, action in enumerate(actions):
            msg.points.append(_point(action.tolist(), k / rate))
        return msg

    def _trajectory_msg(self, actions: np.ndarray, t_obs: float,
                        now_s: float) -> Optional[JointTrajectory]:
        plan = self._plan
        # async: step 0 is due at t_obs; sync: at the next control tick
        t_base = now_s + plan.control_period_s if plan.sync else t_obs
        points = future_points(actions, t_base, plan.action_rate_hz, now_s, plan.end_step)
        if not points:
            return None
        msg = JointTrajectory(joint_names=list(plan.robot.command_joint_names))
        msg.header.stamp.sec, msg.header.stamp.nanosec = seconds_to_duration_fields(now_s)
        for ahead, k in points:
            msg.points.append(_point(actions[k, plan.command_index].tolist(), ahead))
        return msg

    def _twist(self, action: np.ndarray, now_s: float) -> TwistStamped:
        plan, robot = self._plan, self._plan.robot
        linear, angular = eef_twist(step_delta(action, plan.substeps_per_step), robot.pos_scale,
                                    robot.rot_scale, plan.action_rate_hz)
        msg = TwistStamped()
        msg.header.frame_id = robot.base_frame
        msg.header.stamp.sec, msg.header.stamp.nanosec = seconds_to_duration_fields(now_s)
        msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = linear.tolist()
        msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z = angular.tolist()
        return msg

    def _send_gripper(self, targets: np.ndarray) -> None:
        if self._pub_gripper is not None and not _same(targets, self._last_gripper):
            self._pub_gripper.publish(Float64MultiArray(data=targets.tolist()))
            self._last_gripper = targets
        for i, (client, target) in enumerate(zip(self._gripper_clients, targets.tolist())):
            if target == self._last_goals[i] or not client.server_is_ready():
                continue  # unchanged, or retried on the next tick once the server is up
            client.send_goal_async(self._gripper_goal(i, target))
            self._last_goals[i] = target

    def _gripper_goal(self, index: int, target: float):
        """Return the goal of gripper `index` for position `target` (m or rad).

        GripperCommand: `command.position`. ParallelGripperCommand: `command` is a JointState
        with one position (and the joint's name, where gripper_joint_names gives it).
        """
        goal = self._gripper_action.Goal()
        if self._plan.robot.gripper_action_type == 'GripperCommand':
            goal.command.position = target
        else:
            names = self._plan.robot.gripper_joint_names
            goal.command.name = [names[index]] if names else []
            goal.command.position = [target]
        return goal


def _same(a: np.ndarray, b: Optional[np.ndarray]) -> bool:
    return b is not None and np.array_equal(a, b)


def _point(positions: list, time_from_start_s: float) -> JointTrajectoryPoint:
    point = JointTrajectoryPoint(positions=positions)
    point.time_from_start.sec, point.time_from_start.nanosec = \
        seconds_to_duration_fields(time_from_start_s)
    return point


def _limited(actions: np.ndarray, limits: SafetyLimits) -> np.ndarray:
    """Apply the stateless part of the safety filter (scale, then clip) on every row of a chunk."""
    out = np.asarray(actions, dtype=np.float64)  # (H, A); (A,) limits broadcast over rows
    if limits.scale is not None:
        out = scale_action(out, limits.scale)
    if limits.low is not None or limits.high is not None:
        out = clip_to_bounds(out, -np.inf if limits.low is None else limits.low,
                             np.inf if limits.high is None else limits.high)
    return out
