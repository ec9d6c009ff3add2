"""Controller adapters and proprio sources over real DDS, with the real model on tiny checkpoints.

Every check recomputes what the node should have sent from what it published on `action_chunk`
(the raw chunk), independently of openvla_ros.robot_io: clipping to the dataset bounds, units and
scales, frames, stamps, joint order, gripper mapping and change-only publishing.
"""

import threading
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros

NS = '/robot_test/'
ARM = ['waist', 'shoulder', 'elbow', 'forearm_roll', 'wrist_angle', 'wrist_rotate']
ALOHA_ACTION_NAMES = ([f'left_{j}' for j in ARM] + ['left_gripper']
                      + [f'right_{j}' for j in ARM] + ['right_gripper'])
ALOHA_COMMAND_NAMES = [f'right_{j}' for j in ARM] + [f'left_{j}' for j in ARM]  # JTC's order
FINGER_SCALE, FINGER_OFFSET = 1 / (0.05800 - 0.01844), -0.01844 / (0.05800 - 0.01844)
GRIPPER_OPEN, GRIPPER_CLOSED = 1.4910, -0.6213  # ALOHA puppet gripper joint (rad)
POSE_XYZ, POSE_ANGLE = (0.4, 0.1, 0.5), 0.5  # EEF pose: 0.5 rad about x

LIBERO = dict(
    camera_topics=['cam0', 'cam1'], action_kind='delta', hold_dims=[6], action_rate_hz=10.0,
    control_rate_hz=20.0, latency_initial_s=0.2, max_action_age_s=3.0,
    max_observation_age_s=1.0, diagnostics_period_s=0.2,
    outputs=['action', 'action_chunk', 'eef_twist', 'gripper_command'], gripper_dims=[6],
    gripper_open_position=-1.0, gripper_closed_position=1.0, pos_scale=0.05, rot_scale=0.5,
    base_frame='fr3_link0', eef_pose_source='topic', eef_pose_topic='eef_pose',
    proprio_joint_names=['fr3_finger_joint1', 'fr3_finger_joint2'],
    proprio_scale=[1.0] * 7 + [-1.0])
ALOHA = dict(
    camera_topics=['cam_high', 'cam_left', 'cam_right'], action_kind='absolute',
    interpolation='hold', hold_dims=[6, 13], action_rate_hz=25.0, control_rate_hz=50.0,
    latency_initial_s=0.5, max_action_age_s=3.0, max_observation_age_s=1.0,
    diagnostics_period_s=0.2,
    outputs=['action', 'action_chunk', 'joint_command', 'joint_trajectory', 'gripper_command'],
    action_joint_names=ALOHA_ACTION_NAMES, command_joint_names=ALOHA_COMMAND_NAMES,
    gripper_dims=[6, 13], gripper_convention='aloha_normalized',
    gripper_open_position=GRIPPER_OPEN, gripper_closed_position=GRIPPER_CLOSED,
    joint_state_topics=['puppet_left/joint_states:left_', 'puppet_right/joint_states:right_'],
    proprio_joint_names=([f'left_{j}' for j in ARM] + ['left_left_finger']
                         + [f'right_{j}' for j in ARM] + ['right_left_finger']),
    proprio_scale=([1.0] * 6 + [FINGER_SCALE]) * 2,
    proprio_offset=([0.0] * 6 + [FINGER_OFFSET]) * 2)

_LOADED = {}


class RecordingPolicy:
    """The real tiny-checkpoint policy, remembering the proprio it was given."""

    def __init__(self, variant):
        if variant not in _LOADED:  # load once per test session
            from openvla_ros.model.testing.factory import tiny_checkpoint
            from openvla_ros.policy import OpenVLAPolicy

            _LOADED[variant] = OpenVLAPolicy.from_pretrained(tiny_checkpoint(variant),
                                                             device='cpu')
        self._policy = _LOADED[variant]
        self.spec = self._policy.spec
        self.proprios = []

    def predict(self, images, instruction, proprio=None, noise=None):
        self.proprios.append(proprio)
        return self._policy.predict(images, instruction, proprio=proprio, noise=noise)


def robosuite_axis_angle(q):
    """Return robosuite's quat2axisangle (axis * 2 acos(w)), re-derived here."""
    w = min(max(q[3], -1.0), 1.0)
    return np.asarray(q[:3]) * 2.0 * np.arccos(w) / np.sqrt(1.0 - w * w)


