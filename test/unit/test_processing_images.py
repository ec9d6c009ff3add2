"""processing.py: upstream-exact image preprocessing (reference section 4).

TensorFlow is not available, so the resize and the crop are checked against slow references
written here directly from TF's documented definitions, not against TF itself.
"""

import io
import json
import math
import re

import numpy as np
from PIL import Image, JpegImagePlugin
import pytest
import simplejpeg
import torch

from openvla_ros.processing import (
    CenterCrop, decode_jpeg, default_preprocessor_config, encode_jpeg, ImagePreprocessor,
    jpeg_round_trip, lanczos3_kernel, lanczos3_resize, lanczos3_resize_float,
    lanczos3_resize_weights, resize_for_policy)

RNG_SEED = 1234

# JPEG standard (ITU T.81 Annex K) quantization tables, natural order; libjpeg scales them by
# (200 - 2 * quality) % for quality >= 50.
LUMINANCE_TABLE = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
                   14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
                   18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
                   49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
CHROMINANCE_TABLE = ([17, 18, 24, 47] + [99] * 4 + [18, 21, 26, 66] + [99] * 4
                     + [24, 26, 56] + [99] * 5 + [47, 66] + [99] * 6 + [99] * 32)


def noise_image(height, width, seed=RNG_SEED):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def smooth_image(height, width):
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = [127 + 120 * np.sin(xx / 23.0 + yy / 41.0),
                127 + 120 * np.cos(xx / 17.0) * np.sin(yy / 29.0),
                (xx + yy) * 255 / (height + width)]
    return np.clip(np.rint(np.stack(channels, -1)), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# preprocessor_config.json


def test_default_config_carries_the_bf16_rounded_statistics():
    config = default_preprocessor_config()
    json.dumps(config)  # serializable as written to the hub
    dino, siglip = config['tvf_normalize_params']
    # Independent derivation: the ImageNet statistics rounded to bfloat16, as serialized upstream.
    imagenet_mean = torch.tensor([0.485, 0.456, 0.406]).bfloat16().float().tolist()
    imagenet_std = torch.tensor([0.229, 0.224, 0.225]).bfloat16().float().tolist()
    assert dino == {'mean': imagenet_mean, 'std': imagenet_std, 'inplace': False}
    assert dino['mean'] == [0.484375, 0.455078125, 0.40625]
    assert dino['std'] == [0.228515625, 0.2236328125, 0.224609375]
    assert siglip == {'mean': [0.5] * 3, 'std': [0.5] * 3, 'inplace': False}
    assert config['means'] == [[0.485, 0.456, 0.406], [0.5, 0.5, 0.5]]
    assert config['processor_class'] == 'PrismaticProcessor'
    assert config['image_processor_type'] == 'PrismaticImageProcessor'
    assert config['auto_map']['AutoImageProcessor'] == (
        'processing_prismatic.PrismaticImageProcessor')
    assert config['image_resize_strategy'] == 'resize-naive'
    assert config['input_sizes'] == [[3, 224, 224]] * 2
    assert config['tvf_resize_params'][0] == {'size': [224, 224], 'interpolation': 3,
                                              'antialias': True, 'max_size': None}
    assert config['tvf_crop_params'] == [{'output_size': [224, 224]}] * 2
    assert config['use_fused_vision_backbone'] is True


def test_default_config_unfused_has_one_backbone():
    config = default_preprocessor_config(use_fused=False)
    assert len(config['tvf_normalize_params']) == len(config['input_sizes']) == 1
    assert config['use_fused_vision_backbone'] is False
    assert ImagePreprocessor.from_config(config)([noise_image(224, 224)]).shape == (1, 3, 224,
                                                                                    224)


# ---------------------------------------------------------------------------------------------
# Step 3: normalization constants, channel and image order


def expected_channels(value, mean, std):
    return [(value / 255 - m) / s for m, s in zip(mean, std)]


def test_normalization_constants_and_channel_order():
    preprocessor = ImagePreprocessor.from_config(default_preprocessor_config(),
                                                 center_crop=False)
    image = np.empty((224, 224, 3), np.uint8)
    image[...] = [200, 100, 0]
    pixels = preprocessor([image])
    assert pixels.shape == (1, 6, 224, 224) and pixels.dtype == torch.float32
    per_channel = pixels[0, :, 0, 0].tolist()
    dino = [(200 / 255 - 0.484375) / 0.228515625, (100 / 255 - 0.455078125) / 0.2236328125,
            (0 - 0.40625) / 0.224609375]
    siglip = [(200 / 255 - 0.5) / 0.5, (100 / 255 - 0.5) / 0.5, -1.0]
    np.testing.assert_allclose(per_channel, dino + siglip, rtol=0, atol=1e-6)  # DINOv2 first
    assert torch.equal(pixels, pixels[:, :, :1, :1].expand_as(pixels))


def test_multiple_images_keep_their_order():
    preprocessor = ImagePreprocessor.from_config(default_preprocessor_config(),
                                                 center_crop=False)
    primary, wrist = noise_image(224, 224, seed=1), noise_image(224, 224, seed=2)
    both = preprocessor([primary, wrist])
    assert both.shape == (1, 12, 224, 224)
    assert torch.equal(both[:, :6], preprocessor([primary]))
    assert torch.equal(both[:, 6:], preprocessor([wrist]))


def test_missing_tvf_params_fall_back_to_unrounded_float32_means():
    config = default_preprocessor_config()
    del config['tvf_normalize_params']
    preprocessor = ImagePreprocessor.from_config(config, center_crop=False)
    image = np.zeros((224, 224, 3), np.uint8)
    np.testing.assert_allclose(preprocessor([image])[0, :3, 0, 0].tolist(),
                               [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225], rtol=1e-6)


def test_from_checkpoint_reads_the_file_and_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=f'{tmp_path / "preprocessor_config.json"}'):
        ImagePreprocessor.from_checkpoint(tmp_path)
    config = default_preprocessor_config()
    config['tvf_normalize_params'] = config['tvf_normalize_params'][:1]
    (tmp_path / 'preprocessor_config.json').write_text(json.dumps(config))
    with pytest.raises(ValueError, match='preprocessor_config.json: expected 2 '
                                         'tvf_normalize_params .*got 1'):
        ImagePreprocessor.from_checkpoint(tmp_path)
    (tmp_path / 'preprocessor_config.json').write_text(json.dumps(default_preprocessor_config()))
    assert ImagePreprocessor.from_checkpoint(tmp_path).num_backbones == 2


