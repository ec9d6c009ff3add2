"""Entry point of `policy_node` (ros2 run openvla_ros policy_node)."""

import sys

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn

from openvla_ros.ros.node import PolicyNode

# How long a thread waiting for the GIL waits before the running one must hand it over. Python's
# 5 ms default lets the inference thread delay control ticks by tens of milliseconds (GIL
# convoy); 0.2 ms keeps the control loop on time at no measurable inference cost
# (bench/bench_node.py, docs/PERFORMANCE.md).
GIL_SWITCH_INTERVAL_S = 0.0002


def main(args=None) -> int:
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    rclpy.init(args=args)
    node = PolicyNode()
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    try:
        if node.get_parameter('autostart').value:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().fatal('configure failed; see the error above')
                return 1
            node.trigger_activate()
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.release()  # the worker thread and the model, whatever state the node is in
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
