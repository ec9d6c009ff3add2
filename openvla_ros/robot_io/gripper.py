"""Gripper action conventions: model output -> position command for a gripper controller.

- `oft_open_is_1` (LIBERO, Bridge): the model emits 1 = open, 0 = close. Upstream's evaluation
  (experiments/robot/robot_utils.py) maps [0, 1] to [-1, 1] and takes the sign
  (`normalize_gripper_action(binarize=True)`), so the gripper is either open or closed; a value of
  exactly 0.5 gives sign 0, the midpoint.
- `aloha_normalized` (ALOHA): 0 = closed, 1 = open, continuous; unnormalized linearly to the
  joint range before commanding (clipped to [0, 1] first).
- `raw`: the action value is the command.
"""

from dataclasses import dataclass

import numpy as np

GRIPPER_CONVENTIONS = ('oft_open_is_1', 'aloha_normalized', 'raw')


def open_fraction(value: float, convention: str) -> float:
    """How open (0 closed, 1 open) the gripper should be for one action value."""
    if convention == 'oft_open_is_1':
        return 0.5 * (np.sign(2.0 * value - 1.0) + 1.0)  # upstream's binarization
    if convention == 'aloha_normalized':
        return float(np.clip(value, 0.0, 1.0))
    raise ValueError(f'gripper_convention: expected one of {GRIPPER_CONVENTIONS[:2]} for an '
                     f'open fraction, got {convention!r}')


@dataclass(frozen=True)
class GripperMapping:
    """Maps the gripper dimensions of an action to position commands, in `dims` order."""

    dims: tuple
    convention: str = 'oft_open_is_1'
    open_position: float = 1.0
    closed_position: float = 0.0

    def __post_init__(self):
        if self.convention not in GRIPPER_CONVENTIONS:
            raise ValueError(f'gripper_convention: expected one of {GRIPPER_CONVENTIONS}, got '
                             f'{self.convention!r}')
        dims = tuple(int(d) for d in self.dims)
        if any(d < 0 for d in dims) or len(set(dims)) != len(dims):
            raise ValueError(f'gripper_dims: expected distinct non-negative dimensions, got '
                             f'{list(self.dims)}')
        object.__setattr__(self, 'dims', dims)

    def check_action_dim(self, action_dim: int) -> None:
        """Raise ValueError if a gripper dimension is outside the action."""
        if any(d >= action_dim for d in self.dims):
            raise ValueError(f'gripper_dims: expected dimensions below the action size '
                             f'{action_dim}, got {list(self.dims)}')

    def position(self, value: float) -> float:
        """Command for one gripper action value."""
        if self.convention == 'raw':
            return float(value)
        fraction = open_fraction(value, self.convention)
        return float(self.closed_position
                     + fraction * (self.open_position - self.closed_position))

    def targets(self, action: np.ndarray) -> np.ndarray:
        """Commands for every gripper dimension of one action, in `dims` order."""
        return np.array([self.position(action[d]) for d in self.dims], dtype=np.float64)