# ---------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize('image, got', [
    (np.zeros((480, 640), np.float32), 'float32 (480, 640)'),
    (np.zeros((480, 640), np.uint8), 'uint8 (480, 640)'),
    (np.zeros((48, 64, 4), np.uint8), 'uint8 (48, 64, 4)'),
    (np.zeros((0, 64, 3), np.uint8), 'uint8 (0, 64, 3)'),
    ([[1, 2, 3]], 'list of length 1'),
])
def test_invalid_images_are_rejected_with_their_index(image, got):
    preprocessor = ImagePreprocessor.from_config(default_preprocessor_config())
    with pytest.raises(ValueError, match=re.escape(f'image 1: expected uint8 HxWx3, got {got}')):
        preprocessor([noise_image(224, 224), image])


@pytest.mark.parametrize('images', [[], (), noise_image(224, 224), None])
def test_images_must_be_a_non_empty_sequence(images):
    preprocessor = ImagePreprocessor.from_config(default_preprocessor_config())
    with pytest.raises(ValueError, match='expected a non-empty sequence of images'):
        preprocessor(images)


def test_views_and_read_only_arrays_are_accepted():
    preprocessor = ImagePreprocessor.from_config(default_preprocessor_config())
    image = noise_image(256, 256)
    flipped = image[::-1, ::-1]  # LIBERO's 180 degree flip, a negative-stride view
    read_only = np.frombuffer(image.tobytes(), np.uint8).reshape(image.shape)
    assert not read_only.flags.writeable
    assert torch.equal(preprocessor([flipped]), preprocessor([flipped.copy()]))
    assert torch.equal(preprocessor([read_only]), preprocessor([image]))


