"""Configuration of the chunk execution engine (DESIGN.md section 5)."""

from dataclasses import dataclass
import math
import numbers
from typing import Optional, Tuple

EXECUTION_MODES = ('sync', 'async')
BLENDS = ('none', 'crossfade', 'ensemble')
ACTION_KINDS = ('absolute', 'delta')
INTERPOLATIONS = ('hold', 'linear')
UNDERRUN_POLICIES = ('hold', 'silent')


def _require_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f'`{name}` must be one of {choices}. Got {value!r}.')


def _require_positive(name, value):
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f'`{name}` must be a finite number > 0. Got {value!r}.')


def _require_non_negative(name, value):
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f'`{name}` must be a finite number >= 0. Got {value!r}.')


def _require_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f'`{name}` must be an integer >= {minimum}. Got {value!r}.')


@dataclass(frozen=True)
class ExecutionConfig:
    """How chunks of actions become one action per control tick.

    Times are seconds on the caller's clock; the engine never reads a clock itself.

    Args:
        execution_mode: 'async' (default) requests the next chunk while the current one still
            runs and switches over on arrival; 'sync' reproduces upstream: execute
            `execute_steps` actions, then request a new chunk and hold (or stay silent) until it
            arrives.
        action_rate_hz: rate the model's actions were recorded at; step k of a chunk is due at
            `t_obs + k / action_rate_hz`.
        control_rate_hz: rate of the caller's control timer. When it is higher than
            `action_rate_hz`, absolute actions are held or interpolated between steps and delta
            actions are split evenly over `round(control_rate_hz / action_rate_hz)` sub-steps.
        execute_steps: steps of each chunk that are ever executed (upstream
            `num_open_loop_steps`). None uses the whole chunk. Also caps async mode, which is a
            way to drop a poorly predicted tail.
        latency_quantile: quantile of the recent inference latencies used to decide when to
            request the next chunk in async mode (0.95: p95).
        latency_window: number of recent latencies the quantile is taken over.
        latency_initial_s: latency assumed before the first one has been measured.
        latency_margin_s: extra time added to the latency estimate; it must cover the control
            period plus how far a latency can exceed the quantile.
        blend: how async mode handles the overlap of a new chunk with the previous one. 'none'
            switches at once; 'crossfade' fades linearly from the previous chunk to the new one
            over `crossfade_steps` action steps; 'ensemble' averages every chunk that covers the
            current time with ACT's temporal-ensembling weights. Blending applies to absolute
            actions only and is ignored in sync mode (chunks never overlap there).
        crossfade_steps: length K of the crossfade, in action steps.
        ensemble_decay: m in ACT's weights `w_i = exp(-m * i)`, i = 0 for the oldest chunk
            covering the current time. Positive values (ACT uses 0.01) favour older chunks,
            negative values favour newer ones, 0 is a plain mean.
        action_kind: 'absolute' (positions, poses) or 'delta' (increments). Delta actions are
            never over-applied: each step's increment is published exactly once in total.
        interpolation: 'hold' keeps an absolute step until the next one is due; 'linear'
            interpolates from step k to step k+1 over step k's period. Unused for delta actions.
        hold_dims: dimensions that are binary or otherwise absolute (grippers). They are never
            interpolated, blended or split: the value of the current step is published as is,
            also when `action_kind` is 'delta'.
        resume_after_stall: async mode: a chunk whose first tick finds the arm standing still
            (before the first action, after an underrun) resumes from the step it planned for the
            moment the arm stopped, re-based to now, instead of skipping every step whose time
            has passed: those steps were never executed, and skipping them makes the arm jump.
            The steps planned while the arm was still moving are skipped as usual. (Sync mode
            always starts a chunk on arrival.)
        underrun_policy: what a tick publishes when no chunk has an action for it. 'hold'
            repeats the last absolute action (for delta actions: zero increments, hold_dims kept),
            'silent' publishes nothing.
        max_action_age_s: no action whose observation is older than this is ever published,
            held ones included. In sync mode a chunk is re-based to start at the first tick after
            it arrives (the robot waited for it), so there the age counts from that start; a sync
            chunk that arrives more than this after its observation is discarded.
    """

    # Scheduling
    execution_mode: str = 'async'
    action_rate_hz: float = 20.0
    control_rate_hz: float = 100.0
    execute_steps: Optional[int] = None
    # Latency estimate (async)
    latency_quantile: float = 0.95
    latency_window: int = 50
    latency_initial_s: float = 0.1
    latency_margin_s: float = 0.1
    # Overlap of consecutive chunks (async)
    blend: str = 'none'
    crossfade_steps: int = 3
    ensemble_decay: float = 0.01
    # Action semantics
    action_kind: str = 'absolute'
    interpolation: str = 'linear'
    hold_dims: Tuple[int, ...] = ()
    resume_after_stall: bool = True
    # Safety
    underrun_policy: str = 'hold'
    max_action_age_s: float = 2.0

    def __post_init__(self):
        _require_choice('execution_mode', self.execution_mode, EXECUTION_MODES)
        _require_positive('action_rate_hz', self.action_rate_hz)
        _require_positive('control_rate_hz', self.control_rate_hz)
        if self.execute_steps is not None:
            _require_int('execute_steps', self.execute_steps, 1)
        if not (isinstance(self.latency_quantile, (int, float))
                and 0.0 < self.latency_quantile <= 1.0):
            raise ValueError(
                f'`latency_quantile` must be in (0, 1]. Got {self.latency_quantile!r}.')
        _require_int('latency_window', self.latency_window, 1)
        _require_non_negative('latency_initial_s', self.latency_initial_s)
        _require_non_negative('latency_margin_s', self.latency_margin_s)
        _require_choice('blend', self.blend, BLENDS)
        _require_int('crossfade_steps', self.crossfade_steps, 1)
        if not (isinstance(self.ensemble_decay, (int, float))
                and math.isfinite(self.ensemble_decay)):
            raise ValueError(
                f'`ensemble_decay` must be a finite number. Got {self.ensemble_decay!r}.')
        _require_choice('action_kind', self.action_kind, ACTION_KINDS)
        _require_choice('interpolation', self.interpolation, INTERPOLATIONS)
        if not isinstance(self.resume_after_stall, bool):
            raise ValueError(
                f'`resume_after_stall` must be True or False. Got {self.resume_after_stall!r}.')
        _require_choice('underrun_policy', self.underrun_policy, UNDERRUN_POLICIES)
        _require_positive('max_action_age_s', self.max_action_age_s)
        if isinstance(self.hold_dims, (str, bytes)) or not hasattr(self.hold_dims, '__iter__'):
            raise ValueError(f'`hold_dims` must be a sequence of ints. Got {self.hold_dims!r}.')
        for dim in self.hold_dims:
            _require_int('hold_dims entries', dim, 0)
        hold_dims = tuple(int(dim) for dim in self.hold_dims)
        if len(set(hold_dims)) != len(hold_dims):
            raise ValueError(f'`hold_dims` must not repeat a dimension. Got {hold_dims!r}.')
        object.__setattr__(self, 'hold_dims', hold_dims)
        if self.action_kind == 'delta' and self.blend != 'none':
            raise ValueError(
                "`blend` must be 'none' for delta actions: a blend of increments would apply "
                f'more or less than the chunks hold. Got {self.blend!r}.')

    @property
    def substeps_per_step(self) -> int:
        """Sub-steps a delta step is split into: control ticks per action period, at least 1."""
        return max(1, round(self.control_rate_hz / self.action_rate_hz))
