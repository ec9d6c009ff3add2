"""The MJCF of the tabletop: a mocap-driven two-finger gripper, two coloured cubes, one camera.

Frames: the world frame is the robot base frame; the table top is the plane z = 0. The gripper's
end-effector site `eef` sits between the fingertips; its orientation is the identity when the
gripper points straight down with the fingers closing along y, so the proprio axis-angle is
near zero (no +-pi wrap) in the nominal pose.
"""

CUBE_HALF = 0.02          # cubes are 4 cm
FINGER_OPEN = 0.04        # finger joint travel (m): 0 = touching, 0.04 = 8 cm gap
COLOURS = {'red': (0.85, 0.12, 0.1), 'blue': (0.12, 0.25, 0.9)}
IMAGE_SIZE = 112
CAMERA = 'front'


def _cube(name: str, rgb) -> str:
    r, g, b = rgb
    return f'''
    <body name="{name}" pos="0 0 {CUBE_HALF}">
      <freejoint name="{name}"/>
      <geom type="box" size="{CUBE_HALF} {CUBE_HALF} {CUBE_HALF}" rgba="{r} {g} {b} 1"
            mass="0.05" friction="1.5 0.02 0.001" condim="4"/>
    </body>'''


def scene_xml(image_size: int = IMAGE_SIZE) -> str:
    """Return the scene's MJCF (offscreen buffer at `image_size`, no shadows, no multisampling)."""
    cubes = ''.join(_cube(f'cube_{name}', rgb) for name, rgb in COLOURS.items())
    return f'''
<mujoco model="openvla_sim_cubes">
  <compiler angle="radian"/>
  <option timestep="0.002" integrator="implicitfast" cone="elliptic" impratio="10"
          noslip_iterations="3"/>
  <visual>
    <global offwidth="{image_size}" offheight="{image_size}"/>
    <quality shadowsize="0" offsamples="0"/>
    <headlight ambient="0.45 0.45 0.45" diffuse="0.6 0.6 0.6" specular="0 0 0"/>
  </visual>
  <asset>
    <texture name="grid" type="2d" builtin="checker" width="64" height="64"
             rgb1="0.72 0.66 0.56" rgb2="0.68 0.62 0.52"/>
    <material name="table" texture="grid" texrepeat="4 4"/>
  </asset>
  <worldbody>
    <geom name="table" type="plane" size="0.4 0.4 0.01" material="table"
          friction="1 0.005 0.0001"/>
    <camera name="{CAMERA}" pos="0.13 0 0.51" xyaxes="0 1 0 -0.966 0 0.259" fovy="42"/>
    <body name="hand_target" mocap="true" pos="0 0 0.15"/>
    <body name="hand" pos="0 0 0.15" gravcomp="1">
      <freejoint name="hand"/>
      <site name="eef" pos="0 0 0" size="0.005" rgba="0 0 0 0"/>
      <geom name="palm" type="box" pos="0 0 0.06" size="0.015 0.06 0.01" mass="0.3"
            rgba="0.25 0.25 0.28 1" contype="0" conaffinity="0"/>
      <geom name="wrist" type="cylinder" pos="0 0 0.1" size="0.012 0.03" mass="0.1"
            rgba="0.35 0.35 0.38 1" contype="0" conaffinity="0"/>
      <body name="finger_left" pos="0 0 0.02" gravcomp="1">
        <joint name="finger_left" type="slide" axis="0 1 0" range="0 {FINGER_OPEN}"
               damping="2" armature="0.01"/>
        <geom type="box" pos="0 0.007 0" size="0.012 0.006 0.03" rgba="0.2 0.2 0.22 1"
              mass="0.05" friction="2 0.02 0.001" condim="4"/>
      </body>
      <body name="finger_right" pos="0 0 0.02" gravcomp="1">
        <joint name="finger_right" type="slide" axis="0 1 0" range="-{FINGER_OPEN} 0"
               damping="2" armature="0.01"/>
        <geom type="box" pos="0 -0.007 0" size="0.012 0.006 0.03" rgba="0.2 0.2 0.22 1"
              mass="0.05" friction="2 0.02 0.001" condim="4"/>
      </body>
    </body>
    {cubes}
  </worldbody>
  <equality>
    <weld body1="hand_target" body2="hand" solref="0.01 1"/>
  </equality>
  <actuator>
    <position name="finger_left" joint="finger_left" kp="200" ctrlrange="0 {FINGER_OPEN}"
              forcerange="-15 15"/>
    <position name="finger_right" joint="finger_right" kp="200"
              ctrlrange="-{FINGER_OPEN} 0" forcerange="-15 15"/>
  </actuator>
</mujoco>
'''
