"""What the engine hands back: one tick's action, and counters for diagnostics."""

from dataclasses import asdict, dataclass
import math

import numpy as np


@dataclass(frozen=True, slots=True)
class TickResult:
    """The action to publish on one control tick and where it came from.

    Args:
        action: (A,) action to publish (before safety filters).
        chunk_id: id of the chunk that owns the tick (the newest one when blending; for a hold,
            the chunk the held action came from).
        step: step of that chunk the action belongs to.
        position: position in that chunk in steps (2.5: halfway through step 2).
        t_obs: observation time of that chunk.
        fresh: False when the tick is an underrun answered by `underrun_policy='hold'`.
        switched: True on the first tick a chunk publishes after another chunk did.
    """

    action: np.ndarray
    chunk_id: int
    step: int
    position: float
    t_obs: float
    fresh: bool
    switched: bool


@dataclass
class ExecutionCounters:
    """Running totals since the engine was created (a reset does not clear them).

    Args:
        ticks: calls to `tick`.
        published: ticks that returned an action (fresh or held).
        held: underrun ticks answered with a held action.
        underruns: ticks with no fresh action after the first chunk since the last reset was
            used (in sync mode every tick spent waiting for a chunk is one, by design).
        stale_drops: underrun ticks where a chunk or a held action existed but was older than
            `max_action_age_s`.
        skipped_stale_steps: steps never published because their period had passed, mostly the
            steps of a new chunk that were due while it was being computed.
        chunks_received: calls to `push_chunk`.
        chunks_discarded: received chunks that were rejected (see `last_discard_reason`).
        switches: ticks where a newer chunk took over from one that had published.
        max_switch_discontinuity: largest |action change| at a switch over the non-hold
            dimensions of absolute actions (includes one tick of normal motion).
        last_switch_discontinuity: the same for the most recent switch.
        inferences_started: calls to `inference_started`.
        inferences_failed: calls to `inference_failed`.
        latency_last_s: most recent measured latency (request to chunk arrival).
        latency_p50_s: median of the latency window.
        latency_estimate_s: the scheduling quantile of the latency window.
        resets: calls to `reset`, including the engine's own on time going backwards.
        last_reset_reason: reason given to the most recent reset.
        last_discard_reason: why the most recent chunk was rejected.
    """

    ticks: int = 0
    published: int = 0
    held: int = 0
    underruns: int = 0
    stale_drops: int = 0
    skipped_stale_steps: int = 0
    chunks_received: int = 0
    chunks_discarded: int = 0
    switches: int = 0
    max_switch_discontinuity: float = 0.0
    last_switch_discontinuity: float = 0.0
    inferences_started: int = 0
    inferences_failed: int = 0
    latency_last_s: float = math.nan
    latency_p50_s: float = math.nan
    latency_estimate_s: float = math.nan
    resets: int = 0
    last_reset_reason: str = ''
    last_discard_reason: str = ''

    def as_dict(self) -> dict:
        """Plain dict of every counter, e.g. for a DiagnosticStatus."""
        return asdict(self)
