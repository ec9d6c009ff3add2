"""openvla_ros: run OpenVLA-OFT on a ROS 2 robot.

Layers (DESIGN.md section 2), each importable on its own:
``model`` (pure PyTorch), ``processing`` and ``normalization`` (upstream-exact pre/post
processing), ``policy`` (numpy in, numpy out), ``execution`` (chunk streaming, no torch, no ROS)
and ``ros`` (the only layer that imports rclpy). This module imports nothing heavy.
"""

__version__ = '0.1.0'
