"""Proprio assembly from several sources, scale and offset, without ROS."""

import numpy as np
import pytest

from openvla_ros.robot_io.proprio import parse_joint_state_topics, ProprioAssembler


def test_topics_with_and_without_prefix():
    assert parse_joint_state_topics(['joint_states', 'right/joint_states:right_']) == [
        ('joint_states', ''), ('right/joint_states', 'right_')]
    with pytest.raises(ValueError, match='distinct topics'):
        parse_joint_state_topics(['a', 'a:x_'])
    with pytest.raises(ValueError, match='topic:prefix'):
        parse_joint_state_topics([':x_'])


def test_two_arms_with_the_same_joint_names_and_a_scaled_gripper():
    # ALOHA: both arms publish 'waist', 'finger'; the prefixes tell them apart. The finger
    # position (m) is normalized to 0 closed .. 1 open: (x - 0.01844) / (0.05800 - 0.01844).
    scale = np.array([1.0, 1 / 0.03956, 1.0, 1 / 0.03956])
    offset = np.array([0.0, -0.01844 / 0.03956, 0.0, -0.01844 / 0.03956])
    assembler = ProprioAssembler(2, ['left_waist', 'left_finger', 'right_waist', 'right_finger'],
                                 uses_pose=False, scale=scale, offset=offset)
    assembler.put_joints(0, ['left_waist', 'left_finger'], np.array([0.1, 0.058]), 5.0)
    assert assembler.assemble() is None  # right arm not heard from yet
    assembler.put_joints(1, ['right_waist', 'right_finger'], np.array([-0.2, 0.01844]), 4.5)
    vector, stamp = assembler.assemble()
    np.testing.assert_allclose(vector, [0.1, 1.0, -0.2, 0.0], atol=1e-12)
    assert stamp == 4.5  # the oldest part


def test_pose_first_then_joints_with_robosuites_negative_second_finger():
    assembler = ProprioAssembler(1, ['finger1', 'finger2'], uses_pose=True,
                                 scale=np.array([1.0] * 7 + [-1.0]), offset=np.zeros(1))
    assembler.put_joints(0, ['finger1', 'finger2'], np.array([0.04, 0.04]), None)
    assert assembler.assemble() is None  # no pose yet
    assembler.put_pose(np.array([0.5, 0.0, 0.3, 3.1, 0.0, 0.1]), 2.0)
    vector, stamp = assembler.assemble()
    np.testing.assert_allclose(vector, [0.5, 0.0, 0.3, 3.1, 0.0, 0.1, 0.04, -0.04])
    assert stamp == 2.0  # unstamped parts do not count


def test_all_positions_in_order_and_the_errors():
    assembler = ProprioAssembler(2, [], uses_pose=False, scale=np.ones(1), offset=np.zeros(1))
    assembler.put_joints(0, ['a', 'b'], np.array([1.0, 2.0]), None)
    assembler.put_joints(1, ['c'], np.array([3.0]), None)
    np.testing.assert_array_equal(assembler.assemble()[0], [1.0, 2.0, 3.0])
    named = ProprioAssembler(2, ['a', 'c'], False, np.ones(1), np.zeros(1))
    named.put_joints(0, ['a'], np.array([1.0]), None)
    named.put_joints(1, ['a'], np.array([2.0]), None)
    with pytest.raises(ValueError, match="'a' from two"):
        named.assemble()
    named.put_joints(1, ['b'], np.array([2.0]), None)
    with pytest.raises(ValueError, match=r"missing \['c'\]"):
        named.assemble()
    wrong = ProprioAssembler(1, [], False, np.ones(2), np.zeros(1))
    wrong.put_joints(0, ['a', 'b', 'c'], np.zeros(3), None)
    with pytest.raises(ValueError, match='proprio_scale'):
        wrong.assemble()
