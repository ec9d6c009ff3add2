"""Chunk execution engine: pure Python + numpy, no torch, no ROS, no clock reads."""
