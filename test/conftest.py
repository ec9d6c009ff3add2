"""Shared fixtures. DDS is confined to this host before anything can import rclpy."""

import os
import threading

import pytest

# Must happen before rclpy loads: without it Fast DDS multicasts discovery on every interface.
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('ROS_DOMAIN_ID', str(os.getpid() % 100 + 1))


@pytest.fixture
def rclpy_context():
    """Yield an initialized rclpy context of its own; shut down after the test."""
    rclpy = pytest.importorskip('rclpy', reason='rclpy is not installed (tools/setup_venv.sh)')
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    if context.ok():
        rclpy.shutdown(context=context)


@pytest.fixture
def ros_executor(rclpy_context):
    """Yield a MultiThreadedExecutor spinning in a background thread; nodes are added by tests."""
    from rclpy.executors import MultiThreadedExecutor

    executor = MultiThreadedExecutor(num_threads=4, context=rclpy_context)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield executor
    executor.shutdown(timeout_sec=5.0)
    for node in list(executor.get_nodes()):
        node.destroy_node()
    thread.join(timeout=5.0)


@pytest.fixture
def probe_node(rclpy_context, ros_executor):
    """Yield a plain node already spinning on `ros_executor` (publish, subscribe, call)."""
    from rclpy.node import Node

    node = Node('probe', context=rclpy_context)
    ros_executor.add_node(node)
    yield node
