"""Robot-side conventions as pure functions: gripper mapping, EEF twist, JTC trajectories, poses.

Nothing here imports ROS: `openvla_ros.ros.outputs` and `openvla_ros.ros.proprio_sources` turn
these numbers into messages and back.
"""
