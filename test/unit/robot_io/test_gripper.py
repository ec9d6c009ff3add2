"""Gripper conventions against upstream OFT's evaluation maths (robot_utils.py), without ROS."""

import numpy as np
import pytest

from openvla_ros.robot_io.gripper import GripperMapping, open_fraction


def upstream_libero_command(value):
    """normalize_gripper_action(binarize=True) then invert_gripper_action, re-derived here."""
    normalized = 2.0 * (value - 0.0) / (1.0 - 0.0) - 1.0  # [0, 1] -> [-1, 1]
    return -np.sign(normalized)  # binarize, then -1 = open / +1 = close


@pytest.mark.parametrize('value', [0.0, 0.1, 0.49, 0.5, 0.51, 0.9, 1.0, -0.3, 1.7])
def test_oft_open_is_1_with_robosuite_positions_equals_upstream(value):
    mapping = GripperMapping(dims=(6,), convention='oft_open_is_1', open_position=-1.0,
                             closed_position=1.0)
    assert mapping.position(value) == upstream_libero_command(value)


def test_oft_open_is_1_binarizes_onto_the_configured_positions():
    mapping = GripperMapping(dims=(6,), open_position=0.08, closed_position=0.0)  # metres
    assert mapping.position(0.93) == 0.08 and mapping.position(0.02) == 0.0
    assert mapping.position(0.5) == pytest.approx(0.04)  # sign(0) = 0: upstream's midpoint
    assert open_fraction(0.7, 'oft_open_is_1') == 1.0


def test_aloha_normalized_unnormalizes_linearly_and_clips():
    # ALOHA puppet gripper joint: open 1.4910, closed -0.6213 rad (aloha constants)
    mapping = GripperMapping(dims=(6, 13), convention='aloha_normalized',
                             open_position=1.4910, closed_position=-0.6213)
    assert mapping.position(0.0) == pytest.approx(-0.6213)
    assert mapping.position(1.0) == pytest.approx(1.4910)
    assert mapping.position(0.25) == pytest.approx(-0.6213 + 0.25 * (1.4910 + 0.6213))
    assert mapping.position(-0.2) == pytest.approx(-0.6213)  # never beyond the joint range
    assert mapping.position(1.3) == pytest.approx(1.4910)
    action = np.zeros(14)
    action[6], action[13] = 1.0, 0.5
    np.testing.assert_allclose(mapping.targets(action), [1.4910, 0.5 * (1.4910 - 0.6213)])


def test_raw_passes_the_value_through():
    assert GripperMapping(dims=(0,), convention='raw').position(-0.37) == -0.37


def test_bad_mappings_are_refused():
    with pytest.raises(ValueError, match='gripper_convention'):
        GripperMapping(dims=(6,), convention='open_is_0')
    with pytest.raises(ValueError, match='distinct non-negative'):
        GripperMapping(dims=(6, 6))
    with pytest.raises(ValueError, match='below the action size 7'):
        GripperMapping(dims=(7,)).check_action_dim(7)
