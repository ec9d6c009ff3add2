"""Scripted expert for `CubesEnv`, reactive to the state so it recovers from perturbations.

The expert's action is a function of the current state (plus a short close-then-check timer):
hover over the named cube while descending as the xy error shrinks, close, lift once both
fingers hold the cube, and start over if they don't. `NoisyExpert` executes the expert's action
plus Gaussian noise and occasional multi-step pushes, and records the clean action, so the data
shows how to get back on track (DART-style).
"""

import dataclasses

import numpy as np

from openvla_ros.sim import env as sim_env
from openvla_ros.sim import scene

OPEN, CLOSE = 1.0, 0.0
GRASP_Z = scene.CUBE_HALF + 0.002   # EEF height of the grasp
HOVER = 0.08                        # descent height above the grasp per metre of xy error x 1
CARRY_Z = 0.11
GAIN = 0.6                          # fraction of the position error corrected per step
MAX_POS = 0.5                       # action units (2.5 cm per step)
CLOSE_STEPS = 5                     # steps of closing before checking the grasp


@dataclasses.dataclass
class ExpertState:
    closing: int = 0


class Expert:
    """Clean scripted expert: `act(env)` -> 7-D action for the current state."""

    def __init__(self):
        self.state = ExpertState()

    def reset(self) -> None:
        self.state = ExpertState()

    def act(self, env: 'sim_env.CubesEnv') -> np.ndarray:
        proprio = env.proprio()
        eef, rotvec, opening = proprio[:3], proprio[3:6], float(proprio[6])
        cube = env.cube_pos(env.task.colour)
        gripper = OPEN
        if self.state.closing:
            self.state.closing += 1
            gripper = CLOSE
            if self.state.closing <= CLOSE_STEPS:
                target = eef.copy()
            elif env.fingers_touch(env.task.colour):
                target = np.array([eef[0], eef[1], CARRY_Z])
            else:                       # missed: open and try again from above
                self.state.closing, gripper = 0, OPEN
                target = np.array([eef[0], eef[1], GRASP_Z + HOVER])
        else:
            error = float(np.linalg.norm(cube[:2] - eef[:2]))
            height = GRASP_Z + min(HOVER, 2.0 * max(error - 0.004, 0.0))
            if opening < 0.8 * scene.FINGER_OPEN:   # fingers not open yet: stay above the cube
                height = max(height, GRASP_Z + 0.05, float(eef[2]))
            target = np.array([cube[0], cube[1], height])
            if error < 0.01 and abs(eef[2] - GRASP_Z) < 0.008:
                self.state.closing, gripper = 1, CLOSE
        action = np.zeros(7)
        action[:3] = np.clip(GAIN * (target - eef) / sim_env.POS_SCALE, -MAX_POS, MAX_POS)
        action[3:6] = np.clip(-GAIN * rotvec / sim_env.ROT_SCALE, -0.3, 0.3)
        action[6] = gripper
        return action


class NoisyExpert(Expert):
    """The expert plus execution noise; `act` returns (clean action, executed action)."""

    def __init__(self, rng: np.random.Generator, pos_std: float = 0.08, rot_std: float = 0.03,
                 push_prob: float = 0.04, push_size: float = 0.5):
        super().__init__()
        self.rng, self.pos_std, self.rot_std = rng, pos_std, rot_std
        self.push_prob, self.push_size = push_prob, push_size
        self._push, self._push_left = np.zeros(3), 0

    def reset(self) -> None:
        super().reset()
        self._push, self._push_left = np.zeros(3), 0

    def act(self, env):
        clean = super().act(env)
        executed = clean.copy()
        executed[:3] += self.rng.normal(0.0, self.pos_std, 3)
        executed[3:6] += self.rng.normal(0.0, self.rot_std, 3)
        if self._push_left == 0 and self.rng.random() < self.push_prob:
            direction = self.rng.normal(size=3)
            direction[2] = abs(direction[2])           # pushes never drive into the table
            self._push = self.push_size * direction / np.linalg.norm(direction)
            self._push_left = int(self.rng.integers(2, 5))
        if self._push_left:
            executed[:3] += self._push
            self._push_left -= 1
        return clean, np.clip(executed, -1.0, 1.0)
