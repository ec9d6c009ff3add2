"""EEF pose -> position + axis-angle: both candidates, the sign rule, quaternion edge cases."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from openvla_ros.robot_io.pose import axis_angle_candidates, choose_in_range, pose_to_proprio

PI = np.pi


def robosuite_quat2axisangle(q):
    """robosuite.utils.transform_utils.quat2axisangle, re-derived: axis * 2 acos(w), w clipped."""
    q = np.asarray(q, dtype=np.float64)
    w = min(max(q[3], -1.0), 1.0)
    den = np.sqrt(1.0 - w * w)
    if np.isclose(den, 0.0):
        return np.zeros(3)
    return q[:3] * 2.0 * np.arccos(w) / den


def test_identity_is_zero_whatever_the_quaternion_sign():
    for q in ((0, 0, 0, 1), (0, 0, 0, -1)):
        np.testing.assert_array_equal(axis_angle_candidates(q), np.zeros((1, 3)))
        np.testing.assert_array_equal(pose_to_proprio((1, 2, 3), q, (-1,) * 3, (1,) * 3),
                                      [1, 2, 3, 0, 0, 0])


@pytest.mark.parametrize('axis', [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0)])
def test_180_degrees_has_both_signs_and_the_range_decides(axis):
    axis = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    q = np.append(axis, 0.0)  # w = 0: half a turn
    candidates = axis_angle_candidates(q)
    assert len(candidates) == 2
    np.testing.assert_allclose(sorted(map(tuple, candidates)),
                               sorted([tuple(PI * axis), tuple(-PI * axis)]), atol=1e-12)
    for sign in (1.0, -1.0):
        target = sign * PI * axis
        chosen = choose_in_range(candidates, target - 0.3, target + 0.3)
        np.testing.assert_allclose(chosen, target, atol=1e-12)


def test_gripper_pointing_down_lands_in_libero_like_statistics():
    # A Franka gripper pointing down: ~180 deg about x, tilted a little. LIBERO's axis-angle
    # statistics sit around +pi on x; scipy's canonical vector may be the -pi one.
    rotation = Rotation.from_euler('xyz', [179.0, 4.0, -3.0], degrees=True)
    for q in (rotation.as_quat(), -rotation.as_quat()):
        chosen = pose_to_proprio((0.0, 0.0, 0.0), q, low=(2.6, -0.6, -0.6),
                                 high=(3.6, 0.6, 0.6))[3:]
        assert 2.6 < chosen[0] < 3.6
        assert Rotation.from_rotvec(chosen).approx_equal(rotation, atol=1e-9)
        flipped = pose_to_proprio((0.0, 0.0, 0.0), q, low=(-3.6, -0.6, -0.6),
                                  high=(-2.6, 0.6, 0.6))[3:]
        assert -3.6 < flipped[0] < -2.6
        assert Rotation.from_rotvec(flipped).approx_equal(rotation, atol=1e-9)


def test_candidates_are_what_robosuite_returns_for_q_and_minus_q():
    rng = np.random.default_rng(0)
    for q in Rotation.random(200, random_state=1).as_quat():
        candidates = axis_angle_candidates(q)
        for signed in (q, -q):
            expected = robosuite_quat2axisangle(signed)
            assert np.min(np.linalg.norm(candidates - expected, axis=1)) < 1e-9
        # with statistics around robosuite's vector for the simulator's sign, we return it
        truth = robosuite_quat2axisangle(q if rng.random() < 0.5 else -q)
        chosen = choose_in_range(candidates, truth - 0.5, truth + 0.5)
        np.testing.assert_allclose(chosen, truth, atol=1e-9)


def test_without_statistics_the_angle_is_at_most_pi():
    q = Rotation.from_rotvec([0.0, 0.0, 2.0]).as_quat()
    np.testing.assert_allclose(pose_to_proprio((0, 0, 0), -q)[3:], [0.0, 0.0, 2.0])


def test_ties_go_to_the_middle_of_a_wide_range():
    q = Rotation.from_rotvec([0.0, 0.0, 3.0]).as_quat()  # candidates +3 and 3 - 2 pi = -3.28
    chosen = choose_in_range(axis_angle_candidates(q), (-4, -4, -4), (4.5, 4.5, 4.5))
    np.testing.assert_allclose(chosen, [0, 0, 3.0])  # both inside: nearer the middle 0.25


def test_bad_poses_are_refused():
    with pytest.raises(ValueError, match='unit quaternion'):
        pose_to_proprio((0, 0, 0), (0, 0, 0, 0))
    with pytest.raises(ValueError, match='finite quaternion'):
        pose_to_proprio((0, 0, 0), (0, 0, float('nan'), 1))
    with pytest.raises(ValueError, match='position'):
        pose_to_proprio((0, float('inf'), 0), (0, 0, 0, 1))
    # a unit quaternion off by rounding is normalized, not refused
    np.testing.assert_allclose(pose_to_proprio((0, 0, 0), (0, 0, 0, 1.001))[3:], 0.0)
