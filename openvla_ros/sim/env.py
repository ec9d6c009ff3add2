"""`CubesEnv`: pick up the named cube, LIBERO-style actions and proprio, 20 Hz control.

One `step` applies one 7-D action the way robosuite's OSC_POSE controller scales it: position
delta = 0.05 m x a[0:3], rotation delta (axis-angle, base frame) = 0.5 rad x a[3:6], both from
actions clipped to [-1, 1]; a[6] is the gripper in the OFT training convention (>= 0.5 open,
< 0.5 close). The mocap target moves linearly over the 25 physics substeps of a control step.
"""

import dataclasses
import os
from typing import Dict, Optional

os.environ.setdefault('MUJOCO_GL', 'egl')  # before mujoco loads: headless rendering

import mujoco  # noqa: E402, I100
import numpy as np  # noqa: E402

from openvla_ros.sim import scene  # noqa: E402

CONTROL_HZ = 20.0
POS_SCALE = 0.05            # m per unit action (robosuite OSC output_max for position)
ROT_SCALE = 0.5             # rad per unit action
LIFT_SUCCESS = 0.04         # success: named cube >= 4 cm above its resting height
MAX_STEPS = 80
WORKSPACE_LOW = np.array([-0.18, -0.2, 0.015])
WORKSPACE_HIGH = np.array([0.18, 0.2, 0.2])
MAX_TILT = 0.6              # rad: the orientation is kept within this of the nominal one
MAX_LAG = 0.02              # m: the target never runs further ahead of the gripper
CUBE_X = (-0.08, 0.08)
CUBE_Y = (-0.1, 0.1)
LAYOUTS = ('random', 'slots')
SLOTS = ((0.0, -0.07), (0.0, 0.07))     # 'slots' layout: left and right cube positions
SLOT_JITTER = 0.015
PHRASINGS = ('pick up the {} cube', 'lift the {} block', 'grab the {} cube')
PROPRIO_NAMES = ('eef_x', 'eef_y', 'eef_z', 'eef_ax', 'eef_ay', 'eef_az',
                 'finger_left', 'finger_right')


def quat_to_axis_angle(quat: np.ndarray) -> np.ndarray:
    """Axis-angle (3,) of a unit quaternion (w, x, y, z), angle in [0, pi]."""
    w, xyz = float(quat[0]), np.asarray(quat[1:], dtype=np.float64)
    if w < 0:
        w, xyz = -w, -xyz
    sin_half = np.linalg.norm(xyz)
    if sin_half < 1e-12:
        return np.zeros(3)
    return xyz / sin_half * 2.0 * np.arctan2(sin_half, w)


def axis_angle_to_quat(rotvec: np.ndarray) -> np.ndarray:
    """Return the unit quaternion (w, x, y, z) of an axis-angle vector."""
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.array([1.0, 0.0, 0.0, 0.0])
    axis = np.asarray(rotvec, dtype=np.float64) / angle
    return np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * axis])


@dataclasses.dataclass
class Task:
    """What one episode asks for (all drawn from the seed)."""

    colour: str
    instruction: str
    cube_xy: Dict[str, np.ndarray]
    cube_yaw: Dict[str, float]
    eef_start: np.ndarray


def sample_task(seed: int, layout: str = 'random') -> Task:
    """Draw the target colour, phrasing, cube poses and start pose for `seed`.

    layout 'random': both cubes anywhere in the workspace. 'slots' (the simpler fallback task):
    the cubes sit in a left and a right slot (+-1.5 cm jitter) with their colours assigned at
    random, so the policy must still find the named colour in the image.
    """
    if layout not in LAYOUTS:
        raise ValueError(f'layout: expected one of {LAYOUTS}, got {layout!r}')
    rng = np.random.default_rng(seed)
    colours = list(scene.COLOURS)
    colour = colours[rng.integers(len(colours))]
    instruction = PHRASINGS[rng.integers(len(PHRASINGS))].format(colour)
    while layout == 'random':
        xy = {name: np.array([rng.uniform(*CUBE_X), rng.uniform(*CUBE_Y)]) for name in colours}
        pairs = [(xy[a], xy[b]) for i, a in enumerate(colours) for b in colours[i + 1:]]
        # the open fingers (8 cm apart along y, 2.4 cm wide in x) must clear the other cube
        if all((abs(p[0] - q[0]) > 0.05 or abs(p[1] - q[1]) > 0.09)
               and np.linalg.norm(p - q) > 0.07 for p, q in pairs):
            break
    if layout == 'slots':
        order = rng.permutation(len(colours))
        xy = {colours[i]: np.array(SLOTS[k]) + rng.uniform(-SLOT_JITTER, SLOT_JITTER, 2)
              for k, i in enumerate(order)}
    yaw = {name: float(rng.uniform(-0.4, 0.4)) for name in colours}
    # the gripper starts on the camera side of the cubes, so it hides neither at the start
    eef_start = np.array([rng.uniform(0.12, 0.15), rng.uniform(-0.04, 0.04),
                          rng.uniform(0.10, 0.13)])
    return Task(colour, instruction, xy, yaw, eef_start)


