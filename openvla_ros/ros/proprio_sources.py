"""Proprio from JointState topics and an EEF pose (PoseStamped topic or TF), assembled in order.

`plan_proprio` checks the parameters against the checkpoint (configure fails on a mismatch);
`ProprioSources` owns the subscriptions. The proprio vector is the EEF pose (position +
axis-angle, when `eef_pose_source` is set) followed by the positions of `proprio_joint_names`,
then `* proprio_scale + proprio_offset`. Bad messages are handed to the node's `reject`.
"""

from dataclasses import dataclass
from typing import Callable, Optional

from geometry_msgs.msg import PoseStamped
import numpy as np
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState

from openvla_ros.robot_io.pose import pose_to_proprio
from openvla_ros.robot_io.proprio import parse_joint_state_topics, ProprioAssembler
from openvla_ros.ros.conversions import ConversionError, joint_positions

POSE_DIMS = 6  # x, y, z, axis-angle


@dataclass(frozen=True)
class ProprioPlan:
    """Where each part of the proprio vector comes from, checked against the checkpoint."""

    joint_topics: tuple          # ((topic, prefix), ...)
    joint_names: tuple           # prefixed names after the pose ((): everything, in order)
    pose_source: str             # '', 'topic' or 'tf'
    pose_topic: str
    base_frame: str
    ee_frame: str
    scale: np.ndarray
    offset: np.ndarray
    rotation_low: Optional[tuple]   # checkpoint statistics of the axis-angle dimensions
    rotation_high: Optional[tuple]
    proprio_dim: Optional[int]
    tf_period_s: float


def plan_proprio(settings, spec) -> ProprioPlan:
    """Check the proprio parameters against the policy; raises ValueError naming the parameter."""
    robot = settings.robot
    topics = tuple(parse_joint_state_topics(robot.joint_state_topics))
    names = tuple(settings.proprio_joint_names)
    uses_pose = robot.eef_pose_source != ''
    dim = spec.proprio_dim
    if dim is not None and names:
        expected = len(names) + (POSE_DIMS if uses_pose else 0)
        if expected != dim:
            raise ValueError(f'proprio_joint_names: the checkpoint expects {dim} proprio values,'
                             f' got {len(names)} joints' + (' after the 6-D EEF pose'
                                                            if uses_pose else ''))
    if names and not topics:
        raise ValueError('joint_state_topics: expected a topic for proprio_joint_names, got '
                         'none')
    if dim is not None and not topics and not uses_pose:
        raise ValueError('joint_state_topics / eef_pose_source: the checkpoint needs proprio, '
                         'got no source')
    scale = np.asarray(robot.proprio_scale, dtype=np.float64)
    offset = np.asarray(robot.proprio_offset, dtype=np.float64)
    for name, values in (('proprio_scale', scale), ('proprio_offset', offset)):
        if values.size != 1 and dim is not None and values.size != dim:
            raise ValueError(f'{name}: expected 1 or {dim} values, got {values.size}')
        if not np.all(np.isfinite(values)):
            raise ValueError(f'{name}: expected finite values, got {values.tolist()}')
    if robot.eef_pose_source == 'tf':
        _import_tf()
    low = high = None
    if uses_pose and spec.proprio_min is not None:
        low, high = spec.proprio_min[3:POSE_DIMS], spec.proprio_max[3:POSE_DIMS]
    return ProprioPlan(
        joint_topics=topics, joint_names=names, pose_source=robot.eef_pose_source,
        pose_topic=robot.eef_pose_topic, base_frame=robot.base_frame, ee_frame=robot.ee_frame,
        scale=scale, offset=offset, rotation_low=low, rotation_high=high, proprio_dim=dim,
        tf_period_s=1.0 / settings.execution.control_rate_hz)


def _import_tf():
    try:
        import tf2_ros
    except ImportError as exc:
        raise ValueError("eef_pose_source 'tf': needs tf2_ros (a ROS install), which is not "
                         "importable here; publish a PoseStamped and use 'topic'") from exc
    return tf2_ros


