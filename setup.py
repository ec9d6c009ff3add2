"""ament_python build for openvla_ros (colcon) that also installs cleanly with pip."""

from glob import glob
import sys

from setuptools import find_packages, setup

package_name = 'openvla_ros'

data_files = [
    ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
    ('share/' + package_name, ['package.xml']),
    ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
    ('share/' + package_name + '/config', glob('config/*.yaml')),
    ('share/' + package_name + '/config/remaps', glob('config/remaps/*.yaml')),
]
if 'bdist_wheel' in sys.argv:
    # pip ignores setup.cfg's install_scripts, so launch_ros would not find the executable in
    # lib/openvla_ros; colcon never builds a wheel and installs the console script there.
    data_files.append(('lib/' + package_name, ['resource/pip/policy_node']))

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=data_files,
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='openvla_ros maintainers',
    maintainer_email='maintainers@openvla-ros.dev',
    description='ROS 2 node running the complete OpenVLA-OFT model with chunked async execution.',
    license='MIT',
    entry_points={
        'console_scripts': [
            'policy_node = openvla_ros.ros.main:main',
            'openvla-predict = openvla_ros.cli:main',
            'openvla-train = openvla_ros.training.cli:main',
            'openvla-sim-collect = openvla_ros.sim.collect:main',
            'openvla-sim-eval = openvla_ros.ros.sim_eval:main',
            'openvla-sim-node = openvla_ros.ros.sim_node:main',
        ],
    },
)