class CubesEnv:
    """The tabletop; `reset(seed)` then `step(action)` up to `MAX_STEPS` times."""

    def __init__(self, image_size: int = scene.IMAGE_SIZE, render: bool = True,
                 layout: str = 'random'):
        if layout not in LAYOUTS:
            raise ValueError(f'layout: expected one of {LAYOUTS}, got {layout!r}')
        self.layout = layout
        self.model = mujoco.MjModel.from_xml_string(scene.scene_xml(image_size))
        self.data = mujoco.MjData(self.model)
        self.image_size = image_size
        self.substeps = int(round(1.0 / CONTROL_HZ / self.model.opt.timestep))
        self._renderer = mujoco.Renderer(self.model, image_size, image_size) if render else None
        self._eef_site = self.model.site('eef').id
        self._cube_qpos = {name: self.model.jnt_qposadr[self.model.joint(f'cube_{name}').id]
                           for name in scene.COLOURS}
        self._hand_qpos = self.model.jnt_qposadr[self.model.joint('hand').id]
        self._finger_qpos = [self.model.jnt_qposadr[self.model.joint(n).id]
                             for n in ('finger_left', 'finger_right')]
        self._finger_geoms = {self.model.body(n).id for n in ('finger_left', 'finger_right')}
        self.task: Optional[Task] = None
        self.steps = 0
        self.sim_time = 0.0

    # ----------------------------------------------------------------------------- episode
    def reset(self, seed: int) -> None:
        """Start the episode that `seed` defines (same seed, same initial state)."""
        self.task = sample_task(seed, self.layout)
        mujoco.mj_resetData(self.model, self.data)
        for name, adr in self._cube_qpos.items():
            x, y = self.task.cube_xy[name]
            yaw = self.task.cube_yaw[name]
            self.data.qpos[adr:adr + 7] = [x, y, scene.CUBE_HALF, np.cos(yaw / 2), 0, 0,
                                           np.sin(yaw / 2)]
        self.data.mocap_pos[0] = self.task.eef_start
        self.data.mocap_quat[0] = [1, 0, 0, 0]
        self.data.qpos[self._hand_qpos:self._hand_qpos + 7] = [*self.task.eef_start, 1, 0, 0, 0]
        self.data.qpos[self._finger_qpos[0]] = scene.FINGER_OPEN
        self.data.qpos[self._finger_qpos[1]] = -scene.FINGER_OPEN
        self.data.ctrl[:] = [scene.FINGER_OPEN, -scene.FINGER_OPEN]
        mujoco.mj_forward(self.model, self.data)
        for _ in range(50):        # let the cubes settle
            mujoco.mj_step(self.model, self.data)
        self.steps = 0
        self.sim_time = 0.0

    def step(self, action) -> None:
        """Apply one 7-D action (robosuite OSC input units, gripper 1 = open)."""
        action = np.asarray(action, dtype=np.float64).reshape(7)
        if not np.all(np.isfinite(action)):
            raise ValueError(f'expected a finite action, got {action}')
        delta = np.clip(action[:6], -1.0, 1.0)
        self.step_delta(POS_SCALE * delta[:3], ROT_SCALE * delta[3:6], action[6] >= 0.5)

    def step_delta(self, position_m, rotation_rad, gripper_open: bool) -> None:
        """Move the EEF target by a position delta (m) and an axis-angle delta (rad, base frame).

        The deltas are limited to what one action can ask for (0.05 m and 0.5 rad per axis) and
        added to the previous target, which is first pulled to within `MAX_LAG` of the actual
        pose (no wind-up when the gripper is blocked), so a unit action moves 5 cm once the
        gripper has caught up (the weld lags ~1 cm while moving).
        """
        position_m = np.clip(np.asarray(position_m, dtype=np.float64), -POS_SCALE, POS_SCALE)
        rotation_rad = np.clip(np.asarray(rotation_rad, dtype=np.float64), -ROT_SCALE, ROT_SCALE)
        if not (np.all(np.isfinite(position_m)) and np.all(np.isfinite(rotation_rad))):
            raise ValueError('expected finite deltas')
        position, _ = self.eef_pose()
        start = self.data.mocap_pos[0].copy()
        base = position + np.clip(start - position, -MAX_LAG, MAX_LAG)
        goal = np.clip(base + position_m, WORKSPACE_LOW, WORKSPACE_HIGH)
        rotvec = quat_to_axis_angle(self._quat_mul(axis_angle_to_quat(rotation_rad),
                                                   self.data.mocap_quat[0]))
        angle = np.linalg.norm(rotvec)
        if angle > MAX_TILT:
            rotvec *= MAX_TILT / angle
        self.data.mocap_quat[0] = axis_angle_to_quat(rotvec)
        opening = scene.FINGER_OPEN if gripper_open else 0.0
        self.data.ctrl[:] = [opening, -opening]
        for i in range(1, self.substeps + 1):
            self.data.mocap_pos[0] = start + (goal - start) * (i / self.substeps)
            mujoco.mj_step(self.model, self.data)
        self.steps += 1
        self.sim_time = self.steps / CONTROL_HZ

    # ----------------------------------------------------------------------------- observations
    def render(self) -> np.ndarray:
        """Render the camera frame, uint8 (H, W, 3)."""
        self._renderer.update_scene(self.data, camera=scene.CAMERA)
        return self._renderer.render().copy()

    def proprio(self) -> np.ndarray:
        """Return the LIBERO proprio vector (8): EEF xyz, EEF axis-angle, both finger joints."""
        quat = np.empty(4)
        mujoco.mju_mat2Quat(quat, self.data.site_xmat[self._eef_site])
        fingers = [self.data.qpos[adr] for adr in self._finger_qpos]
        return np.concatenate([self.data.site_xpos[self._eef_site], quat_to_axis_angle(quat),
                               fingers]).astype(np.float32)

    def eef_pose(self):
        """(position (3,), quaternion w, x, y, z (4,)) of the EEF site in the base frame."""
        quat = np.empty(4)
        mujoco.mju_mat2Quat(quat, self.data.site_xmat[self._eef_site])
        return self.data.site_xpos[self._eef_site].copy(), quat

    def cube_pos(self, colour: str) -> np.ndarray:
        adr = self._cube_qpos[colour]
        return self.data.qpos[adr:adr + 3].copy()

    def fingers_touch(self, colour: str) -> bool:
        """Both fingers are in contact with the cube of `colour`."""
        cube = self.model.body(f'cube_{colour}').id
        touching = set()
        for contact in self.data.contact[:self.data.ncon]:
            bodies = {self.model.geom_bodyid[contact.geom1], self.model.geom_bodyid[contact.geom2]}
            if cube in bodies:
                touching |= bodies & self._finger_geoms
        return len(touching) == 2

    def lift_height(self, colour: Optional[str] = None) -> float:
        """How far the cube of `colour` (default: the named one) is above its resting height."""
        return float(self.cube_pos(colour or self.task.colour)[2] - scene.CUBE_HALF)

    def lifted(self, colour: Optional[str] = None) -> bool:
        """Tell whether the cube of `colour` (default: the named one) is `LIFT_SUCCESS` up."""
        return self.lift_height(colour) >= LIFT_SUCCESS

    def success(self) -> bool:
        """Tell whether the named cube is lifted by at least `LIFT_SUCCESS`."""
        return self.lifted()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    @staticmethod
    def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = np.empty(4)
        mujoco.mju_mulQuat(out, np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
        return out