class Probe:
    """Publishes the robot side (cameras, joints, pose, instruction) and records every output."""

    def __init__(self, node, cameras, joint_topics, use_pose):
        from geometry_msgs.msg import PoseStamped, TwistStamped
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import Float64MultiArray, String
        from trajectory_msgs.msg import JointTrajectory
        from diagnostic_msgs.msg import DiagnosticArray

        self.node, self.stamped, self.use_pose = node, True, use_pose
        self.Image, self.JointState, self.PoseStamped = Image, JointState, PoseStamped
        self.String = String
        self.lock = threading.Lock()
        self.received = {name: [] for name in (
            'action', 'action_chunk', 'joint_command', 'joint_trajectory', 'eef_twist',
            'gripper_command', 'diagnostics')}
        self.arrived = {name: [] for name in self.received}
        self.cams = [node.create_publisher(Image, NS + c, qos_profile_sensor_data)
                     for c in cameras]
        self.joints = {t: node.create_publisher(JointState, NS + t, qos_profile_sensor_data)
                       for t in joint_topics}
        self.pose = node.create_publisher(PoseStamped, NS + 'eef_pose', qos_profile_sensor_data)
        self.instruction = node.create_publisher(String, NS + 'instruction', 10)
        for name, msg_type in (('action', Float64MultiArray), ('action_chunk', JointTrajectory),
                               ('joint_command', Float64MultiArray),
                               ('joint_trajectory', JointTrajectory),
                               ('eef_twist', TwistStamped),
                               ('gripper_command', Float64MultiArray)):
            node.create_subscription(msg_type, NS + name, self._recorder(name), 10)
        node.create_subscription(DiagnosticArray, '/diagnostics', self._recorder('diagnostics'),
                                 10)

    def _recorder(self, name):
        def record(msg, info):
            with self.lock:
                self.received[name].append((msg, self.now()))
                # when the middleware got it (system clock): what a controller would see, not
                # this probe's executor backlog on a loaded machine
                self.arrived[name].append(info['received_timestamp'] * 1e-9)
        return record

    def now(self):
        return self.node.get_clock().now().nanoseconds * 1e-9

    def msgs(self, name):
        with self.lock:
            return [m for m, _ in self.received[name]]

    def count(self, name):
        with self.lock:
            return len(self.received[name])

    def publish(self, joint_states, quaternion=None, frame='fr3_link0'):
        stamp = self.node.get_clock().now().to_msg()
        for pub in self.cams:
            image = self.Image(height=32, width=32, encoding='rgb8', step=96,
                               data=np.full((32, 32, 3), 120, np.uint8).tobytes())
            if self.stamped:
                image.header.stamp = stamp
            pub.publish(image)
        for topic, (names, positions) in joint_states.items():
            msg = self.JointState(name=names, position=positions)
            if self.stamped:
                msg.header.stamp = stamp
            self.joints[topic].publish(msg)
        if self.use_pose:
            pose = self.PoseStamped()
            pose.header.frame_id = frame
            if self.stamped:
                pose.header.stamp = stamp
            p, q = pose.pose.position, pose.pose.orientation
            p.x, p.y, p.z = POSE_XYZ
            q.x, q.y, q.z, q.w = quaternion
            self.pose.publish(pose)

    def stream_until(self, predicate, joint_states, timeout_s=30.0, instruction='pick it up',
                     **kwargs):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.publish(joint_states, **kwargs)
            if instruction:
                self.instruction.publish(self.String(data=instruction))
            if predicate():
                return True
            time.sleep(0.05)
        return False

    def diagnostic_values(self):
        diagnostics = self.msgs('diagnostics')
        if not diagnostics:
            return {}
        return {kv.key: kv.value for kv in diagnostics[-1].status[0].values}


def _seconds(t, origin=0):
    """Time or Duration in seconds; subtract a whole-second origin first to keep sub-us digits."""
    return (t.sec - origin) + 1e-9 * t.nanosec


def _chunk_rows(probe, spec):
    """Every published chunk row, clipped to the dataset bounds as the safety filter does."""
    rows = [np.clip(np.array(p.positions), spec.action_min, spec.action_max)
            for chunk in probe.msgs('action_chunk') for p in chunk.points]
    return np.array(rows)


def _matches_a_row(value, rows, atol=1e-9):
    return bool(np.any(np.all(np.abs(rows - value) <= atol, axis=1)))


