"""Message <-> numpy conversions and the observation store, without rclpy.init."""

import io

import numpy as np
import pytest

pytest.importorskip('sensor_msgs', reason='ROS message packages are not installed')

from builtin_interfaces.msg import Time  # noqa: E402, I100 - after the skip above
from PIL import Image as PILImage  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image, JointState  # noqa: E402

from openvla_ros.ros.conversions import (  # noqa: E402
    check_instruction, compressed_image_msg_to_rgb, ConversionError, image_msg_to_rgb,
    joint_names_for_chunk, joint_positions, seconds_to_duration_fields, stamp_to_seconds)
from openvla_ros.ros.observation import ObservationStore, RejectCounter  # noqa: E402

RNG = np.random.default_rng(0)
RGBA = RNG.integers(0, 256, (5, 7, 4), dtype=np.uint8)  # R, G, B, A planes


def _image(encoding, pixels, pad=0):
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    rows = pixels.reshape(height, width * channels)
    padded = np.concatenate([rows, np.full((height, pad), 77, np.uint8)], axis=1)
    return Image(height=height, width=width, encoding=encoding,
                 step=width * channels + pad, data=padded.tobytes())


@pytest.mark.parametrize('encoding, pixels, expected', [
    ('rgb8', RGBA[..., :3], RGBA[..., :3]),
    ('bgr8', RGBA[..., 2::-1], RGBA[..., :3]),
    ('rgba8', RGBA, RGBA[..., :3]),
    ('bgra8', RGBA[..., [2, 1, 0, 3]], RGBA[..., :3]),
    ('mono8', RGBA[..., 0], np.stack([RGBA[..., 0]] * 3, axis=2)),
])
@pytest.mark.parametrize('pad', [0, 3])
def test_every_encoding_becomes_rgb(encoding, pixels, expected, pad):
    rgb = image_msg_to_rgb(_image(encoding, np.ascontiguousarray(pixels), pad))
    assert rgb.dtype == np.uint8 and rgb.shape == (5, 7, 3)
    np.testing.assert_array_equal(rgb, expected)


def test_bad_images_are_rejected_with_the_reason():
    good = _image('rgb8', RGBA[..., :3].copy())
    with pytest.raises(ConversionError, match="expected one of .*got 'yuv422'"):
        image_msg_to_rgb(Image(height=5, width=7, encoding='yuv422', step=14,
                               data=good.data))
    with pytest.raises(ConversionError, match='at least 21 bytes per row .* got 20'):
        image_msg_to_rgb(Image(height=5, width=7, encoding='rgb8', step=20, data=good.data))
    with pytest.raises(ConversionError, match=r'expected 105 bytes \(5 rows of 21\), got 100'):
        image_msg_to_rgb(Image(height=5, width=7, encoding='rgb8', step=21,
                               data=bytes(good.data)[:100]))
    with pytest.raises(ConversionError, match='positive height and width'):
        image_msg_to_rgb(Image(height=0, width=7, encoding='rgb8', step=21, data=b''))


def test_compressed_images_decode_and_garbage_is_rejected():
    buffer = io.BytesIO()
    PILImage.fromarray(RGBA[..., :3]).save(buffer, format='PNG')
    rgb = compressed_image_msg_to_rgb(CompressedImage(format='png', data=buffer.getvalue()))
    np.testing.assert_array_equal(rgb, RGBA[..., :3])  # PNG is lossless
    with pytest.raises(ConversionError, match="expected a decodable 'jpeg' image, got 4 bytes"):
        compressed_image_msg_to_rgb(CompressedImage(format='jpeg', data=b'\x00\x01\x02\x03'))


def test_decompression_bombs_are_rejected_before_decoding(png_claiming):
    # Pillow itself raises DecompressionBombError (not OSError) on this header.
    with pytest.raises(ConversionError, match='do not decode .*DecompressionBombError'):
        compressed_image_msg_to_rgb(CompressedImage(format='png',
                                                    data=png_claiming(20000, 10000)))
    # Below Pillow's limit, max_image_pixels decides, from the header alone: a real 20 Mpx PNG
    # of zeros (20 KB) is refused without decoding it.
    bomb = io.BytesIO()
    PILImage.new('L', (5000, 4000)).save(bomb, format='PNG')
    assert len(bomb.getvalue()) < 100_000
    with pytest.raises(ConversionError, match=r'at most 1000000 pixels .*got 5000x4000'):
        compressed_image_msg_to_rgb(CompressedImage(format='png', data=bomb.getvalue()),
                                    max_pixels=1_000_000)
    small = io.BytesIO()
    PILImage.new('RGB', (100, 10)).save(small, format='PNG')
    message = CompressedImage(format='png', data=small.getvalue())
    assert compressed_image_msg_to_rgb(message, max_pixels=1000).shape == (10, 100, 3)
    with pytest.raises(ConversionError, match='at most 999 pixels'):
        compressed_image_msg_to_rgb(message, max_pixels=999)
    raw = _image('rgb8', RGBA[..., :3].copy())
    assert image_msg_to_rgb(raw, max_pixels=35).shape == (5, 7, 3)
    with pytest.raises(ConversionError, match=r'at most 34 pixels .*got 7x5'):
        image_msg_to_rgb(raw, max_pixels=34)


