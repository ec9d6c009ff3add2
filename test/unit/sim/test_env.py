"""The tabletop: seeds, action scaling (robosuite OSC units), proprio layout, success."""

import numpy as np
import pytest

pytest.importorskip('mujoco', reason='mujoco is not installed (tools/setup_venv.sh)')

from openvla_ros.sim import scene  # noqa: E402
from openvla_ros.sim.env import (  # noqa: E402
    axis_angle_to_quat, CubesEnv, LIFT_SUCCESS, PHRASINGS, quat_to_axis_angle, sample_task)


@pytest.fixture(scope='module')
def env():
    environment = CubesEnv()
    yield environment
    environment.close()


def test_same_seed_same_episode_and_seeds_differ(env):
    env.reset(7)
    first = (env.proprio(), env.cube_pos('red'), env.render(), env.task.instruction)
    env.step([0.3, -0.2, -0.4, 0, 0, 0.1, 1])
    env.reset(7)
    again = (env.proprio(), env.cube_pos('red'), env.render(), env.task.instruction)
    for a, b in zip(first[:3], again[:3]):
        np.testing.assert_array_equal(a, b)
    assert first[3] == again[3]
    env.reset(8)
    assert not np.allclose(env.cube_pos('red'), first[1])


def test_tasks_cover_both_colours_and_every_phrasing_and_cubes_stay_apart():
    tasks = [sample_task(seed) for seed in range(200)]
    assert {t.colour for t in tasks} == set(scene.COLOURS)
    used = {t.instruction.replace(t.colour, '{}') for t in tasks}
    assert used == set(PHRASINGS)
    for task in tasks:
        red, blue = task.cube_xy['red'], task.cube_xy['blue']
        assert np.linalg.norm(red - blue) > 0.07
        assert task.colour in task.instruction


def test_camera_frame_is_112_rgb_and_shows_both_cubes(env):
    env.reset(3)
    frame = env.render()
    assert frame.shape == (112, 112, 3) and frame.dtype == np.uint8
    red = (frame[..., 0] > 150) & (frame[..., 1] < 80) & (frame[..., 2] < 80)
    blue = (frame[..., 2] > 150) & (frame[..., 0] < 80) & (frame[..., 1] < 100)
    assert red.sum() > 15 and blue.sum() > 15, (red.sum(), blue.sum())


def test_position_action_of_one_moves_about_five_centimetres(env):
    env.reset(11)
    start = env.proprio()[:3]
    env.step([1, 0, 0, 0, 0, 0, 1])
    for _ in range(5):                       # let the weld catch up
        env.step([0, 0, 0, 0, 0, 0, 1])
    moved = env.proprio()[:3] - start
    assert moved[0] == pytest.approx(0.05, abs=0.004)
    assert abs(moved[1]) < 0.003 and abs(moved[2]) < 0.003
    env.step([0, 0, 5.0, 0, 0, 0, 1])        # clipped to 1 (5 cm), like OSC
    for _ in range(5):
        env.step([0, 0, 0, 0, 0, 0, 1])
    assert env.proprio()[2] - start[2] == pytest.approx(0.05, abs=0.004)


def test_rotation_action_turns_the_gripper_by_half_a_radian_per_unit(env):
    env.reset(12)
    env.step([0, 0, 0, 0, 0, 0.4, 1])        # 0.2 rad about z
    for _ in range(5):
        env.step([0, 0, 0, 0, 0, 0, 1])
    np.testing.assert_allclose(env.proprio()[3:6], [0, 0, 0.2], atol=0.01)


def test_proprio_layout_and_gripper_convention(env):
    env.reset(13)
    proprio = env.proprio()
    assert proprio.shape == (8,) and proprio.dtype == np.float32
    position, _ = env.eef_pose()
    np.testing.assert_allclose(proprio[:3], position, atol=1e-6)
    assert proprio[6] == pytest.approx(scene.FINGER_OPEN, abs=2e-3)
    assert proprio[7] == pytest.approx(-proprio[6], abs=2e-3)
    for _ in range(6):
        env.step([0, 0, 0, 0, 0, 0, 0])      # 0 = close
    assert env.proprio()[6] < 0.005 and env.proprio()[7] > -0.005


def test_non_finite_action_is_refused(env):
    env.reset(14)
    with pytest.raises(ValueError):
        env.step([np.nan, 0, 0, 0, 0, 0, 1])
    with pytest.raises(ValueError):
        env.step([0, 0, 0])


def test_success_needs_the_named_cube_four_centimetres_up(env):
    env.reset(15)
    assert not env.success()
    other = 'blue' if env.task.colour == 'red' else 'red'
    adr = env._cube_qpos[other]
    env.data.qpos[adr + 2] += LIFT_SUCCESS + 0.01
    assert not env.success()                 # the other cube does not count
    assert env.lifted(other) and not env.lifted()
    adr = env._cube_qpos[env.task.colour]
    env.data.qpos[adr + 2] += LIFT_SUCCESS + 0.01
    assert env.success()


def test_axis_angle_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(20):
        rotvec = rng.uniform(-1, 1, 3)
        np.testing.assert_allclose(quat_to_axis_angle(axis_angle_to_quat(rotvec)), rotvec,
                                   atol=1e-9)


def test_slots_layout_puts_the_cubes_left_and_right_in_either_colour_order():
    from openvla_ros.sim.env import SLOT_JITTER, SLOTS

    tasks = [sample_task(seed, 'slots') for seed in range(100)]
    red_left = [t.cube_xy['red'][1] < 0 for t in tasks]
    assert 20 < sum(red_left) < 80                      # both colour orders occur
    for task in tasks:
        for xy in task.cube_xy.values():
            nearest = min(np.abs(xy - np.array(slot)).max() for slot in SLOTS)
            assert nearest <= SLOT_JITTER + 1e-12
        assert np.sign(task.cube_xy['red'][1]) != np.sign(task.cube_xy['blue'][1])
    # the instruction draw is the same as in the random layout: only the placement differs
    assert [t.instruction for t in tasks] == [sample_task(s).instruction for s in range(100)]
    with pytest.raises(ValueError):
        sample_task(0, 'grid')


def test_swap_colour_names_the_other_cube():
    from openvla_ros.sim.language import other_colour, swap_colour

    assert other_colour('red') == 'blue' and other_colour('blue') == 'red'
    with pytest.raises(ValueError):
        other_colour('green')

    assert swap_colour('pick up the red cube') == 'pick up the blue cube'
    assert swap_colour('lift the blue block', ['red', 'blue']) == 'lift the red block'
    assert swap_colour(swap_colour('grab the red cube')) == 'grab the red cube'
    with pytest.raises(ValueError):
        swap_colour('lift the block')
