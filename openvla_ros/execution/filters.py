"""Safety filters for the published action: pure functions plus a small chain that composes them.

Order in `SafetyFilter`: non-finite guard, scale, clip to bounds, per-tick rate limit. Clipping
comes before the rate limit so the limited action still lies inside the bounds (it moves from
the previous, in-bounds output towards an in-bounds target). The rate limit is meant for
absolute actions; for delta actions bound the per-tick increment with `low`/`high` instead.
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np


def finite_or_none(action: np.ndarray) -> Optional[np.ndarray]:
    """Return `action` as float64 if every entry is finite, else None (no NaN, no inf)."""
    action = np.asarray(action, dtype=np.float64)
    return action if np.isfinite(action).all() else None


def scale_action(action: np.ndarray, scale) -> np.ndarray:
    """Multiply by a scalar or per-dimension (A,) scale."""
    return np.asarray(action, dtype=np.float64) * scale


def clip_to_bounds(action: np.ndarray, low, high) -> np.ndarray:
    """Clip each dimension into [low, high] (scalars or (A,) arrays; +-inf leaves a side open)."""
    return np.clip(np.asarray(action, dtype=np.float64), low, high)


def rate_limit(action: np.ndarray, previous: Optional[np.ndarray], max_step) -> np.ndarray:
    """Move from `previous` towards `action` by at most `max_step` per dimension.

    `max_step` is a scalar or (A,) array >= 0. Without a previous action the action passes.
    """
    action = np.asarray(action, dtype=np.float64)
    if previous is None:
        return action.copy()
    return previous + np.clip(action - previous, -np.asarray(max_step), max_step)


def _as_vector(name, value, dims):
    """None, or a float64 vector broadcast from a scalar or a sequence; ValueError otherwise."""
    if value is None:
        return None
    array = np.asarray(value, dtype=np.float64)
    if array.ndim > 1 or (array.ndim == 1 and dims is not None and array.shape[0] != dims):
        raise ValueError(f'expected `{name}` to be a scalar or a vector of {dims} values, '
                         f'got shape {array.shape}')
    if np.isnan(array).any():
        raise ValueError(f'expected `{name}` without NaN, got {value!r}')
    return array


@dataclass(frozen=True)
class SafetyLimits:
    """Bounds applied to every published action. Each field may be a scalar or an (A,) vector.

    Args:
        low: lower bounds (e.g. dataset q01 or joint limits); None for no lower bound.
        high: upper bounds; None for no upper bound.
        max_step_per_tick: largest change between consecutive outputs; None for no rate limit.
        scale: factor applied before clipping (e.g. to slow a policy down); None for 1.
        dims: action dimension A the vectors must have; None infers it from them.
    """

    low: Optional[np.ndarray] = None
    high: Optional[np.ndarray] = None
    max_step_per_tick: Optional[np.ndarray] = None
    scale: Optional[np.ndarray] = None
    dims: Optional[int] = None

    def __post_init__(self):
        names = ('low', 'high', 'max_step_per_tick', 'scale')
        for name in names:
            object.__setattr__(self, name, _as_vector(name, getattr(self, name), self.dims))
        sizes = {getattr(self, n).shape[0] for n in names
                 if getattr(self, n) is not None and getattr(self, n).ndim == 1}
        if len(sizes) > 1:
            raise ValueError(f'expected the limit vectors to share one length, got lengths '
                             f'{sorted(sizes)}')
        if sizes and self.dims is None:
            object.__setattr__(self, 'dims', sizes.pop())
        if self.low is not None and self.high is not None and np.any(self.low > self.high):
            raise ValueError(f'expected low <= high, got low={self.low} high={self.high}')
        if self.max_step_per_tick is not None and np.any(self.max_step_per_tick < 0):
            raise ValueError(f'expected max_step_per_tick >= 0, got {self.max_step_per_tick}')


class SafetyFilter:
    """Applies `SafetyLimits` tick after tick, remembering its last output for the rate limit.

    Args:
        limits: the bounds to enforce.
    """

    def __init__(self, limits: SafetyLimits):
        self.limits = limits
        self.previous: Optional[np.ndarray] = None
        self.rejected_nonfinite = 0
        self.clipped = 0
        self.rate_limited = 0
        self._dims = limits.dims

    def __call__(self, action: np.ndarray) -> Optional[np.ndarray]:
        """Filter one action; None if it contained NaN or inf (counted)."""
        limits = self.limits
        checked = finite_or_none(action)
        if checked is None:
            self.rejected_nonfinite += 1
            return None
        if checked.ndim != 1 or (self._dims is not None and checked.shape[0] != self._dims):
            raise ValueError(
                f'expected an action of shape ({self._dims or "A"},), got {checked.shape}')
        if limits.scale is not None:
            checked = scale_action(checked, limits.scale)
        if limits.low is not None or limits.high is not None:
            low = -np.inf if limits.low is None else limits.low
            high = np.inf if limits.high is None else limits.high
            clipped = clip_to_bounds(checked, low, high)
            self.clipped += int(not np.array_equal(clipped, checked))
            checked = clipped
        if limits.max_step_per_tick is not None:
            limited = rate_limit(checked, self.previous, limits.max_step_per_tick)
            self.rate_limited += int(not np.array_equal(limited, checked))
            checked = limited
        self.previous = checked
        return checked

    def reset(self, previous: Optional[np.ndarray] = None) -> None:
        """Forget the last output, or seed it (e.g. with the measured joint positions)."""
        self.previous = None if previous is None else np.asarray(previous, dtype=np.float64)
