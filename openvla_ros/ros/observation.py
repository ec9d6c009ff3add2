"""Latest-message store and reject counter shared by the node's callbacks (plain Python)."""

from collections import Counter
from dataclasses import dataclass
from typing import List, Optional

import numpy as np


@dataclass(frozen=True)
class Observation:
    """Everything one inference needs, taken at `t_obs` on the node clock."""

    images: List[np.ndarray]
    proprio: Optional[np.ndarray]
    instruction: str
    t_obs: float


class ObservationStore:
    """Keeps the latest image per camera, joint positions and instruction.

    Not locked itself: the node calls it under its lock (put_* are single assignments).
    """

    def __init__(self, num_cameras: int):
        self._images = [None] * num_cameras  # (rgb, stamp_s or None, received_s)
        self._joints = None
        self.instruction: Optional[str] = None

    def put_image(self, index: int, rgb: np.ndarray, stamp_s: Optional[float],
                  received_s: float) -> None:
        self._images[index] = (rgb, stamp_s, received_s)

    def put_joints(self, positions: np.ndarray, stamp_s: Optional[float],
                   received_s: float) -> None:
        self._joints = (positions, stamp_s, received_s)

    @staticmethod
    def _age(entry, now: float) -> float:
        _, stamp_s, received_s = entry
        return now - (stamp_s if stamp_s is not None else received_s)

    def snapshot(self, now: float, max_age_s: float, needs_proprio: bool
                 ) -> Optional[Observation]:
        """Return the current observation, or None while an input is missing or too old.

        t_obs is the oldest input's time, so the engine never treats an action as fresher than
        the data it was predicted from.
        """
        entries = list(self._images) + ([self._joints] if needs_proprio else [])
        if self.instruction is None or any(e is None for e in entries):
            return None
        ages = [self._age(e, now) for e in entries]
        if max(ages) > max_age_s:
            return None
        return Observation(
            images=[entry[0] for entry in self._images],
            proprio=self._joints[0] if needs_proprio else None,
            instruction=self.instruction,
            t_obs=now - max(0.0, max(ages)),
        )

    def ages(self, now: float) -> dict:
        """Age in seconds of every input (nan when never received), for diagnostics."""
        ages = {f'camera{i}': (self._age(e, now) if e is not None else float('nan'))
                for i, e in enumerate(self._images)}
        ages['joint_states'] = (self._age(self._joints, now) if self._joints is not None
                                else float('nan'))
        return ages


class RejectCounter:
    """Counts rejected inputs per source and remembers the last reason."""

    def __init__(self):
        self._counts = Counter()
        self.last_reason = ''

    def add(self, source: str, reason: str) -> int:
        self._counts[source] += 1
        self.last_reason = f'{source}: {reason}'
        return self._counts[source]

    def counts(self) -> dict:
        return dict(self._counts)