class ProprioSources:
    """Subscriptions that feed the proprio vector to `put(vector, stamp_s)`.

    Args:
        node: the policy node.
        plan: from `plan_proprio`.
        put: stores a complete proprio vector with its (oldest) stamp.
        reject: counts a bad message, `reject(source, reason)`.
        checked_stamp: header stamp -> seconds or None; raises ConversionError if in the future.
        callback_group: for every subscription and timer.
        guard: `guard(source, callback)` wraps every callback so that no exception it raises
            reaches the executor (the node's `_guarded`).
    """

    def __init__(self, node, plan: ProprioPlan, put: Callable, reject: Callable,
                 checked_stamp: Callable, callback_group, guard: Callable):
        self._plan, self._put, self._reject = plan, put, reject
        self._checked_stamp = checked_stamp
        self._assembler = ProprioAssembler(len(plan.joint_topics), plan.joint_names,
                                           plan.pose_source != '', plan.scale, plan.offset)
        self._tf_listener = None
        self.resources = []
        single = len(plan.joint_topics) == 1
        for index, (topic, prefix) in enumerate(plan.joint_topics):
            source = 'joint_states' if single else f'joint_states:{topic}'
            self.resources.append(node.create_subscription(
                JointState, topic,
                guard(source, self._joint_callback(index, prefix, source, single)),
                qos_profile_sensor_data, callback_group=callback_group))
        if plan.pose_source == 'topic':  # best effort: what pose broadcasters publish
            self.resources.append(node.create_subscription(
                PoseStamped, plan.pose_topic, guard('eef_pose', self._on_pose),
                qos_profile_sensor_data,
                callback_group=callback_group))
        elif plan.pose_source == 'tf':
            tf2_ros = _import_tf()
            self._tf2_ros = tf2_ros
            self._tf_buffer = tf2_ros.Buffer()
            self._tf_listener = tf2_ros.TransformListener(self._tf_buffer, node)
            self.resources.append(node.create_timer(
                plan.tf_period_s, guard('eef_pose', self._on_tf_timer),
                callback_group=callback_group))

    def close(self) -> None:
        """Stop listening to TF (subscriptions and timers are destroyed by the node)."""
        if self._tf_listener is not None:
            self._tf_listener.unregister()
            self._tf_listener = None

    # ------------------------------------------------------------------------ callbacks
    def _joint_callback(self, index: int, prefix: str, source: str, single: bool):
        names = self._plan.joint_names

        def on_joint_state(msg: JointState) -> None:
            # a ConversionError is counted as rejected.<source> by the node's guard
            if not names:  # every position, in message order
                wanted = list(msg.name)
            elif single:  # every requested joint must be in this message
                wanted = [n[len(prefix):] for n in names]
            else:  # the requested joints this topic has (the rest come from the others)
                present = set(msg.name)
                wanted = [n[len(prefix):] for n in names
                          if n.startswith(prefix) and n[len(prefix):] in present]
            positions = joint_positions(msg, ())[:0] if names and not wanted else \
                joint_positions(msg, wanted if names else ())
            stamp = self._checked_stamp(msg.header.stamp, source)
            self._assembler.put_joints(index, [prefix + n for n in wanted], positions, stamp)
            self._emit(source)
        return on_joint_state

    def _on_pose(self, msg: PoseStamped) -> None:
        try:
            self._put_pose(msg.header, msg.pose.position, msg.pose.orientation)
        except (ConversionError, ValueError) as exc:
            self._reject('eef_pose', exc)
            return
        self._emit('eef_pose')

    def _on_tf_timer(self) -> None:
        plan = self._plan
        try:
            transform = self._tf_buffer.lookup_transform(plan.base_frame, plan.ee_frame,
                                                         _latest())
        except self._tf2_ros.TransformException as exc:
            self._reject('eef_pose', f'tf {plan.base_frame} -> {plan.ee_frame}: {exc}')
            return
        try:
            t = transform.transform
            self._put_pose(transform.header, t.translation, t.rotation)
        except (ConversionError, ValueError) as exc:
            self._reject('eef_pose', exc)
            return
        self._emit('eef_pose')

    def _put_pose(self, header, position, orientation) -> None:
        plan = self._plan
        if header.frame_id and header.frame_id != plan.base_frame:
            raise ConversionError(f"eef_pose: expected frame '{plan.base_frame}' (base_frame), "
                                  f"got '{header.frame_id}'")
        vector = pose_to_proprio((position.x, position.y, position.z),
                                 (orientation.x, orientation.y, orientation.z, orientation.w),
                                 plan.rotation_low, plan.rotation_high)
        self._assembler.put_pose(vector, self._checked_stamp(header.stamp, 'eef_pose'))

    def _emit(self, source: str) -> None:
        """Hand the proprio vector on once every part is there and it has the right size."""
        try:
            result = self._assembler.assemble()
            if result is None:
                return
            vector, stamp = result
            dim = self._plan.proprio_dim
            if dim is not None and vector.size != dim:
                raise ConversionError(f'{source}: expected {dim} proprio values (set '
                                      f'proprio_joint_names), got {vector.size}')
        except ValueError as exc:
            self._reject(source, exc)
            return
        self._put(vector, stamp)


def _latest():
    from rclpy.time import Time

    return Time()  # TF: the latest transform available
