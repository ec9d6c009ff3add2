"""Closed-loop demo: policy_node drives the simulated tabletop (what tools/run_demo.sh runs).

    ros2 launch openvla_ros sim_demo.launch.py checkpoint:=/path/to/checkpoints/sim_cubes

Starts `policy_node` on sim time with config/sim.yaml and `openvla-sim-eval --attach`, which
hosts the MuJoCo sim, publishes /clock, runs `episodes` episodes from `seed` and prints each
outcome, `success: K/N` and a timing summary; `gif` names the GIF of the first episode (the
end-effector paths go next to it). The launch ends when the episodes are done.
"""

import os
import sys

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, ExecuteProcess, OpaqueFunction,
                            RegisterEventHandler)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.parameter_descriptions import ParameterValue


def _nodes(context):
    share = get_package_share_directory('openvla_ros')
    policy = LifecycleNode(
        package='openvla_ros', executable='policy_node', name='policy', namespace='openvla',
        parameters=[LaunchConfiguration('config').perform(context)
                    or os.path.join(share, 'config', 'sim.yaml'), {
            'checkpoint': ParameterValue(LaunchConfiguration('checkpoint'), value_type=str),
            'use_sim_time': True}],
        output='screen', emulate_tty=True)
    command = [sys.executable, '-m', 'openvla_ros.ros.sim_eval', '--attach',
               '--episodes', LaunchConfiguration('episodes').perform(context),
               '--seed', LaunchConfiguration('seed').perform(context)]
    gif = LaunchConfiguration('gif').perform(context)
    if gif:
        command += ['--gif', gif]
    if LaunchConfiguration('swap_colours').perform(context).lower() in ('true', '1'):
        command.append('--swap-colours')
    evaluation = ExecuteProcess(cmd=command, output='screen', emulate_tty=True)
    if LaunchConfiguration('shutdown_when_done').perform(context).lower() not in ('true', '1'):
        return [policy, evaluation]
    done = RegisterEventHandler(OnProcessExit(
        target_action=evaluation, on_exit=[EmitEvent(event=Shutdown(reason='episodes done'))]))
    return [policy, evaluation, done]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument('checkpoint', description='the sim checkpoint (checkpoints/'
                                                        'sim_cubes in the repository)'),
        DeclareLaunchArgument('episodes', default_value='10'),
        DeclareLaunchArgument('seed', default_value='1000000',
                              description='first episode seed (1000000..: held-out states)'),
        DeclareLaunchArgument('gif', default_value='sim_demo.gif',
                              description="GIF of the first episode ('' for none)"),
        DeclareLaunchArgument('swap_colours', default_value='false',
                              description='name the other cube (the language control)'),
        DeclareLaunchArgument('config', default_value='',
                              description="policy_node's parameter file ('': config/sim.yaml)"),
        DeclareLaunchArgument('shutdown_when_done', default_value='true',
                              description='end the launch when the episodes are done'),
        OpaqueFunction(function=_nodes),
    ])
