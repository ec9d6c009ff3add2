"""JTC point selection, the EEF twist and the command joint order, without ROS."""

import numpy as np
import pytest

from openvla_ros.robot_io.joints import command_indices
from openvla_ros.robot_io.trajectory import future_points
from openvla_ros.robot_io.twist import eef_twist, step_delta


def test_future_points_keep_the_steps_strictly_after_now():
    actions = np.arange(8.0)[:, None] * np.ones((1, 3))  # (8, 3)
    # step k due at 10 + k / 4; now = 10.5 -> step 2 is due exactly now and is dropped
    points = future_points(actions, t_base=10.0, action_rate_hz=4.0, now=10.5, end_step=8)
    assert [k for _, k in points] == [3, 4, 5, 6, 7]
    np.testing.assert_allclose([ahead for ahead, _ in points], [0.25, 0.5, 0.75, 1.0, 1.25])
    assert all(ahead > 0 for ahead, _ in points)
    assert future_points(actions, 10.0, 4.0, 10.5, end_step=5) == points[:2]  # execute_steps
    assert future_points(actions, 10.0, 4.0, 12.0, end_step=8) == []  # all past: nothing
    assert [k for _, k in future_points(actions, 10.0, 4.0, 9.0, 8)] == list(range(8))


def test_eef_twist_is_one_step_spread_over_one_action_period():
    # robosuite OSC: input 1 = 0.05 m and 0.5 rad per step; at 20 Hz that is 1 m/s, 10 rad/s
    linear, angular = eef_twist(np.array([1.0, -0.5, 0.0, 0.0, 0.2, -1.0, 0.9]), 0.05, 0.5, 20.0)
    np.testing.assert_allclose(linear, [1.0, -0.5, 0.0])
    np.testing.assert_allclose(angular, [0.0, 2.0, -10.0])
    with pytest.raises(ValueError, match='at least 6'):
        eef_twist(np.zeros(3), 1.0, 1.0, 5.0)


def test_step_delta_undoes_the_engines_split_into_sub_steps():
    tick = np.array([0.01, 0.02, 0.03, 0.1, 0.2, 0.3, 1.0])  # a quarter step per tick
    np.testing.assert_allclose(step_delta(tick, 4), [0.04, 0.08, 0.12, 0.4, 0.8, 1.2])


def test_command_joints_by_name_or_by_arm_dimension():
    names = ['l0', 'l1', 'lg', 'r0', 'r1', 'rg']
    np.testing.assert_array_equal(
        command_indices(['r1', 'r0', 'l0', 'l1'], names, 6, (2, 5)), [4, 3, 0, 1])
    np.testing.assert_array_equal(command_indices(['a', 'b', 'c', 'd'], (), 6, (2, 5)),
                                  [0, 1, 3, 4])
    with pytest.raises(ValueError, match='gripper joints'):
        command_indices(['l0', 'lg'], names, 6, (2, 5))
    with pytest.raises(ValueError, match=r"unknown \['x'\]"):
        command_indices(['x'], names, 6, (2, 5))
    with pytest.raises(ValueError, match='expected 4 names'):
        command_indices(['a', 'b'], (), 6, (2, 5))
    with pytest.raises(ValueError, match='got none'):
        command_indices([], (), 6, ())
    with pytest.raises(ValueError, match='distinct'):
        command_indices(['a', 'a'], (), 2, ())
