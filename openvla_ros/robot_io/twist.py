"""EEF-delta actions as a Cartesian velocity (MoveIt Servo, Cartesian controllers).

One action step of an EEF-delta checkpoint is a displacement `pos_scale * a[0:3]` and a rotation
`rot_scale * a[3:6]` over one action period (LIBERO / robosuite OSC: 0.05 m and 0.5 rad per step
for input 1). Spread over the period, that is a constant twist of displacement * action_rate_hz.
"""

from typing import Tuple

import numpy as np


def step_delta(tick_action: np.ndarray, substeps_per_step: int) -> np.ndarray:
    """Delta of one action step from the per-tick delta the engine publishes.

    The engine splits each delta step into `substeps_per_step` equal sub-steps, one per control
    tick (ExecutionConfig.substeps_per_step), so a tick carries 1/substeps of the step.
    """
    return np.asarray(tick_action[:6], dtype=np.float64) * substeps_per_step


def eef_twist(delta: np.ndarray, pos_scale: float, rot_scale: float,
              action_rate_hz: float) -> Tuple[np.ndarray, np.ndarray]:
    """(linear m/s, angular rad/s) that apply one step's delta over one action period."""
    delta = np.asarray(delta, dtype=np.float64)
    if delta.shape[0] < 6:
        raise ValueError(f'eef_twist: expected an action with at least 6 dimensions (xyz, '
                         f'rotation), got {delta.shape[0]}')
    linear = pos_scale * delta[0:3] * action_rate_hz
    angular = rot_scale * delta[3:6] * action_rate_hz
    return linear, angular
