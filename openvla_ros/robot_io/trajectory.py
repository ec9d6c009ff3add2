"""Action chunks as trajectories a ros2_control joint_trajectory_controller (JTC) accepts.

JTC's rules (ros2_controllers, joint_trajectory_controller docs): a zero header stamp means
"start now", a non-zero one places each point at stamp + time_from_start; points already in the
past are skipped and a trajectory whose last point is in the past is rejected; times must
increase strictly; a first point at time_from_start 0 means no ramp from the current state.
So we stamp with the node clock at publication and keep only the steps strictly after it: the
first point lies in the future and JTC ramps to it from wherever the arm is.
"""

from typing import List, Tuple

import numpy as np


def future_points(actions: np.ndarray, t_base: float, action_rate_hz: float, now: float,
                  end_step: int) -> List[Tuple[float, int]]:
    """(time_from_start relative to `now`, step index) of the steps still ahead of `now`.

    Step k of the chunk is due at t_base + k / action_rate_hz (the engine's schedule); only the
    first `end_step` steps are ever executed.
    """
    end = min(int(end_step), actions.shape[0])
    points = []
    for k in range(end):
        ahead = t_base + k / action_rate_hz - now
        if ahead > 0.0:
            points.append((ahead, k))
    return points