def test_joint_positions_follow_the_requested_names():
    msg = JointState(name=['b', 'a', 'c'], position=[2.0, 1.0, 3.0])
    np.testing.assert_array_equal(joint_positions(msg, ['a', 'b', 'c']), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(joint_positions(msg, ()), [2.0, 1.0, 3.0])
    with pytest.raises(ConversionError, match=r"missing \['d'\]"):
        joint_positions(msg, ['a', 'd'])
    with pytest.raises(ConversionError, match='3 names and 2 positions'):
        joint_positions(JointState(name=['a', 'b', 'c'], position=[1.0, 2.0]), ())
    with pytest.raises(ConversionError, match='finite'):
        joint_positions(JointState(name=['a'], position=[float('nan')]), ['a'])


@pytest.mark.parametrize('wanted', [(), ['a'], ['b']])
def test_a_joint_named_twice_is_rejected_whichever_joints_are_wanted(wanted):
    msg = JointState(name=['a', 'b', 'a'], position=[1.0, 2.0, 3.0])
    with pytest.raises(ConversionError, match=r"distinct joint names, got \['a'\] more than"):
        joint_positions(msg, wanted)


def test_instruction_checks_and_time_fields():
    assert check_instruction('  pick up the bowl \n', 100) == 'pick up the bowl'
    with pytest.raises(ConversionError, match='non-empty'):
        check_instruction(' \t ', 100)
    with pytest.raises(ConversionError, match='at most 5 characters, got 6'):
        check_instruction('abcdef', 5)
    assert stamp_to_seconds(Time(sec=12, nanosec=500_000_000)) == 12.5
    assert seconds_to_duration_fields(0.15) == (0, 150_000_000)
    assert seconds_to_duration_fields(1_795_000_000.25) == (1_795_000_000, 250_000_000)
    assert seconds_to_duration_fields(2.9999999999) == (3, 0)
    assert joint_names_for_chunk((), 3) == ['action_0', 'action_1', 'action_2']
    with pytest.raises(ConversionError, match='expected 3 names, got 2'):
        joint_names_for_chunk(('a', 'b'), 3)


def test_observation_store_waits_for_every_input_and_rejects_old_ones():
    store = ObservationStore(num_cameras=2)
    frame = np.zeros((4, 4, 3), np.uint8)
    store.instruction = 'open the drawer'
    store.put_image(0, frame, stamp_s=9.8, received_s=9.9)
    assert store.snapshot(10.0, max_age_s=0.5, needs_proprio=False) is None  # camera 1 missing
    store.put_image(1, frame, stamp_s=None, received_s=9.95)  # unstamped: receipt time counts
    observation = store.snapshot(10.0, max_age_s=0.5, needs_proprio=False)
    assert observation.t_obs == pytest.approx(9.8)  # the oldest input
    assert store.snapshot(10.0, max_age_s=0.5, needs_proprio=True) is None  # no joints yet
    store.put_joints(np.ones(8), stamp_s=9.99, received_s=10.0)
    assert store.snapshot(10.0, max_age_s=0.5, needs_proprio=True).proprio.shape == (8,)
    assert store.snapshot(10.5, max_age_s=0.5, needs_proprio=True) is None  # camera 0 too old
    ages = store.ages(10.0)
    assert ages['camera0'] == pytest.approx(0.2) and ages['joint_states'] == pytest.approx(0.01)


def test_reject_counter_counts_per_source():
    counter = RejectCounter()
    assert counter.add('camera0', 'bad step') == 1
    assert counter.add('camera0', 'bad step') == 2
    counter.add('instruction', 'empty')
    assert counter.counts() == {'camera0': 2, 'instruction': 1}
    assert counter.last_reason == 'instruction: empty'
