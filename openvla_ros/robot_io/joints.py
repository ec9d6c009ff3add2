"""Which action dimensions a joint controller gets, and in which order."""

from typing import Sequence

import numpy as np


def command_indices(command_joint_names: Sequence[str], action_joint_names: Sequence[str],
                    action_dim: int, gripper_dims: Sequence[int]) -> np.ndarray:
    """Return the action dimension of each command joint (the controller's joints, in order).

    With `action_joint_names` (a name per action dimension) the command joints are looked up by
    name, so the controller's order may differ from the model's. Without them, the command
    joints are the arm dimensions (all but `gripper_dims`) in action order.
    """
    names = list(command_joint_names)
    if not names:
        raise ValueError("command_joint_names: expected the joint controller's joints, got none")
    if len(set(names)) != len(names):
        raise ValueError(f'command_joint_names: expected distinct names, got {names}')
    gripper = set(int(d) for d in gripper_dims)
    if action_joint_names:
        index = {name: i for i, name in enumerate(action_joint_names)}
        missing = [n for n in names if n not in index]
        if missing:
            raise ValueError(f'command_joint_names: expected names from action_joint_names '
                             f'{list(action_joint_names)}, got unknown {missing}')
        indices = [index[n] for n in names]
        grippers = [n for n, i in zip(names, indices) if i in gripper]
        if grippers:
            raise ValueError(f'command_joint_names: expected arm joints only, got gripper '
                             f'joints {grippers} (gripper_dims {sorted(gripper)})')
        return np.array(indices, dtype=np.int64)
    arm = [d for d in range(action_dim) if d not in gripper]
    if len(names) != len(arm):
        raise ValueError(f'command_joint_names: expected {len(arm)} names, one per arm dimension '
                         f'{arm} (all but gripper_dims), got {len(names)}')
    return np.array(arm, dtype=np.int64)