@pytest.fixture
def start_node(rclpy_context, ros_executor, probe_node):
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from openvla_ros.ros.node import PolicyNode

    nodes = []

    def start(variant, params, joint_topics, use_pose=False, **overrides):
        policy = RecordingPolicy(variant)
        values = {'checkpoint': f'/tiny/{variant}', **params, **overrides}
        node = PolicyNode(policy_loader=lambda settings: policy, context=rclpy_context,
                          namespace='robot_test',
                          parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
        nodes.append(node)
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        ros_executor.add_node(node)
        probe = Probe(probe_node, params['camera_topics'], joint_topics, use_pose)
        return node, policy, probe

    yield start
    for node in nodes:
        ros_executor.remove_node(node)  # not spun while its entities are destroyed
        node.release()


def _aloha_joint_states(left=0.03, right=0.05):
    names = ARM + ['gripper', 'left_finger', 'right_finger']  # both arms: the same names
    return {'puppet_left/joint_states': (names, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, left, -left]),
            'puppet_right/joint_states': (names, [-0.1, -0.2, -0.3, -0.4, -0.5, -0.6, -0.7,
                                                  right, -right])}


LIBERO_JOINTS = {'joint_states': (['fr3_joint1', 'fr3_finger_joint1', 'fr3_finger_joint2'],
                                  [0.7, 0.03, 0.03])}
# the quaternion of 0.5 rad about x, sent with w < 0: robosuite's formula would give the
# 2 pi - 0.5 vector, outside the tiny checkpoint's statistics; the sign rule must not
HALF_RAD_X_NEGATED = (-np.sin(POSE_ANGLE / 2), 0.0, 0.0, -np.cos(POSE_ANGLE / 2))


def test_libero_eef_twist_gripper_and_eef_pose_proprio(start_node):
    node, policy, probe = start_node('l1', LIBERO, ['joint_states'], use_pose=True)
    spec = policy.spec
    assert probe.stream_until(lambda: probe.count('eef_twist') >= 30, LIBERO_JOINTS,
                              quaternion=HALF_RAD_X_NEGATED)
    # proprio: pose position, axis-angle inside the statistics, fingers with the 2nd negated
    low, high = np.array(spec.proprio_min[3:6]), np.array(spec.proprio_max[3:6])
    candidates = [robosuite_axis_angle(np.array(HALF_RAD_X_NEGATED)),
                  robosuite_axis_angle(-np.array(HALF_RAD_X_NEGATED))]
    inside = [c for c in candidates if np.all((low <= c) & (c <= high))]
    assert len(inside) == 1  # the tiny statistics hold exactly one of the two
    np.testing.assert_allclose(policy.proprios[-1], [*POSE_XYZ, *inside[0], 0.03, -0.03],
                               atol=1e-9)
    # eef_twist: a tick carries half a step (20 Hz ticks, 10 Hz steps); the twist applies the
    # whole step over one action period: pos_scale * row * action_rate_hz. A tick late or early
    # on the sub-step grid carries no sub-step or two (of one step or of neighbours): the twist
    # is then 0, 2 * row or the sum of two neighbouring rows.
    rows = _chunk_rows(probe, spec)
    single, possible = [], [np.zeros(6)]
    for chunk in probe.msgs('action_chunk'):
        steps = np.clip([p.positions for p in chunk.points], spec.action_min,
                        spec.action_max)[:, :6]
        single += list(steps)
        possible += list(steps) + list(2 * steps) + list(steps[1:] + steps[:-1])
    single, possible = np.array(single), np.array(possible)
    twists, actions = probe.msgs('eef_twist'), probe.msgs('action')
    matched = 0
    for twist, action in zip(twists, actions):
        assert twist.header.frame_id == 'fr3_link0'
        linear = np.array([twist.twist.linear.x, twist.twist.linear.y, twist.twist.linear.z])
        angular = np.array([twist.twist.angular.x, twist.twist.angular.y,
                            twist.twist.angular.z])
        np.testing.assert_allclose(linear, 0.05 * 2 * np.array(action.data[0:3]) * 10.0,
                                   atol=1e-12)
        np.testing.assert_allclose(angular, 0.5 * 2 * np.array(action.data[3:6]) * 10.0,
                                   atol=1e-12)
        step = np.concatenate([linear / (0.05 * 10.0), angular / (0.5 * 10.0)])
        assert _matches_a_row(step, possible), step
        matched += _matches_a_row(step, single)
    # Most ticks land on the grid, but on a loaded machine many do not (7 of 30 once); a twist
    # of the wrong size (e.g. a whole step per tick, twice the rate) would match none.
    assert matched >= 3, f'{matched} of {len(twists)} twists match a chunk step'
    # stamped with the node clock at the tick: at most a little before its arrival
    with probe.lock:
        lags = [t - _seconds(m.header.stamp) for m, t in probe.received['eef_twist']]
    assert 0.0 <= min(lags) and max(lags) < 0.5, lags
    # gripper: upstream's mapping of every chunk value, sent only when it changes
    commands = [-np.sign(2.0 * v - 1.0) for v in rows[:, 6]]  # binarize, -1 open / +1 close
    sent = [m.data.tolist() for m in probe.msgs('gripper_command')]
    assert sent and all(len(s) == 1 and s[0] in commands for s in sent)
    assert all(a != b for a, b in zip(sent, sent[1:])), 'a gripper target was sent twice'
    if len(set(commands)) == 1:  # the tiny model never opens: exactly one message
        assert sent == [[commands[0]]]
    # a JointState naming a joint twice and a pose in another frame are counted, not used
    dup = {'joint_states': (['fr3_finger_joint1', 'fr3_finger_joint1'], [0.01, 0.02])}
    probe.publish(dup, quaternion=HALF_RAD_X_NEGATED, frame='world')
    assert probe.stream_until(
        lambda: probe.diagnostic_values().get('rejected.joint_states') == '1'
        and probe.diagnostic_values().get('rejected.eef_pose') == '1',
        LIBERO_JOINTS, quaternion=HALF_RAD_X_NEGATED, timeout_s=10.0)