# ---------------------------------------------------------------------------------------------
# Step 1: JPEG round trip


def test_jpeg_uses_quality_95_and_420_subsampling():
    data = encode_jpeg(noise_image(40, 56))
    with Image.open(io.BytesIO(data)) as image:
        assert JpegImagePlugin.get_sampling(image) == 2  # 4:2:0
        scale = 200 - 2 * 95
        for table, standard in ((0, LUMINANCE_TABLE), (1, CHROMINANCE_TABLE)):
            expected = [min(max((q * scale + 50) // 100, 1), 255) for q in standard]
            assert list(image.quantization[table]) == expected


def test_jpeg_decode_uses_the_fast_integer_idct():
    data = encode_jpeg(smooth_image(64, 80))
    fast = simplejpeg.decode_jpeg(data, fastdct=True, fastupsample=False)
    accurate = simplejpeg.decode_jpeg(data, fastdct=False, fastupsample=False)
    assert not np.array_equal(fast, accurate)  # the switch matters on this image
    assert np.array_equal(decode_jpeg(data), fast)
    assert np.array_equal(jpeg_round_trip(smooth_image(64, 80)), fast)


# ---------------------------------------------------------------------------------------------
# Step 1: Lanczos-3 resize against a float64 per-pixel reference


def lanczos3_reference(x):
    x = abs(x)
    if x >= 3.0:
        return 0.0
    if x == 0.0:
        return 1.0
    return 3.0 * math.sin(math.pi * x) * math.sin(math.pi * x / 3.0) / (math.pi * x) ** 2


def reference_taps(input_size, output_size, index):
    """Input pixels and normalized weights for one output pixel (TF scale_and_translate)."""
    widen = max(input_size / output_size, 1.0)  # antialias: widen the kernel when shrinking
    centre = (index + 0.5) * input_size / output_size
    first = max(math.ceil(centre - 3.0 * widen - 0.5), 0)
    last = min(math.floor(centre + 3.0 * widen - 0.5), input_size - 1)
    sources = np.arange(first, last + 1)
    weights = np.array([lanczos3_reference((s + 0.5 - centre) / widen) for s in sources])
    return sources, weights / weights.sum()


def reference_resize(image, height, width, rows, cols):
    """Evaluate the 2-D Lanczos sum directly at the output pixels rows x cols, in float64."""
    out = np.zeros((len(rows), len(cols), image.shape[2]))
    for a, y in enumerate(rows):
        ys, wy = reference_taps(image.shape[0], height, y)
        for b, x in enumerate(cols):
            xs, wx = reference_taps(image.shape[1], width, x)
            patch = image[np.ix_(ys, xs)].astype(np.float64)  # (ky, kx, C)
            out[a, b] = np.einsum('i,j,ijc->c', wy, wx, patch)
    return out


# TF works in float32, including the sample positions (ulp 1.5e-5 at 256), so values on the
# 0..255 scale may differ from exact arithmetic by a few 1e-3; measured max 5.5e-3.
FLOAT_TOLERANCE = 1e-2


@pytest.mark.parametrize('in_shape, out_shape', [
    ((48, 64), (14, 20)),     # shrink by 3.4 / 3.2
    ((37, 29), (23, 41)),     # shrink one axis, enlarge the other
    ((9, 7), (20, 16)),       # enlarge only: plain Lanczos-3 interpolation
])
def test_lanczos_matches_the_reference_everywhere(in_shape, out_shape):
    image = noise_image(*in_shape)
    rows, cols = range(out_shape[0]), range(out_shape[1])
    expected = reference_resize(image, *out_shape, rows, cols)
    resized = lanczos3_resize_float(image, *out_shape)
    assert resized.dtype == np.float32 and resized.shape == out_shape + (3,)
    np.testing.assert_allclose(resized, expected, rtol=0, atol=FLOAT_TOLERANCE)
    rounded = lanczos3_resize(image, *out_shape)
    near_tie = np.abs(np.abs(expected - np.floor(expected)) - 0.5) < FLOAT_TOLERANCE
    assert np.all((rounded == np.clip(np.rint(expected), 0, 255)) | near_tie)


@pytest.mark.parametrize('in_shape', [(256, 256), (480, 640)])
def test_lanczos_matches_the_reference_on_camera_sizes(in_shape):
    image = noise_image(*in_shape)
    sample = list(range(0, 224, 9)) + [223]  # a grid of output pixels incl. both borders
    expected = reference_resize(image, 224, 224, sample, sample)
    resized = lanczos3_resize_float(image, 224, 224)[np.ix_(sample, sample)]
    np.testing.assert_allclose(resized, expected, rtol=0, atol=FLOAT_TOLERANCE)


def test_lanczos_kernel_values():
    x = np.array([0.0, 0.0005, 0.5, 1.0, 2.5, 3.0, 3.5, -0.5], np.float32)
    expected = [1.0, 1.0, 3 * math.sin(math.pi / 6) / (math.pi / 2) ** 2, 0.0,
                lanczos3_reference(2.5), 0.0, 0.0, 3 * 0.5 / (math.pi / 2) ** 2]
    np.testing.assert_allclose(lanczos3_kernel(x), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize('input_size, span', [(640, 19), (480, 15), (256, 9), (100, 7)])
def test_lanczos_span_width_and_weight_sums(input_size, span):
    indices, weights = lanczos3_resize_weights(input_size, 224)
    # 2 * ceil(3 * widen) + 1 taps, widen = input / output when shrinking, else 1
    assert weights.shape == indices.shape == (224, span)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=0, atol=1e-6)
    assert indices.min() >= 0 and indices.max() <= input_size - 1


def test_lanczos_keeps_a_linear_ramp_away_from_the_borders():
    ramp = np.tile(np.arange(200, dtype=np.uint8)[None, :, None], (4, 1, 3))  # x = column
    resized = lanczos3_resize_float(ramp, 4, 100)[0, :, 0]
    centres = (np.arange(100) + 0.5) * 2 - 0.5  # sample point in pixel-index units
    inner = slice(4, 96)  # the kernel reaches 6 input pixels; clamped near the borders
    np.testing.assert_allclose(resized[inner], centres[inner], rtol=0, atol=1e-3)


def test_lanczos_against_pil_is_within_one_level_on_a_smooth_image():
    # Documented, not a target: PIL's LANCZOS uses fixed-point weights and differs slightly.
    image = smooth_image(480, 640)
    ours = lanczos3_resize(image, 224, 224).astype(int)
    pil = np.asarray(Image.fromarray(image).resize((224, 224), Image.LANCZOS)).astype(int)
    assert np.abs(ours - pil).max() <= 1


def test_resize_for_policy_switches():
    image = noise_image(256, 256)
    with_jpeg = resize_for_policy(image)
    assert np.array_equal(with_jpeg, lanczos3_resize(jpeg_round_trip(image), 224, 224))
    without_jpeg = resize_for_policy(image, jpeg=False)
    assert np.array_equal(without_jpeg, lanczos3_resize(image, 224, 224))
    assert not np.array_equal(with_jpeg, without_jpeg)
    already = noise_image(224, 224)
    assert resize_for_policy(already) is already  # no JPEG, no resize at 224 x 224


# ---------------------------------------------------------------------------------------------
# Step 2: centre crop against a per-pixel bilinear sampler


def reference_center_crop(image, rows, cols, size):
    """TF crop_and_resize, sample by sample, in float32 as TF computes it."""
    f32 = np.float32
    side = np.sqrt(f32(0.9))
    y1 = (f32(1) - side) / f32(2)
    y2 = y1 + side
    values = image.astype(f32) * f32(1.0 / 255)  # convert_image_dtype(float32)
    height, width = image.shape[:2]
    out = np.zeros((len(rows), len(cols), 3), np.uint8)
    for a, i in enumerate(rows):
        in_y = y1 * f32(height - 1) + f32(i) * ((y2 - y1) * f32(height - 1) / f32(size - 1))
        top, bottom = int(math.floor(in_y)), int(math.ceil(in_y))
        y_lerp = in_y - f32(top)
        for b, j in enumerate(cols):
            in_x = y1 * f32(width - 1) + f32(j) * ((y2 - y1) * f32(width - 1) / f32(size - 1))
            left, right = int(math.floor(in_x)), int(math.ceil(in_x))
            x_lerp = in_x - f32(left)
            upper = values[top, left] + (values[top, right] - values[top, left]) * x_lerp
            lower = values[bottom, left] + (values[bottom, right] - values[bottom, left]) * x_lerp
            pixel = np.clip(upper + (lower - upper) * y_lerp, f32(0), f32(1))
            out[a, b] = np.clip(np.floor(pixel * f32(255.5)), 0, 255)  # saturate_cast(v*255.5)
    return out


def test_crop_box_arithmetic():
    start, end = CenterCrop().box
    assert start.dtype == np.float32 and end.dtype == np.float32
    side = math.sqrt(0.9)
    assert abs(float(start) - (1 - side) / 2) < 1e-7 and abs(float(end) - (1 + side) / 2) < 1e-7
    low, high, lerp = CenterCrop().sampling(224)
    # y_i = o (H - 1) + i s (H - 1) / 223: first sample at 5.72, last at 217.28
    points = (1 - side) / 2 * 223 + np.arange(224) * side * 223 / 223
    np.testing.assert_allclose(low + lerp, points, rtol=0, atol=1e-4)
    assert np.array_equal(high - low, (lerp > 0).astype(int))
    assert low[0] == 5 and high[-1] == 218


def test_crop_equals_the_per_pixel_sampler_on_a_small_image():
    image = noise_image(32, 32)
    expected = reference_center_crop(image, range(32), range(32), 32)
    assert np.array_equal(CenterCrop(output_size=32)(image), expected)


def test_crop_equals_the_per_pixel_sampler_on_224():
    image = noise_image(224, 224)
    sample = list(range(0, 224, 7)) + [223]
    expected = reference_center_crop(image, sample, sample, 224)
    assert np.array_equal(CenterCrop()(image)[np.ix_(sample, sample)], expected)


def test_crop_of_a_constant_image_is_unchanged():
    image = np.full((224, 224, 3), 77, np.uint8)
    # 77 / 255 * 255.5 = 77.15 -> floor 77: the crop and the dtype round trip keep the value
    assert np.array_equal(CenterCrop()(image), image)


# ---------------------------------------------------------------------------------------------
# The whole pipeline and its switches


def test_pipeline_steps_and_switches():
    config = default_preprocessor_config()
    camera = noise_image(480, 640)
    full = ImagePreprocessor.from_config(config)
    no_crop = ImagePreprocessor.from_config(config, center_crop=False)
    no_jpeg = ImagePreprocessor.from_config(config, jpeg_resize=False)
    resized = lanczos3_resize(jpeg_round_trip(camera), 224, 224)
    assert np.array_equal(full.prepare(camera), CenterCrop()(resized))
    assert np.array_equal(no_crop.prepare(camera), resized)
    assert np.array_equal(no_jpeg.prepare(camera), CenterCrop()(lanczos3_resize(camera, 224,
                                                                                224)))
    exact = noise_image(224, 224)
    assert np.array_equal(no_crop.prepare(exact), exact)  # 224 x 224 bypasses the resize
    assert np.array_equal(full.prepare(exact), CenterCrop()(exact))
    pixels = full([camera])
    expected = (torch.from_numpy(full.prepare(camera)).permute(2, 0, 1).float() / 255 - 0.5) / 0.5
    assert torch.equal(pixels[0, 3:], expected)  # SigLIP half: (x / 255 - 0.5) / 0.5
