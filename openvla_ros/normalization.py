"""Dataset statistics and the action / proprio (un)normalization OpenVLA-OFT uses at inference.

numpy only (no torch, no rclpy), so the ROS layer can clip to the dataset bounds without the model.
Formulas follow OPENVLA_OFT_REFERENCE.md sections 2.4, 6.4 and 6.5 exactly, in float64.
"""

import dataclasses
import enum
import json
import pathlib
from typing import Any, Mapping, Optional

import numpy as np

STATISTICS_FILENAME = 'dataset_statistics.json'

# Upstream adds this to the denominator / range so constant dimensions do not divide by zero.
RANGE_EPSILON = 1e-8

_STAT_FIELDS = ('mean', 'std', 'min', 'max', 'q01', 'q99')


class NormalizationType(str, enum.Enum):
    """How actions and proprio were normalized for training (upstream's names and values)."""

    BOUNDS = 'bounds'          # min / max -> [-1, 1]   (ALOHA)
    BOUNDS_Q99 = 'bounds_q99'  # q01 / q99 -> [-1, 1]   (LIBERO, Bridge)
    NORMAL = 'normal'          # mean / std; never used by OFT inference


class NormalizationError(ValueError):
    """Bad dataset statistics, an unknown unnorm key or inputs that do not match the statistics."""


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclasses.dataclass(frozen=True, eq=False)
class ArrayStats:
    """Per-dimension statistics of one quantity (action or proprio); float64 arrays of length D.

    `mask` marks the dimensions that were normalized (None means all of them), e.g. LIBERO leaves
    the gripper raw: [True] * 6 + [False].
    """

    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray
    q01: np.ndarray
    q99: np.ndarray
    mask: Optional[np.ndarray] = None

    def __post_init__(self):
        dim = None
        for name in _STAT_FIELDS:
            value = _as_vector(getattr(self, name), name)
            if dim is None:
                dim = value.shape[0]
            elif value.shape[0] != dim:
                raise NormalizationError(
                    f'expected every statistic to have length {dim} (like mean), '
                    f'got {name} of length {value.shape[0]}')
            object.__setattr__(self, name, _read_only(value))
        if self.mask is not None:
            mask = _as_mask(self.mask)
            if mask.shape[0] != dim:
                raise NormalizationError(
                    f'expected mask of length {dim} (like mean), got length {mask.shape[0]}')
            object.__setattr__(self, 'mask', _read_only(mask))

    @property
    def dim(self) -> int:
        """Number of dimensions D."""
        return int(self.mean.shape[0])

    @property
    def effective_mask(self) -> np.ndarray:
        """Mask as a bool array of length D (all True when the statistics carry none)."""
        if self.mask is None:
            return np.ones(self.dim, dtype=bool)
        return self.mask

    def bounds(self, norm_type) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) used by `norm_type`: (min, max) for BOUNDS, (q01, q99) for BOUNDS_Q99."""
        norm_type = _as_norm_type(norm_type)
        if norm_type is NormalizationType.BOUNDS:
            return self.min, self.max
        if norm_type is NormalizationType.BOUNDS_Q99:
            return self.q01, self.q99
        raise NormalizationError(
            f'expected normalization type bounds or bounds_q99, got {norm_type.value!r} '
            '(upstream OpenVLA-OFT inference does not support it either)')

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> 'ArrayStats':
        """Build from the JSON form: lists under mean/std/min/max/q01/q99 and optional mask."""
        if not isinstance(data, Mapping):
            raise NormalizationError(
                f'expected a mapping of statistics, got {type(data).__name__}')
        missing = [name for name in _STAT_FIELDS if name not in data]
        if missing:
            raise NormalizationError(
                f'expected keys {list(_STAT_FIELDS)}, got {sorted(data)} (missing {missing})')
        return cls(**{name: data[name] for name in _STAT_FIELDS}, mask=data.get('mask'))

    def to_dict(self) -> dict:
        """JSON form (plain lists); `mask` only when present."""
        data = {name: getattr(self, name).tolist() for name in _STAT_FIELDS}
        if self.mask is not None:
            data['mask'] = self.mask.tolist()
        return data

    def __eq__(self, other):
        if not isinstance(other, ArrayStats):
            return NotImplemented
        if (self.mask is None) != (other.mask is None):
            return False
        names = _STAT_FIELDS + (('mask',) if self.mask is not None else ())
        return all(np.array_equal(getattr(self, n), getattr(other, n)) for n in names)

    __hash__ = None


@dataclasses.dataclass(frozen=True, eq=False)
class DatasetStats:
    """Statistics of one dataset (one unnorm key) of `dataset_statistics.json`."""

    action: ArrayStats
    proprio: Optional[ArrayStats] = None
    num_transitions: Optional[int] = None
    num_trajectories: Optional[int] = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> 'DatasetStats':
        if not isinstance(data, Mapping):
            raise NormalizationError(
                f'expected a mapping with an "action" entry, got {type(data).__name__}')
        if 'action' not in data:
            raise NormalizationError(f'expected an "action" entry, got keys {sorted(data)}')
        try:
            action = ArrayStats.from_dict(data['action'])
        except NormalizationError as error:
            raise NormalizationError(f'action: {error}') from None
        proprio = None
        if data.get('proprio') is not None:
            try:
                proprio = ArrayStats.from_dict(data['proprio'])
            except NormalizationError as error:
                raise NormalizationError(f'proprio: {error}') from None
        return cls(action=action, proprio=proprio,
                   num_transitions=_optional_count(data, 'num_transitions'),
                   num_trajectories=_optional_count(data, 'num_trajectories'))

    def to_dict(self) -> dict:
        data = {'action': self.action.to_dict()}
        if self.proprio is not None:
            data['proprio'] = self.proprio.to_dict()
        if self.num_transitions is not None:
            data['num_transitions'] = self.num_transitions
        if self.num_trajectories is not None:
            data['num_trajectories'] = self.num_trajectories
        return data

    def __eq__(self, other):
        if not isinstance(other, DatasetStats):
            return NotImplemented
        return (self.action == other.action and self.proprio == other.proprio
                and self.num_transitions == other.num_transitions
                and self.num_trajectories == other.num_trajectories)

    __hash__ = None


def load_dataset_statistics(path) -> dict[str, DatasetStats]:
    """Read `dataset_statistics.json` (a file, or a checkpoint directory holding one).

    Returns {unnorm_key: DatasetStats} in file order. Every error names the file.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        path = path / STATISTICS_FILENAME
    if not path.is_file():
        raise NormalizationError(f'{path}: dataset statistics file not found')
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise NormalizationError(f'{path}: cannot read dataset statistics: {error}') from None
    if not isinstance(data, dict) or not data:
        got = 'an empty object' if data == {} else type(data).__name__
        raise NormalizationError(
            f'{path}: expected a non-empty JSON object {{unnorm_key: statistics}}, got {got}')
    stats = {}
    for key, entry in data.items():
        try:
            stats[key] = DatasetStats.from_dict(entry)
        except NormalizationError as error:
            raise NormalizationError(f'{path}: dataset {key!r}: {error}') from None
    return stats


