"""launch_testing: sim_demo.launch.py runs closed-loop episodes and shuts itself down cleanly.

Runs where ROS 2's launch_testing is installed (colcon test, or a venv with the launch wheels);
skipped on PyPI-only machines. A random tiny checkpoint stands in for the trained one: this
checks the plumbing (node on sim time, episodes, summary, exit), not the success rate.
"""

import os
import re
import tempfile
import unittest

import pytest

launch_testing = pytest.importorskip(
    'launch_testing', reason='launch_testing is not installed (it ships with ROS 2, not PyPI)')
pytest.importorskip('launch_ros', reason='launch_ros is not installed (ships with ROS 2)')
pytest.importorskip('mujoco', reason='mujoco is not installed (tools/setup_venv.sh)')

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('ROS_DOMAIN_ID', str(os.getpid() % 100 + 1))  # standalone `launch_test`
os.environ.setdefault('MUJOCO_GL', 'egl')

import launch  # noqa: E402, I100 - after the skips above
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import yaml  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), '..', '..')
LAUNCH_FILE = os.path.join(ROOT, 'launch', 'sim_demo.launch.py')


@pytest.mark.launch_test
def generate_test_description():
    from openvla_ros.model.testing.factory import write_tiny_checkpoint

    directory = tempfile.mkdtemp(prefix='openvla_sim_launch_')
    checkpoint = os.path.join(directory, 'tiny-l1')
    write_tiny_checkpoint(checkpoint, variant='l1')
    with open(os.path.join(ROOT, 'config', 'sim.yaml')) as stream:
        config = yaml.safe_load(stream)
    # the tiny checkpoint takes two images: feed it the sim's camera twice
    config['/**']['ros__parameters']['camera_topics'] = ['camera/image', 'camera/image']
    config_path = os.path.join(directory, 'sim_two_cameras.yaml')
    with open(config_path, 'w') as stream:
        yaml.safe_dump(config, stream)
    demo = launch.actions.IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.abspath(LAUNCH_FILE)),
        launch_arguments={'checkpoint': checkpoint, 'config': config_path, 'episodes': '1',
                          'gif': os.path.join(directory, 'demo.gif'),
                          'shutdown_when_done': 'false'}.items())  # launch_testing ends it
    return launch.LaunchDescription([demo, launch_testing.actions.ReadyToTest()]), {
        'directory': directory}


class TestSimDemo(unittest.TestCase):

    def test_episode_runs_and_summary_is_printed(self, proc_output):
        proc_output.assertWaitFor(expected_output=re.compile(r'success: [01]/1'), timeout=180,
                                  stream='stdout')


@launch_testing.post_shutdown_test()
class TestSimDemoShutdown(unittest.TestCase):

    def test_every_process_exited_cleanly(self, proc_info, directory):
        launch_testing.asserts.assertExitCodes(proc_info)
        self.assertTrue(os.path.getsize(os.path.join(directory, 'demo.gif')) > 10_000)
        self.assertTrue(os.path.getsize(os.path.join(directory, 'demo_paths.png')) > 10_000)
