"""Pure-PyTorch OpenVLA-OFT (no ROS): configuration, modules, checkpoint I/O."""
