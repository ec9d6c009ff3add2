"""A windowed estimate of inference latency, used to decide when to request the next chunk."""

from collections import deque
import math

import numpy as np


class LatencyEstimator:
    """Quantile of the last `window` observed latencies.

    The quantile uses numpy's 'higher' method, so the estimate is always one of the observed
    values and never below the requested quantile: scheduling errs on the early side. Before the
    first observation the estimate is `initial_s`.

    Args:
        quantile: which quantile to report, in (0, 1]; 1.0 is the window maximum.
        window: how many recent observations are kept.
        initial_s: estimate reported before anything has been observed.
    """

    def __init__(self, quantile: float = 0.95, window: int = 50, initial_s: float = 0.1):
        if not 0.0 < quantile <= 1.0:
            raise ValueError(f'expected quantile in (0, 1], got {quantile!r}')
        if window < 1:
            raise ValueError(f'expected window >= 1, got {window!r}')
        if not (math.isfinite(initial_s) and initial_s >= 0.0):
            raise ValueError(f'expected initial_s finite and >= 0, got {initial_s!r}')
        self._quantile = quantile
        self._initial_s = float(initial_s)
        self._samples = deque(maxlen=window)
        self._estimate_s = self._initial_s
        self._median_s = self._initial_s

    def observe(self, latency_s: float) -> None:
        """Add one measured latency (seconds, finite, >= 0) and update the estimate."""
        if not (math.isfinite(latency_s) and latency_s >= 0.0):
            raise ValueError(f'expected a finite latency >= 0 s, got {latency_s!r}')
        self._samples.append(float(latency_s))
        # The quantile is computed here, once per chunk, so that reading it per tick is free.
        samples = np.fromiter(self._samples, dtype=np.float64, count=len(self._samples))
        self._estimate_s = float(np.quantile(samples, self._quantile, method='higher'))
        self._median_s = float(np.quantile(samples, 0.5, method='higher'))

    def reset(self) -> None:
        """Forget every observation; the estimate returns to `initial_s`."""
        self._samples.clear()
        self._estimate_s = self._initial_s
        self._median_s = self._initial_s

    @property
    def estimate_s(self) -> float:
        """The configured quantile of the window (or `initial_s` before any observation)."""
        return self._estimate_s

    @property
    def median_s(self) -> float:
        """The window's median (p50), for diagnostics."""
        return self._median_s

    @property
    def last_s(self) -> float:
        """The most recent observation, NaN before any."""
        return self._samples[-1] if self._samples else math.nan

    @property
    def count(self) -> int:
        """How many observations the window holds."""
        return len(self._samples)