def test_gripper_command_is_sent_only_when_the_target_changes(start_node):
    node, policy, probe = start_node('l1', LIBERO, ['joint_states'], use_pose=True,
                                     gripper_convention='raw',
                                     outputs=['action', 'action_chunk', 'gripper_command'])
    # a stream long enough for the 2-tick hold to show: over a handful of actions the count is
    # noise (a loaded clean-clone CI run had 6 commands in its first 7 actions)
    assert probe.stream_until(
        lambda: probe.count('gripper_command') >= 6 and probe.count('action') >= 30,
        LIBERO_JOINTS, quaternion=HALF_RAD_X_NEGATED)
    rows = _chunk_rows(probe, policy.spec)
    sent = [m.data[0] for m in probe.msgs('gripper_command')]
    actions = probe.msgs('action')
    assert all(np.any(np.abs(rows[:, 6] - s) < 1e-12) for s in sent)  # raw: the clipped value
    assert all(a != b for a, b in zip(sent, sent[1:]))
    # each step's gripper value is held for 2 ticks, so at most about half as many commands
    changes = sum(a.data[6] != b.data[6] for a, b in zip(actions, actions[1:]))
    assert len(sent) <= changes + 2 < len(actions)


def _jtc_accepts(msg, controller_joints, received_s):
    """Return why joint_trajectory_controller would reject `msg` (empty: accepted).

    Its documented acceptance rules, with allow_partial_joints_goal false (the default).
    """
    reasons = []
    if not msg.joint_names:
        reasons.append('empty joint names')
    if sorted(msg.joint_names) != sorted(controller_joints):
        reasons.append('joints differ from the controller joints')
    if not msg.points:
        reasons.append('empty trajectory')
    times = [_seconds(p.time_from_start) for p in msg.points]
    if any(b <= a for a, b in zip(times, times[1:])):
        reasons.append('time_from_start not strictly increasing')
    if any(len(p.positions) != len(msg.joint_names) for p in msg.points):
        reasons.append('positions size mismatch')
    start = _seconds(msg.header.stamp)
    if start != 0.0 and times and start + times[-1] < received_s:
        reasons.append('non-zero start time that ends in the past')
    return reasons


def _jtc_sample(msg, t, state_at_start, origin):
    """Sample a positions-only trajectory as JTC does (spline interpolation -> linear).

    Ramp from the state at the start time to the first point, linear between points, hold after
    the last. `t` is in seconds after the whole second `origin`.
    """
    start = _seconds(msg.header.stamp, origin)
    times = [start] + [start + _seconds(p.time_from_start) for p in msg.points]
    values = [np.asarray(state_at_start)] + [np.array(p.positions) for p in msg.points]
    if t >= times[-1]:
        return values[-1]
    i = max(j for j in range(len(times)) if times[j] <= t)
    fraction = (t - times[i]) / (times[i + 1] - times[i])
    return values[i] + fraction * (values[i + 1] - values[i])


