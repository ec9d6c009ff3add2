"""EEF pose -> the position + axis-angle proprio of EEF-pose checkpoints (LIBERO).

A rotation has two axis-angle vectors that robosuite's `quat2axisangle` can produce: from the
quaternion q it returns axis * 2 acos(w), an angle in [0, 2 pi], and the simulator's sign of q
decides which. For q that is r = axis * theta (theta <= pi, scipy's rotvec), for -q it is
r * (theta - 2 pi) / theta. Near the 180-degree orientation of a gripper pointing down the two
are far apart (about +pi and -pi about x), so the one used must be the one the checkpoint was
trained on: we take the candidate that lies inside (or nearest to) the checkpoint's proprio
statistics, ties going to the one nearest the middle of that range.
"""

from typing import Optional, Sequence

import numpy as np
from scipy.spatial.transform import Rotation

# Below this angle (rad) a rotation is the identity: axis undefined, the vector is zero.
IDENTITY_ANGLE = 1e-12


def check_quaternion(quaternion_xyzw: Sequence[float]) -> np.ndarray:
    """Return the quaternion as an array; raise ValueError if it is not finite or near zero."""
    q = np.asarray(quaternion_xyzw, dtype=np.float64)
    if q.shape != (4,) or not np.all(np.isfinite(q)):
        raise ValueError(f'orientation: expected 4 finite quaternion components, got '
                         f'{q.tolist()}')
    norm = float(np.linalg.norm(q))
    if abs(norm - 1.0) > 0.1:  # a unit quaternion off by rounding passes; garbage does not
        raise ValueError(f'orientation: expected a unit quaternion, got norm {norm:.4g}')
    return q / norm


def axis_angle_candidates(quaternion_xyzw: Sequence[float]) -> np.ndarray:
    """Both robosuite-style axis-angle vectors of a rotation: (2, 3), or (1, 3) for identity."""
    rotvec = Rotation.from_quat(check_quaternion(quaternion_xyzw)).as_rotvec()  # (3,)
    theta = float(np.linalg.norm(rotvec))
    if theta < IDENTITY_ANGLE:
        return np.zeros((1, 3))
    return np.stack([rotvec, rotvec * (theta - 2.0 * np.pi) / theta])


def choose_in_range(candidates: np.ndarray, low: Optional[Sequence[float]],
                    high: Optional[Sequence[float]]) -> np.ndarray:
    """Return the candidate inside [low, high] (or nearest to it, in units of the range's width).

    Ties (both inside) go to the candidate nearest the middle of the range; without a range,
    the first candidate (angle in [0, pi]) is returned.
    """
    if low is None or high is None:
        return candidates[0]
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    width = np.maximum(high - low, 1e-9)
    outside = np.sum(((candidates - np.clip(candidates, low, high)) / width) ** 2, axis=1)
    middle = np.sum(((candidates - 0.5 * (low + high)) / width) ** 2, axis=1)
    best = min(range(len(candidates)), key=lambda i: (round(outside[i], 12), middle[i]))
    return candidates[best]


def pose_to_proprio(position: Sequence[float], quaternion_xyzw: Sequence[float],
                    low: Optional[Sequence[float]] = None,
                    high: Optional[Sequence[float]] = None) -> np.ndarray:
    """[x, y, z, ax, ay, az]: position and the axis-angle vector chosen by `choose_in_range`.

    `low` / `high` are the checkpoint's proprio statistics of the 3 axis-angle dimensions.
    """
    position = np.asarray(position, dtype=np.float64)
    if position.shape != (3,) or not np.all(np.isfinite(position)):
        raise ValueError(f'position: expected 3 finite values, got {position.tolist()}')
    rotation = choose_in_range(axis_angle_candidates(quaternion_xyzw), low, high)
    return np.concatenate([position, rotation])
