"""Weights for blending the overlap of consecutive chunks (absolute actions, async mode)."""

import numpy as np


def crossfade_weight(elapsed_s: float, action_rate_hz: float, crossfade_steps: int) -> float:
    """Weight of the new chunk during a crossfade; the previous chunk gets 1 minus it.

    Rises linearly with time from 1/(K+1) on the new chunk's first tick to 1 after K action
    steps, so the new chunk has a say from its very first tick and the fade is continuous at any
    control rate.
    """
    return min(1.0, (elapsed_s * action_rate_hz + 1.0) / (crossfade_steps + 1.0))


def ensemble_weights(count: int, decay: float) -> np.ndarray:
    """ACT temporal-ensembling weights for `count` chunks ordered oldest first, summing to 1.

    As in ACT (Zhao et al. 2023, arXiv 2304.13705, and lerobot's ACTTemporalEnsembler):
    `w_i = exp(-decay * i)` with i = 0 the oldest chunk that covers the current time. A positive
    decay weights older predictions more, which ACT found smoother; a negative one favours newer
    chunks. Normalised, the weights only depend on the ranks, not on absolute chunk ids.
    """
    exponents = -decay * np.arange(count, dtype=np.float64)  # (count,)
    weights = np.exp(exponents - exponents.max())  # shifted: no overflow for any decay
    return weights / weights.sum()


def blend_actions(values: np.ndarray, weights: np.ndarray, newest: np.ndarray,
                  hold_idx: np.ndarray) -> np.ndarray:
    """Weighted sum of (n, A) candidate actions; `hold_idx` dims are taken from `newest`."""
    blended = weights @ values  # (A,)
    blended[hold_idx] = newest[hold_idx]
    return blended


def blend_overlap(action: np.ndarray, owner, older: list, now: float, config,
                  hold_idx: np.ndarray) -> np.ndarray:
    """Mix older chunks that still cover `now` into the owner's absolute action.

    Args:
        action: (A,) the owner's own action at `now`.
        owner: the chunk that owns the tick (a ScheduledChunk that has published).
        older: usable older chunks, oldest first; crossfade uses the newest of them.
        now: tick time.
        config: the ExecutionConfig (blend, rates, crossfade_steps, ensemble_decay).
        hold_idx: dimensions taken from the owner unblended.
    """
    if not older:
        return action
    if config.blend == 'crossfade':
        weight = crossfade_weight(now - owner.first_tick_s, config.action_rate_hz,
                                  config.crossfade_steps)
        if weight >= 1.0:
            return action
        previous = older[-1]
        old = previous.value_at(previous.position(now))
        return blend_actions(np.stack([old, action]), np.array([1.0 - weight, weight]), action,
                             hold_idx)
    values = np.stack([c.value_at(c.position(now)) for c in older] + [action])  # (n, A)
    weights = ensemble_weights(len(values), config.ensemble_decay)
    return blend_actions(values, weights, action, hold_idx)