def test_aloha_joint_command_trajectory_grippers_and_two_arm_proprio(start_node):
    topics = list(_aloha_joint_states())
    node, policy, probe = start_node('aloha', ALOHA, topics)
    spec = policy.spec
    assert probe.stream_until(lambda: probe.count('joint_trajectory') >= 3
                              and probe.count('joint_command') >= 30, _aloha_joint_states())
    # proprio: each arm's joints by prefix, finger position normalized like upstream ALOHA
    expected = ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, (0.03 - 0.01844) / 0.03956]
                + [-0.1, -0.2, -0.3, -0.4, -0.5, -0.6, (0.05 - 0.01844) / 0.03956])
    np.testing.assert_allclose(policy.proprios[-1], expected, atol=1e-9)
    index = [ALOHA_ACTION_NAMES.index(n) for n in ALOHA_COMMAND_NAMES]
    rows = _chunk_rows(probe, spec)
    # joint_command: arm joints only, in the controller's order, each a (held) chunk step
    for command, action in zip(probe.msgs('joint_command'), probe.msgs('action')):
        np.testing.assert_array_equal(command.data, np.array(action.data)[index])
        assert _matches_a_row(np.array(command.data), rows[:, index])
    # joint_trajectory: accepted by JTC's rules; sampled where the chunk's steps are due it
    # gives the chunk's (clipped) rows; the first point is strictly ahead, so JTC ramps to it
    chunks = probe.msgs('action_chunk')
    with probe.lock:  # arrival times on the node's clock (system time here)
        trajectories = [(m, arrived) for (m, _), arrived in zip(
            probe.received['joint_trajectory'], probe.arrived['joint_trajectory'])]
    assert 0 < len(trajectories) <= len(chunks)
    for trajectory, received_s in trajectories:
        assert _jtc_accepts(trajectory, ALOHA_COMMAND_NAMES, received_s) == []
        assert trajectory.joint_names == ALOHA_COMMAND_NAMES
        origin = trajectory.header.stamp.sec
        start = _seconds(trajectory.header.stamp, origin)
        # its chunk: the one whose last step is due when the trajectory ends (a chunk that
        # arrived with every step already due gets no trajectory, so order alone can't pair)
        end = start + _seconds(trajectory.points[-1].time_from_start)
        chunk = next(c for c in chunks
                     if abs(_seconds(c.header.stamp, origin) + (len(c.points) - 1) / 25.0
                            - end) < 1e-6)
        t_obs = _seconds(chunk.header.stamp, origin)
        assert 0.0 <= received_s - _seconds(trajectory.header.stamp) < 0.5  # node clock
        assert _seconds(trajectory.points[0].time_from_start) > 0.0
        due = [t_obs + k / 25.0 for k in range(len(chunk.points))]
        ahead = [k for k, t in enumerate(due) if t > start]
        assert len(trajectory.points) == len(ahead)  # exactly the steps still ahead
        clipped = np.clip([p.positions for p in chunk.points], spec.action_min, spec.action_max)
        current = np.zeros(len(index))
        for point, k in zip(trajectory.points, ahead):  # each point is its step, when it is due
            # the node's clock times are float seconds since 1970: ~0.24 us resolution
            assert abs(start + _seconds(point.time_from_start) - due[k]) < 1e-6
            np.testing.assert_allclose(point.positions, clipped[k][index], atol=1e-12)
        for point, k in zip(trajectory.points, ahead):  # JTC reaches each step at its time
            reached = start + _seconds(point.time_from_start)
            np.testing.assert_allclose(_jtc_sample(trajectory, reached, current, origin),
                                       clipped[k][index], atol=1e-9)
        np.testing.assert_allclose(_jtc_sample(trajectory, due[ahead[-1]] + 1.0, current, origin),
                                   clipped[ahead[-1]][index])  # then holds the last step
        if len(ahead) > 1:  # linear between two steps
            middle = start + 0.5 * (_seconds(trajectory.points[0].time_from_start)
                                    + _seconds(trajectory.points[1].time_from_start))
            np.testing.assert_allclose(_jtc_sample(trajectory, middle, current, origin),
                                       0.5 * (clipped[ahead[0]] + clipped[ahead[1]])[index],
                                       atol=1e-6)
    # grippers: both, unnormalized to the joint range, only on change
    span = GRIPPER_OPEN - GRIPPER_CLOSED
    targets = [tuple(GRIPPER_CLOSED + np.clip(r[[6, 13]], 0, 1) * span) for r in rows]
    sent = [tuple(m.data) for m in probe.msgs('gripper_command')]
    assert sent and all(any(np.allclose(s, t, atol=1e-12) for t in targets) for s in sent)
    assert all(a != b for a, b in zip(sent, sent[1:]))
    # a JointState naming a joint twice is counted under its topic and not used
    bad = _aloha_joint_states()
    names, positions = bad['puppet_left/joint_states']
    bad['puppet_left/joint_states'] = (names[:-1] + ['waist'], positions)
    key = 'rejected.joint_states:puppet_left/joint_states'
    assert probe.stream_until(lambda: probe.diagnostic_values().get(key, '0') != '0',
                              {'puppet_left/joint_states': bad['puppet_left/joint_states']},
                              timeout_s=10.0)