def resolve_unnorm_key(stats: Mapping[str, Any], unnorm_key: Optional[str]) -> str:
    """Pick the dataset whose statistics unnormalize actions, as upstream does.

    None is allowed only when there is exactly one dataset; otherwise the key must exist.
    """
    available = sorted(stats)
    if unnorm_key is None:
        if len(available) != 1:
            raise NormalizationError(
                f'expected an unnorm_key because the statistics hold {len(available)} datasets; '
                f'choose one of {available}')
        return available[0]
    if unnorm_key not in stats:
        raise NormalizationError(
            f'expected unnorm_key to be one of {available}, got {unnorm_key!r}')
    return unnorm_key


def unnormalize_actions(normalized, stats: ArrayStats, norm_type) -> np.ndarray:
    """Map normalized actions (..., A) back to robot units; float64 result, no clipping.

    action = where(mask, 0.5 * (a + 1) * (high - low + 1e-8) + low, a). As upstream does with a
    float32 model output, `0.5 * (a + 1)` is evaluated in the input's float dtype and only then
    promoted to float64 by the multiplication with the float64 statistics.
    """
    low, high = stats.bounds(norm_type)
    actions = _as_float_array(normalized, stats.dim, 'normalized actions')
    half_shifted = 0.5 * (actions + actions.dtype.type(1))  # stays in the input dtype
    unnormalized = half_shifted.astype(np.float64) * (high - low + RANGE_EPSILON) + low
    return np.where(stats.effective_mask, unnormalized, actions.astype(np.float64))


def normalize_proprio(raw, stats: ArrayStats, norm_type) -> np.ndarray:
    """Map a raw proprio vector (..., S) into [-1, 1]; float64 result.

    clip(where(mask, 2 * (x - low) / (high - low + 1e-8) - 1, x), -1, 1); proprio statistics
    normally carry no mask (all dimensions normalized).
    """
    low, high = stats.bounds(norm_type)
    proprio = _as_float_array(raw, stats.dim, 'proprio').astype(np.float64)
    normalized = 2 * (proprio - low) / (high - low + RANGE_EPSILON) - 1
    return np.clip(np.where(stats.effective_mask, normalized, proprio), -1.0, 1.0)


def _as_norm_type(norm_type) -> NormalizationType:
    try:
        return NormalizationType(norm_type)
    except ValueError:
        choices = [t.value for t in NormalizationType]
        raise NormalizationError(
            f'expected normalization type in {choices}, got {norm_type!r}') from None


def _as_vector(value, name: str) -> np.ndarray:
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise NormalizationError(
            f'expected {name} to be a list of numbers, got {value!r}') from None
    if array.ndim != 1 or array.shape[0] == 0:
        raise NormalizationError(
            f'expected {name} to be a non-empty 1-D list, got shape {array.shape}')
    if not np.all(np.isfinite(array)):
        raise NormalizationError(f'expected finite values in {name}, got {array.tolist()}')
    return array


def _as_mask(value) -> np.ndarray:
    array = np.array(value)
    if array.ndim != 1 or array.dtype != np.bool_:
        raise NormalizationError(
            f'expected mask to be a 1-D list of booleans, got {np.asarray(value).tolist()!r}')
    return array


def _as_float_array(value, dim: int, what: str) -> np.ndarray:
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.floating):
        if not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
            raise NormalizationError(f'expected numeric {what}, got dtype {array.dtype}')
        array = array.astype(np.float64)
    if array.ndim == 0 or array.shape[-1] != dim:
        raise NormalizationError(
            f'expected {what} with last dimension {dim} (dataset statistics), '
            f'got shape {array.shape}')
    return array


def _optional_count(data: Mapping[str, Any], name: str) -> Optional[int]:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise NormalizationError(f'expected {name} to be an integer, got {value!r}')
    return int(value)
