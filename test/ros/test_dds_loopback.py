"""Real rclpy over real (localhost-only) DDS: a probe publishes, a second node receives."""

import os
import threading

import pytest

pytestmark = pytest.mark.ros


def _wait(event, timeout_s=10.0):
    return event.wait(timeout_s)


def test_discovery_is_confined_to_localhost():
    assert os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    assert 0 <= int(os.environ['ROS_DOMAIN_ID']) <= 101


def test_image_and_string_cross_dds(rclpy_context, ros_executor, probe_node):
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    listener = Node('listener', context=rclpy_context)
    got_image, got_text = threading.Event(), threading.Event()
    received = {}

    def on_image(msg):
        received['image'] = msg
        got_image.set()

    def on_text(msg):
        received['text'] = msg.data
        got_text.set()

    listener.create_subscription(Image, 'camera', on_image, qos_profile_sensor_data)
    listener.create_subscription(String, 'instruction', on_text, 10)
    ros_executor.add_node(listener)

    image_pub = probe_node.create_publisher(Image, 'camera', qos_profile_sensor_data)
    text_pub = probe_node.create_publisher(String, 'instruction', 10)
    pixels = bytes(range(256)) * 9  # 48 x 16 x rgb8 = 2304 bytes
    image = Image(height=16, width=48, encoding='rgb8', step=144, data=pixels)
    image.header.frame_id = 'camera_link'

    # Publish until discovery has matched and both messages arrived (DDS has no "ready" signal).
    for _ in range(100):
        image_pub.publish(image)
        text_pub.publish(String(data='pick up the bowl'))
        if _wait(got_image, 0.1) and _wait(got_text, 0.1):
            break
    assert got_image.is_set() and got_text.is_set(), 'nothing arrived over DDS within 20 s'
    assert received['text'] == 'pick up the bowl'
    msg = received['image']
    assert (msg.height, msg.width, msg.encoding, msg.step) == (16, 48, 'rgb8', 144)
    assert bytes(msg.data) == pixels
    assert msg.header.frame_id == 'camera_link'
