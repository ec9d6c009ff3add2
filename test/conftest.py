"""Shared fixtures. DDS is confined to this host before anything can import rclpy."""

import os
import signal
import threading

import pytest

# Must happen before rclpy loads: without it Fast DDS multicasts discovery on every interface.
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('ROS_DOMAIN_ID', str(os.getpid() % 100 + 1))
# Before any test imports mujoco: the sim renders offscreen (EGL), never in a window.
os.environ.setdefault('MUJOCO_GL', 'egl')
# A run started as a background job of a non-interactive shell (`tools/run_tests.sh &`) inherits
# SIGINT ignored, and so would every process the tests start: the Ctrl-C tests would hang on
# processes that never see the signal. A handler (not SIG_IGN) is reset to the default in them.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


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


@pytest.fixture
def png_claiming():
    """Return `make(width, height)`: a ~60-byte PNG whose header declares that size (a bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack('>I', len(body)) + kind + body
                + struct.pack('>I', zlib.crc32(kind + body) & 0xffffffff))

    def make(width: int, height: int) -> bytes:
        header = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
        return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header)
                + chunk(b'IDAT', zlib.compress(b'\x00')) + chunk(b'IEND', b''))
    return make


@pytest.fixture(scope='session')
def bench_script():
    """Return `load(name)`: bench/<name>.py as a module (the benches are scripts, no package)."""
    import importlib.util
    import pathlib

    def load(name: str):
        path = pathlib.Path(__file__).resolve().parents[1] / 'bench' / f'{name}.py'
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load