def test_dry_run_and_stop_publish_nothing_that_moves_the_robot(start_node, probe_node):
    from rclpy.parameter import Parameter
    from std_srvs.srv import Trigger

    moving = ('action', 'joint_command', 'joint_trajectory', 'gripper_command')
    node, policy, probe = start_node('aloha', ALOHA, list(_aloha_joint_states()), dry_run=True)
    assert probe.stream_until(lambda: probe.count('action_chunk') >= 2, _aloha_joint_states())
    assert all(probe.count(name) == 0 for name in moving), 'dry run moved the robot'
    node.set_parameters([Parameter('dry_run', value=False)])
    assert probe.stream_until(lambda: all(probe.count(n) > 0 for n in moving),
                              _aloha_joint_states())
    stop = probe_node.create_client(Trigger, NS + 'stop')
    assert stop.wait_for_service(timeout_sec=5.0)
    assert stop.call(Trigger.Request(), timeout_sec=5.0).success
    time.sleep(0.3)  # messages already in flight
    counts = {name: probe.count(name) for name in moving}
    chunks = probe.count('action_chunk')
    probe.stream_until(lambda: False, _aloha_joint_states(), timeout_s=1.5)
    assert {name: probe.count(name) for name in moving} == counts, 'moved while stopped'
    assert probe.count('action_chunk') == chunks  # stopped: no inference either


@pytest.mark.parametrize('variant', ['l1', 'aloha'])
def test_command_stamps_follow_sim_time(start_node, probe_node, variant):
    from rosgraph_msgs.msg import Clock

    clock_pub = probe_node.create_publisher(Clock, '/clock', 10)
    sim = {'ns': 1_000 * 10**9}  # simulation starts at t = 1000 s

    def publish_clock():  # half real time: a slow CPU inference still leaves steps ahead
        sim['ns'] += 5_000_000
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(sim['ns'], 10**9)
        clock_pub.publish(msg)

    timer = probe_node.create_timer(0.01, publish_clock)
    try:
        if variant == 'l1':
            node, policy, probe = start_node('l1', LIBERO, ['joint_states'], use_pose=True,
                                             use_sim_time=True)
            kwargs, output = dict(quaternion=HALF_RAD_X_NEGATED), 'eef_twist'
            joints = LIBERO_JOINTS
        else:
            node, policy, probe = start_node('aloha', ALOHA, list(_aloha_joint_states()),
                                             use_sim_time=True)
            kwargs, output, joints = {}, 'joint_trajectory', _aloha_joint_states()
        probe.stamped = False  # wall-clock stamps would lie far in the node's future
        assert probe.stream_until(lambda: probe.count(output) >= 3, joints, timeout_s=60.0,
                                  **kwargs)
        for msg in probe.msgs(output):
            assert 1000 <= msg.header.stamp.sec < 1100, f'{output} stamped {msg.header.stamp}'
        if output == 'joint_trajectory':
            chunk = probe.msgs('action_chunk')[0]
            trajectory = probe.msgs(output)[0]
            first_due = _seconds(trajectory.header.stamp) + _seconds(
                trajectory.points[0].time_from_start)
            k = (first_due - _seconds(chunk.header.stamp)) * 25.0
            assert abs(k - round(k)) < 1e-6  # on the chunk's step grid, in sim time
    finally:
        probe_node.destroy_timer(timer)


