"""Checks on a chunk offered to the engine: malformed ones raise, unusable ones are refused."""

from typing import Optional, Sequence

import numpy as np

from openvla_ros.execution.chunk import TIME_EPS_S

ALL_STEPS_PAST = 'every step is already past'


def checked_actions(actions, action_dim: Optional[int], hold_dims: Sequence[int],
                    execute_steps: Optional[int]) -> np.ndarray:
    """Return a float64 (H, A) copy of `actions`, or raise ValueError saying what was expected.

    Args:
        actions: the chunk, anything numpy converts to a 2-D numeric array.
        action_dim: A of the chunks seen so far, None before the first.
        hold_dims: configured hold dimensions; each must be < A.
        execute_steps: configured steps per chunk; H must be at least that.
    """
    try:
        actions = np.array(actions, dtype=np.float64)  # a copy: the caller may reuse theirs
    except (TypeError, ValueError) as error:
        raise ValueError(f'expected a numeric (H, A) array of actions, got {error}') from None
    if actions.ndim != 2 or actions.shape[0] < 1 or actions.shape[1] < 1:
        raise ValueError(f'expected actions of shape (H, A), got shape {actions.shape}')
    horizon, dims = actions.shape
    if action_dim is not None and dims != action_dim:
        raise ValueError(f'expected {action_dim} action dimensions as before, got {dims}')
    if hold_dims and max(hold_dims) >= dims:
        raise ValueError(
            f'expected more than {max(hold_dims)} action dimensions for hold_dims '
            f'{tuple(hold_dims)}, got {dims}')
    if execute_steps is not None and execute_steps > horizon:
        raise ValueError(
            f'expected a chunk of at least execute_steps={execute_steps} steps, got {horizon}')
    return actions


def rejection_reason(actions: np.ndarray, t_obs: float, now: float, end_step: int, *,
                     newest_t_obs: float, flushed_until_s: float, max_action_age_s: float,
                     action_rate_hz: float, moved_s: Optional[float]) -> str:
    """Why a well-formed chunk cannot be used, or '' if it can.

    Args:
        actions: (H, A) chunk.
        t_obs: its observation time.
        now: arrival time.
        end_step: steps of it that would be used.
        newest_t_obs: observation time of the newest accepted chunk (ownership is monotonic).
        flushed_until_s: time of the last reset; older observations belong to the old task.
        max_action_age_s: observations older than this are never acted on.
        action_rate_hz: step rate.
        moved_s: how long the arm has been moving since `t_obs`; the steps planned for that time
            are past. None when chunks start on arrival (sync mode): no step is ever past.
    """
    if not np.isfinite(actions).all():
        return 'non-finite actions'
    if t_obs > now + TIME_EPS_S:
        return 'observation time is in the future'
    if t_obs <= flushed_until_s:
        return 'observation predates the last reset'
    if t_obs <= newest_t_obs:
        return 'observation not newer than the current chunk'
    if now - t_obs > max_action_age_s:
        return 'observation older than max_action_age_s'
    if moved_s is not None and moved_s >= end_step / action_rate_hz - TIME_EPS_S:
        return ALL_STEPS_PAST
    return ''
