"""Proprio vector from several sources: an EEF pose first, then joint positions, then scaled.

Sources arrive independently (a PoseStamped topic, one or more JointState topics); the vector is
complete once every source has sent something, and its time is the oldest part's time.
"""

import threading
from typing import List, Optional, Sequence, Tuple

import numpy as np


def parse_joint_state_topics(entries: Sequence[str]) -> List[Tuple[str, str]]:
    """'topic' or 'topic:prefix' -> (topic, prefix); the prefix is prepended to its names.

    ':' cannot occur in a ROS topic name, so it separates the prefix unambiguously.
    """
    parsed = []
    for entry in entries:
        topic, _, prefix = entry.partition(':')
        if not topic:
            raise ValueError(f'joint_state_topics: expected "topic" or "topic:prefix", got '
                             f'{entry!r}')
        parsed.append((topic, prefix))
    topics = [t for t, _ in parsed]
    if len(set(topics)) != len(topics):
        raise ValueError(f'joint_state_topics: expected distinct topics, got {topics}')
    return parsed


class ProprioAssembler:
    """Latest pose and joint positions -> proprio = (pose, joints) * scale + offset.

    Thread-safe: the sources' callbacks may run concurrently.

    Args:
        num_joint_sources: JointState topics, in parameter order.
        joint_names: (prefixed) names whose positions follow the pose, in order; empty: every
            position of every source, sources in order, names in message order.
        uses_pose: a 6-D [x, y, z, axis-angle] pose comes first.
        scale, offset: per proprio dimension (or one value for all).
    """

    def __init__(self, num_joint_sources: int, joint_names: Sequence[str], uses_pose: bool,
                 scale: np.ndarray, offset: np.ndarray):
        self._joint_names = tuple(joint_names)
        self._uses_pose = uses_pose
        self._scale, self._offset = scale, offset
        self._joints: list = [None] * num_joint_sources  # (names, positions, stamp or None)
        self._pose = None  # (vector, stamp or None)
        self._lock = threading.Lock()

    def put_joints(self, source: int, names: Sequence[str], positions: np.ndarray,
                   stamp: Optional[float]) -> None:
        with self._lock:
            self._joints[source] = (tuple(names), positions, stamp)

    def put_pose(self, vector: np.ndarray, stamp: Optional[float]) -> None:
        with self._lock:
            self._pose = (vector, stamp)

    def assemble(self) -> Optional[Tuple[np.ndarray, Optional[float]]]:
        """(proprio, oldest stamp or None) once every source has reported, else None.

        Raises ValueError when a joint is missing or provided twice, or the scale does not fit.
        """
        with self._lock:
            joints, pose = list(self._joints), self._pose
        if any(j is None for j in joints) or (self._uses_pose and pose is None):
            return None
        parts = [pose[0]] if self._uses_pose else []
        stamps = [pose[1]] if self._uses_pose else []
        stamps += [j[2] for j in joints]
        if self._joint_names:
            parts.append(_select(joints, self._joint_names))
        else:
            parts += [j[1] for j in joints]
        vector = np.concatenate(parts) if parts else np.zeros(0)
        if self._scale.size not in (1, vector.size) or self._offset.size not in (1, vector.size):
            raise ValueError(f'proprio_scale / proprio_offset: expected 1 or {vector.size} '
                             f'values, got {self._scale.size} / {self._offset.size}')
        known = [s for s in stamps if s is not None]
        return vector * self._scale + self._offset, (min(known) if known else None)


def _select(joints, wanted: Sequence[str]) -> np.ndarray:
    index = {}
    for source, (names, positions, _) in enumerate(joints):
        for i, name in enumerate(names):
            if name in index:
                raise ValueError(f'joint_state_topics: expected each joint from one topic, '
                                 f'got {name!r} from two (give the topics distinct prefixes)')
            index[name] = positions[i]
    missing = [n for n in wanted if n not in index]
    if missing:
        raise ValueError(f'joint_states: expected joints {list(wanted)}, missing {missing}')
    return np.array([index[n] for n in wanted], dtype=np.float64)
