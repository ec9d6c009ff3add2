"""Start the OpenVLA-OFT policy node (a lifecycle node that configures and activates itself).

    ros2 launch openvla_ros policy.launch.py checkpoint:=/path/to/checkpoint platform:=libero

`config` selects a parameter file from the package's config/ folder (libero, aloha, bridge,
demo) or takes a path to your own YAML; launch arguments override it. The topic remaps in
`remaps/<config>.yaml` next to it (docs/INTEGRATION.md) apply unless `remap:=false`.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.parameter_descriptions import ParameterValue


def _config_path(name: str) -> str:
    if os.path.sep in name or name.endswith('.yaml'):
        return name
    return os.path.join(get_package_share_directory('openvla_ros'), 'config', name + '.yaml')


def _remappings(config: str) -> list:
    """(from, to) pairs of `remaps/<name>.yaml` beside the parameter file, if there is one."""
    import yaml

    folder, name = os.path.split(config)
    path = os.path.join(folder, 'remaps', name)
    if not os.path.isfile(path):
        return []
    with open(path) as stream:
        return [(str(k), str(v)) for k, v in (yaml.safe_load(stream) or {}).get(
            'remappings', {}).items()]


def _policy_node(context):
    config = _config_path(LaunchConfiguration('config').perform(context))
    remap = LaunchConfiguration('remap').perform(context).lower() in ('true', '1', 'yes')
    overrides = {
        # Strings that could parse as YAML (paths, 'cpu') must stay strings.
        'checkpoint': ParameterValue(LaunchConfiguration('checkpoint'), value_type=str),
        'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'), value_type=bool),
    }
    if LaunchConfiguration('device').perform(context):  # '' keeps the config file's device
        overrides['device'] = ParameterValue(LaunchConfiguration('device'), value_type=str)
    return [LifecycleNode(
        package='openvla_ros',
        executable='policy_node',
        name='policy',
        namespace=LaunchConfiguration('namespace'),
        parameters=[config, overrides],
        remappings=_remappings(config) if remap else [],
        output='screen',
        emulate_tty=True,
    )]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument('checkpoint', description='checkpoint directory (hub layout)'),
        DeclareLaunchArgument('config', default_value='libero',
                              description='libero | aloha | bridge | demo | path/to/params.yaml'),
        DeclareLaunchArgument('device', default_value='',
                              description="'cuda', 'cuda:N', 'cpu', 'auto'; '' keeps the "
                                          "config file's (libero/aloha/bridge: cuda)"),
        DeclareLaunchArgument('namespace', default_value='openvla'),
        DeclareLaunchArgument('use_sim_time', default_value='false'),
        DeclareLaunchArgument('remap', default_value='true',
                              description="apply the config's remaps/<config>.yaml topic "
                                          'remaps (controllers, MoveIt Servo)'),
        OpaqueFunction(function=_policy_node),
    ])
