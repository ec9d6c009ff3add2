"""Chunk execution engine: pure Python + numpy, no torch, no ROS, no clock reads.

`ExecutionEngine` turns action chunks stamped with their observation time into one action per
control tick (sync or async, blending, interpolation, underrun policy, staleness);
`SafetyFilter` and the functions in `filters` bound what is finally published.
"""

from openvla_ros.execution.config import ExecutionConfig
from openvla_ros.execution.engine import ExecutionEngine
from openvla_ros.execution.filters import (
    clip_to_bounds, finite_or_none, rate_limit, SafetyFilter, SafetyLimits, scale_action)
from openvla_ros.execution.latency import LatencyEstimator
from openvla_ros.execution.result import ExecutionCounters, TickResult

__all__ = [
    'ExecutionConfig', 'ExecutionCounters', 'ExecutionEngine', 'LatencyEstimator', 'SafetyFilter',
    'SafetyLimits', 'TickResult', 'clip_to_bounds', 'finite_or_none', 'rate_limit',
    'scale_action',
]