def _has(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.mark.parametrize('overrides, message', [
    (dict(outputs=['eef_twist'], action_kind='absolute'), 'EEF-delta actions'),
    (dict(outputs=['joint_command']), 'absolute (joint position) actions, got action_kind'),
    (dict(outputs=['joint_trajectory'], action_kind='absolute'), 'command_joint_names'),
    (dict(outputs=['gripper_command'], gripper_dims=[-1]), 'expected gripper_dims'),
    (dict(outputs=['gripper_command'], gripper_dims=[7]), 'below the action size 7'),
    (dict(outputs=['servo']), "parameter 'outputs'"),
    (dict(gripper_convention='open_is_0'), 'gripper_convention'),
    (dict(proprio_joint_names=['fr3_finger_joint1']), 'expects 8 proprio values, got 1 joints'),
    (dict(proprio_scale=[1.0, 2.0]), 'proprio_scale: expected 1 or 8 values'),
    (dict(eef_pose_source='camera'), 'eef_pose_source'),
    pytest.param(dict(eef_pose_source='tf'), 'needs tf2_ros', marks=pytest.mark.skipif(
        _has('tf2_ros'), reason='tf2_ros is installed here')),
    pytest.param(dict(outputs=['gripper_action']), 'needs control_msgs',
                 marks=pytest.mark.skipif(_has('control_msgs'),
                                          reason='control_msgs is installed here')),
    (dict(gripper_action_type='Robotiq'), 'gripper_action_type'),
    (dict(outputs=['gripper_action'], gripper_action_type='ParallelGripperCommand',
          gripper_joint_names=['left', 'right']), 'one name per gripper dimension (1)'),
])
def test_configure_fails_with_the_parameter_named(rclpy_context, overrides, message, caplog):
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from openvla_ros.ros.node import PolicyNode

    policy = RecordingPolicy('l1')
    values = {'checkpoint': '/tiny/l1', **LIBERO, **overrides}
    errors = []
    node = PolicyNode(policy_loader=lambda settings: policy, context=rclpy_context,
                      namespace='robot_test',
                      parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
    node.get_logger().error = errors.append  # the node logs why configure failed
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert errors and message in errors[0], errors
        assert node._resources == []  # nothing was created
    finally:
        node.release()
        node.destroy_node()


@pytest.mark.skipif(not _has('tf2_ros'), reason='tf2_ros is not installed (ships with ROS 2, '
                    'not PyPI)')
def test_eef_pose_from_tf(start_node, probe_node):
    from geometry_msgs.msg import TransformStamped
    import tf2_ros

    broadcaster = tf2_ros.StaticTransformBroadcaster(probe_node)
    transform = TransformStamped()
    transform.header.frame_id, transform.child_frame_id = 'fr3_link0', 'fr3_hand_tcp'
    transform.header.stamp = probe_node.get_clock().now().to_msg()
    t = transform.transform
    t.translation.x, t.translation.y, t.translation.z = POSE_XYZ
    t.rotation.x, t.rotation.y, t.rotation.z, t.rotation.w = HALF_RAD_X_NEGATED
    broadcaster.sendTransform(transform)
    node, policy, probe = start_node('l1', LIBERO, ['joint_states'], eef_pose_source='tf',
                                     ee_frame='fr3_hand_tcp')
    assert probe.stream_until(lambda: policy.proprios, LIBERO_JOINTS)
    np.testing.assert_allclose(policy.proprios[-1][:4], [*POSE_XYZ, POSE_ANGLE], atol=1e-9)


@pytest.mark.skipif(not _has('control_msgs'), reason='control_msgs is not installed (ships '
                    'with ROS 2, not PyPI)')
def test_gripper_action_goals_follow_gripper_command(start_node, probe_node):
    from control_msgs.action import GripperCommand
    from rclpy.action import ActionServer

    goals = []

    def execute(goal_handle):
        goals.append(goal_handle.request.command.position)
        goal_handle.succeed()
        return GripperCommand.Result(position=goals[-1], reached_goal=True)

    server = ActionServer(probe_node, GripperCommand, NS + 'gripper_action', execute)
    try:
        node, policy, probe = start_node(
            'l1', LIBERO, ['joint_states'], use_pose=True,
            outputs=['action', 'action_chunk', 'gripper_command', 'gripper_action'])
        assert probe.stream_until(lambda: goals and probe.count('gripper_command') >= 1,
                                  LIBERO_JOINTS, quaternion=HALF_RAD_X_NEGATED)
        assert goals[0] == probe.msgs('gripper_command')[0].data[0]
    finally:
        server.destroy()


@pytest.mark.parametrize('config, variant', [('libero', 'l1'), ('aloha', 'aloha'),
                                             ('bridge', 'bridge')])
def test_shipped_configs_configure_against_their_checkpoint_shape(rclpy_context, config,
                                                                  variant):
    import dataclasses
    import pathlib

    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter
    import yaml

    from openvla_ros.ros.node import PolicyNode
    from openvla_ros.ros.params import OUTPUTS

    root = pathlib.Path(__file__).resolve().parents[2] / 'config'
    params = yaml.safe_load((root / f'{config}.yaml').read_text())['/**']['ros__parameters']
    policy = RecordingPolicy('aloha' if variant == 'aloha' else 'l1')
    if variant == 'bridge':  # no tiny Bridge variant: its shape on the LIBERO model's spec
        policy.spec = dataclasses.replace(
            policy.spec, chunk_len=5, num_images=1, proprio_dim=7,
            proprio_min=policy.spec.proprio_min[:7], proprio_max=policy.spec.proprio_max[:7])
    values = {**params, 'checkpoint': f'/tiny/{variant}', 'device': 'cpu'}
    errors = []
    node = PolicyNode(policy_loader=lambda settings: policy, context=rclpy_context,
                      namespace='robot_test',
                      parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
    node.get_logger().error = errors.append
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS, errors
    finally:
        node.release()
        node.destroy_node()
    remaps = yaml.safe_load((root / 'remaps' / f'{config}.yaml').read_text())['remappings']
    known = set(OUTPUTS) | {'joint_states', 'instruction'}
    assert set(remaps) <= known and set(remaps) & set(params['outputs'])


@pytest.mark.parametrize('action_type, names, expected_name', [
    ('GripperCommand', (), None),
    ('ParallelGripperCommand', (), []),
    ('ParallelGripperCommand', ('panda_finger_joint1',), ['panda_finger_joint1']),
])
def test_gripper_action_goal_fields(monkeypatch, action_type, names, expected_name):
    """The goal each action type gets, on stand-ins for control_msgs' classes (not on PyPI).

    GripperCommand.Goal().command is a control_msgs/GripperCommand (position, max_effort);
    ParallelGripperCommand.Goal().command is a sensor_msgs/JointState.
    """
    import dataclasses
    import types

    from sensor_msgs.msg import JointState

    from openvla_ros.ros import outputs

    @dataclasses.dataclass
    class Command:
        position: float = 0.0
        max_effort: float = 0.0

    def action(command_type):
        goal = type('Goal', (), {'__init__': lambda self: setattr(self, 'command',
                                                                  command_type())})
        return types.SimpleNamespace(Goal=goal)

    monkeypatch.setattr(outputs, 'control_actions', types.SimpleNamespace(
        GripperCommand=action(Command), ParallelGripperCommand=action(JointState)))
    robot = types.SimpleNamespace(gripper_action_type=action_type, gripper_joint_names=names)
    sender = object.__new__(outputs.CommandOutputs)
    sender._plan = types.SimpleNamespace(robot=robot)
    sender._gripper_action = getattr(outputs.control_actions, action_type)
    goal = sender._gripper_goal(0, 0.04)
    if action_type == 'GripperCommand':
        assert goal.command.position == 0.04
    else:
        assert isinstance(goal.command, JointState)  # the real message accepts these fields
        assert list(goal.command.position) == [0.04] and goal.command.name == expected_name


@pytest.mark.skipif(not _has('control_msgs'), reason='control_msgs is not installed (ships '
                    'with ROS 2, not PyPI)')
def test_parallel_gripper_action_goals_follow_gripper_command(start_node, probe_node):
    from control_msgs.action import ParallelGripperCommand
    from rclpy.action import ActionServer

    goals = []

    def execute(goal_handle):
        command = goal_handle.request.command
        goals.append((list(command.name), list(command.position)))
        goal_handle.succeed()
        return ParallelGripperCommand.Result()

    server = ActionServer(probe_node, ParallelGripperCommand, NS + 'gripper_action', execute)
    try:
        node, policy, probe = start_node(
            'l1', LIBERO, ['joint_states'], use_pose=True,
            outputs=['action', 'action_chunk', 'gripper_command', 'gripper_action'],
            gripper_action_type='ParallelGripperCommand', gripper_joint_names=['fr3_finger'])
        assert probe.stream_until(lambda: goals and probe.count('gripper_command') >= 1,
                                  LIBERO_JOINTS, quaternion=HALF_RAD_X_NEGATED)
        assert goals[0] == (['fr3_finger'], [probe.msgs('gripper_command')[0].data[0]])
    finally:
        server.destroy()
