"""launch_testing: policy.launch.py on a tiny checkpoint streams actions; exits cleanly.

Runs where launch_testing is installed: a ROS 2 install (colcon test), or the venv when
tools/setup_venv.sh found ../shared/wheels (CI, where .ci/run fails if this is skipped). On a
PyPI-only machine it is skipped, since launch, launch_ros and launch_testing are not on PyPI.
"""

import os
import shutil
import tempfile
import time
import unittest

import pytest

launch_testing = pytest.importorskip(
    'launch_testing', reason='launch_testing is not installed (it ships with ROS 2, not PyPI)')
pytest.importorskip('launch_ros', reason='launch_ros is not installed (ships with ROS 2)')

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('ROS_DOMAIN_ID', str(os.getpid() % 100 + 1))  # standalone `launch_test`

import launch  # noqa: E402, I100 - after the skips above
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import rclpy  # noqa: E402

LAUNCH_FILE = os.path.join(os.path.dirname(__file__), '..', '..', 'launch', 'policy.launch.py')
# A namespace no parallel run uses, so that only the launched node can satisfy the test.
NAMESPACE = f'openvla_launch_test_{os.getpid()}'


@pytest.mark.launch_test
def generate_test_description():
    from openvla_ros.model.testing.factory import write_tiny_checkpoint

    scratch = tempfile.mkdtemp(prefix='openvla_launch_')  # removed by TestShutdown
    checkpoint = os.path.join(scratch, 'tiny-l1')
    write_tiny_checkpoint(checkpoint, variant='l1')
    policy = launch.actions.IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.abspath(LAUNCH_FILE)),
        launch_arguments={'checkpoint': checkpoint, 'config': 'demo', 'device': 'cpu',
                          'namespace': NAMESPACE}.items())
    return (launch.LaunchDescription([policy, launch_testing.actions.ReadyToTest()]),
            {'scratch': scratch})


class TestPolicyStreamsActions(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node('launch_test_probe')

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def test_actions_arrive_after_an_instruction(self, proc_output):
        from openvla_ros.demo.quickstart import DemoProbe  # the robot side of config/demo.yaml

        probe = DemoProbe(self.node, namespace=f'/{NAMESPACE}')
        start = time.monotonic()
        while not probe.actions and time.monotonic() - start < 60.0:
            probe.publish(time.monotonic() - start)
            probe.instruction.publish(probe.String(data='pick up the bowl'))
            rclpy.spin_once(self.node, timeout_sec=0.1)
        self.assertTrue(probe.actions, f'no action on /{NAMESPACE}/action within 60 s')
        publishers = self.node.get_publishers_info_by_topic(f'/{NAMESPACE}/action')
        self.assertEqual([(p.node_namespace, p.node_name) for p in publishers],
                         [(f'/{NAMESPACE}', 'policy')], 'the actions came from another node')
        proc_output.assertWaitFor('configured: l1 head', timeout=5)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):

    def test_exit_code(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0])

    def test_temporary_checkpoint_is_removed(self, scratch):
        shutil.rmtree(scratch)
        self.assertFalse(os.path.exists(scratch))
