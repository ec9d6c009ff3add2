"""Fuzzing the message conversions: any input converts or raises ConversionError, nothing else.

The node catches ConversionError as "bad input, counted"; any other exception is a bug. The
strategies fill real message objects with arbitrary field values of the right ROS types.
"""

import io

import numpy as np
import pytest

pytest.importorskip('sensor_msgs', reason='ROS message packages are not installed')

from hypothesis import given, HealthCheck, settings, strategies as st  # noqa: E402, I100
from PIL import Image as PILImage  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image, JointState  # noqa: E402

from openvla_ros.ros.conversions import (  # noqa: E402
    check_instruction, compressed_image_msg_to_rgb, ConversionError, image_msg_to_rgb,
    joint_positions)

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
UINT32 = st.integers(0, 2**32 - 1)
SMALL = st.integers(0, 64)
ENCODINGS = st.sampled_from(['rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'RGB8', 'mono16',
                             'yuv422', '', '16UC1']) | st.text(max_size=12)


def _png(width: int, height: int, mode: str) -> bytes:
    buffer = io.BytesIO()
    PILImage.new(mode, (width, height)).save(buffer, format='PNG')
    return buffer.getvalue()


def _converts_or_rejects(convert, *args):
    try:
        result = convert(*args)
    except ConversionError:
        return None
    return result


@FUZZ
@given(height=st.one_of(SMALL, UINT32), width=st.one_of(SMALL, UINT32),
       step=st.one_of(st.integers(0, 300), UINT32), encoding=ENCODINGS,
       data=st.binary(max_size=2048), max_pixels=st.integers(1, 2**31 - 1))
def test_raw_images_convert_or_raise_conversion_error(height, width, step, encoding, data,
                                                      max_pixels):
    msg = Image(height=height, width=width, step=step, encoding=encoding, data=data)
    rgb = _converts_or_rejects(image_msg_to_rgb, msg, max_pixels)
    if rgb is not None:
        assert rgb.dtype == np.uint8 and rgb.shape == (height, width, 3)
        assert height * width <= max_pixels


# Mutations of valid PNG/JPEG files reach deeper into Pillow's decoders than random bytes do.
VALID_FILES = [_png(9, 7, 'RGB'), _png(3, 5, 'L'), _png(4, 4, 'RGBA'), _png(6, 2, 'P')]
_jpeg = io.BytesIO()
PILImage.new('RGB', (16, 8), (10, 200, 30)).save(_jpeg, format='JPEG')
VALID_FILES.append(_jpeg.getvalue())


@st.composite
def mutated_files(draw):
    data = bytearray(draw(st.sampled_from(VALID_FILES)))
    for _ in range(draw(st.integers(0, 6))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    cut = draw(st.integers(1, len(data)))
    return bytes(data[:cut])


@FUZZ
@given(data=st.one_of(st.binary(max_size=512), mutated_files()),
       fmt=st.sampled_from(['jpeg', 'png', 'rgb8; jpeg compressed bgr8', '']),
       max_pixels=st.integers(1, 10**6))
def test_compressed_images_convert_or_raise_conversion_error(data, fmt, max_pixels):
    rgb = _converts_or_rejects(compressed_image_msg_to_rgb,
                               CompressedImage(format=fmt, data=data), max_pixels)
    if rgb is not None:
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
        assert rgb.shape[0] * rgb.shape[1] <= max_pixels


FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)
NAMES = st.lists(st.sampled_from(['a', 'b', 'c', 'joint_1', '']) | st.text(max_size=5),
                 max_size=6)


@FUZZ
@given(names=NAMES, positions=st.lists(FLOATS, max_size=6), wanted=NAMES)
def test_joint_states_convert_or_raise_conversion_error(names, positions, wanted):
    msg = JointState(name=names, position=positions)
    result = _converts_or_rejects(joint_positions, msg, wanted)
    if result is not None:
        assert len(set(names)) == len(names) == len(positions)
        assert result.shape == ((len(wanted),) if wanted else (len(positions),))
        assert np.all(np.isfinite(result))


@FUZZ
@given(text=st.text(max_size=600), max_chars=st.integers(1, 2000))
def test_instructions_convert_or_raise_conversion_error(text, max_chars):
    result = _converts_or_rejects(check_instruction, text, max_chars)
    if result is not None:
        assert result == result.strip() and 0 < len(result) <= max_chars
