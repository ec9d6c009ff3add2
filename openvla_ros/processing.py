"""Upstream-exact OpenVLA-OFT inputs: the prompt's token ids and the images' pixel values.

Images (OPENVLA_OFT_REFERENCE.md section 4), per camera image, in order:

1. `resize_for_policy`: unless already S x S x 3 (S = 224), a JPEG round trip (quality 95, 4:2:0,
   libjpeg-turbo fast integer IDCT on decode) and TF's antialiased Lanczos-3 resize to S x S,
   rounded half-to-even to uint8 (upstream's `resize_image_for_policy`).
2. `CenterCrop`: TF `crop_and_resize` of the centred 0.9-area box back to S x S (bilinear,
   float32), then `floor(v * 255.5)` to uint8 (upstream's `center_crop_image`).
3. Per backbone k (0 = DINOv2, 1 = SigLIP): /255, CHW float32, (x - mean_k) / std_k with the
   checkpoint's bf16-rounded `tvf_normalize_params`. The processor's own bicubic resize and centre
   crop to S are skipped: on an S x S image both are exact no-ops.

Upstream does steps 1-2 with TensorFlow; here they are torch / numpy on the CPU in TF's float32
operation order (Pillow and simplejpeg for the JPEG step), with the resize and crop sampling
tables computed once per input size. Checked against TensorFlow 2.15.0 (upstream's pin) in a
scratch environment: JPEG round trip, Lanczos resize (float output bit-identical, which needs
glibc's `sinf`, as TF uses) and crop match exactly on 256x256 to 1280x720 inputs; CI checks the
resize against a float64 reference of TF's kernel instead (TensorFlow is not a dependency).
"""

import functools
import io
import json
import math
import pathlib
from typing import Optional, Sequence

import numpy as np
from PIL import Image
import simplejpeg
from tokenizers import Tokenizer
import torch

PROMPT_TEMPLATE = 'In: What action should the robot take to {instruction}?\nOut:'

PREPROCESSOR_CONFIG_FILENAME = 'preprocessor_config.json'
TOKENIZER_FILENAME = 'tokenizer.json'
TOKENIZER_CONFIG_FILENAME = 'tokenizer_config.json'

IMAGE_SIZE = 224
JPEG_QUALITY = 95
CENTER_CROP_AREA = 0.9    # training used random crops of 90 % of the area
LANCZOS_RADIUS = 3.0

# ImageNet (DINOv2) and SigLIP statistics as upstream's processor computes them, and as they are
# stored in the hub's preprocessor_config.json: rounded to bfloat16 when serialized.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SIGLIP_MEAN, SIGLIP_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
DINOV2_NORMALIZE = {'mean': [0.484375, 0.455078125, 0.40625],
                    'std': [0.228515625, 0.2236328125, 0.224609375]}
SIGLIP_NORMALIZE = {'mean': [0.5, 0.5, 0.5], 'std': [0.5, 0.5, 0.5]}
PIL_BICUBIC = 3


# --------------------------------------------------------------------------------------------
# Prompt and tokens


def build_prompt(instruction: str) -> str:
    """Return the OpenVLA prompt for `instruction` (lower-cased; no trailing space)."""
    if not isinstance(instruction, str):
        raise TypeError(f'expected the instruction as str, got {type(instruction).__name__}')
    if not instruction.strip():
        raise ValueError(f'expected a non-empty instruction, got {instruction!r}')
    return PROMPT_TEMPLATE.format(instruction=instruction.lower())


class PromptTokenizer:
    """Turn instructions into the OpenVLA prompt's ids, as the checkpoint's Llama tokenizer does.

    Reads `tokenizer.json` with the `tokenizers` library (no transformers, no remote code).
    Like transformers' LlamaTokenizerFast, BOS / EOS come from tokenizer_config.json's
    `add_bos_token` / `add_eos_token` (defaults True / False), not from the file's post-processor.
    The 29871 ('▁') token the model appends is not included.
    """

    def __init__(self, tokenizer: Tokenizer, add_bos_token: bool = True,
                 add_eos_token: bool = False, bos_token: str = '<s>', eos_token: str = '</s>',
                 pad_token: Optional[str] = '<PAD>'):
        self._tokenizer = tokenizer
        self._add_bos_token = add_bos_token
        self._add_eos_token = add_eos_token
        self.bos_token_id = self._required_id(bos_token)
        self.eos_token_id = self._required_id(eos_token)
        self.pad_token_id = tokenizer.token_to_id(pad_token) if pad_token else None

    @classmethod
    def from_checkpoint(cls, checkpoint_dir) -> 'PromptTokenizer':
        """Load `tokenizer.json` (+ the optional `tokenizer_config.json`) of a checkpoint."""
        directory = pathlib.Path(checkpoint_dir)
        path = directory / TOKENIZER_FILENAME
        if not path.is_file():
            raise FileNotFoundError(f'{path}: tokenizer file not found (expected the '
                                    "checkpoint's Llama tokenizer.json)")
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as error:  # the Rust side raises a bare Exception
            raise ValueError(f'{path}: cannot load tokenizer: {error}') from None
        config = _read_json(directory / TOKENIZER_CONFIG_FILENAME, missing_ok=True) or {}
        try:
            return cls(tokenizer, add_bos_token=bool(config.get('add_bos_token', True)),
                       add_eos_token=bool(config.get('add_eos_token', False)),
                       bos_token=_token_content(config.get('bos_token', '<s>')),
                       eos_token=_token_content(config.get('eos_token', '</s>')),
                       pad_token=_token_content(config.get('pad_token', '<PAD>')))
        except ValueError as error:
            raise ValueError(f'{path}: {error}') from None

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens (<PAD>) included."""
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, instruction: str) -> list[int]:
        """Return the ids of `build_prompt(instruction)`, BOS first."""
        return self.encode_text(build_prompt(instruction))

    def encode_text(self, text: str) -> list[int]:
        """Return the ids of any text with the configured BOS / EOS."""
        ids = self._tokenizer.encode(text, add_special_tokens=False).ids
        if self._add_bos_token:
            ids = [self.bos_token_id] + ids
        if self._add_eos_token:
            ids = ids + [self.eos_token_id]
        return ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self._tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def _required_id(self, token: str) -> int:
        token_id = self._tokenizer.token_to_id(token)
        if token_id is None:
            raise ValueError(f'expected the special token {token!r} in the vocabulary, got none')
        return token_id


def _token_content(token) -> Optional[str]:
    return token.get('content') if isinstance(token, dict) else token


# --------------------------------------------------------------------------------------------
# preprocessor_config.json


def default_preprocessor_config(image_size: int = IMAGE_SIZE, use_fused: bool = True) -> dict:
    """Return the `preprocessor_config.json` content upstream writes (reference section 4.2).

    Fused: DINOv2 then SigLIP entries; otherwise the DINOv2 entry only. Normalization values are
    the bf16-rounded ones stored on the hub, which are what inference uses.
    """
    if not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f'expected a positive integer image_size, got {image_size!r}')
    normalize = [DINOV2_NORMALIZE, SIGLIP_NORMALIZE] if use_fused else [DINOV2_NORMALIZE]
    means = [list(IMAGENET_MEAN), list(SIGLIP_MEAN)][:len(normalize)]
    stds = [list(IMAGENET_STD), list(SIGLIP_STD)][:len(normalize)]
    size = [image_size, image_size]
    return {
        'auto_map': {
            'AutoImageProcessor': 'processing_prismatic.PrismaticImageProcessor',
            'AutoProcessor': 'processing_prismatic.PrismaticProcessor',
        },
        'image_processor_type': 'PrismaticImageProcessor',
        'image_resize_strategy': 'resize-naive',
        'input_sizes': [[3, image_size, image_size] for _ in normalize],
        'interpolations': ['bicubic' for _ in normalize],
        'means': means,
        'processor_class': 'PrismaticProcessor',
        'stds': stds,
        'tvf_crop_params': [{'output_size': list(size)} for _ in normalize],
        'tvf_do_letterbox': False,
        'tvf_letterbox_fill': None,
        'tvf_normalize_params': [dict(params, inplace=False) for params in normalize],
        'tvf_resize_params': [{'antialias': True, 'interpolation': PIL_BICUBIC, 'max_size': None,
                               'size': list(size)} for _ in normalize],
        'use_fused_vision_backbone': use_fused,
    }


# --------------------------------------------------------------------------------------------
# Step 1: JPEG round trip + TF Lanczos-3 resize


def encode_jpeg(image: np.ndarray) -> bytes:
    """Encode like `tf.io.encode_jpeg` with its defaults: quality 95, 4:2:0 chroma subsampling."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format='JPEG',
                                                      quality=JPEG_QUALITY, subsampling=2)
    return buffer.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    """Decode like `tf.io.decode_image`: libjpeg(-turbo) fast integer IDCT, fancy upsampling."""
    return simplejpeg.decode_jpeg(data, colorspace='RGB', fastdct=True, fastupsample=False)


def jpeg_round_trip(image: np.ndarray) -> np.ndarray:
    """Encode as JPEG and decode again, as upstream does before resizing."""
    return decode_jpeg(encode_jpeg(image))


def _load_sinf():
    """Return the C library's float sin (what TF's kernel calls), or None if unavailable."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library('m')
    if name is None:
        return None
    try:
        libm = ctypes.CDLL(name)
        function = libm.sinf
    except (OSError, AttributeError):
        return None
    function.restype, function.argtypes = ctypes.c_float, [ctypes.c_float]
    return function


_LIBM_SINF = _load_sinf()


def _sinf(values: np.ndarray) -> np.ndarray:
    """Return sin of float32 values in float32, with libm's sinf when it can be loaded."""
    values = np.asarray(values, dtype=np.float32)
    if _LIBM_SINF is None:  # fallback: correctly rounded (differs from glibc by 1 ulp at times)
        return np.sin(values.astype(np.float64)).astype(np.float32)
    flat = [_LIBM_SINF(float(v)) for v in values.ravel()]
    return np.array(flat, dtype=np.float32).reshape(values.shape)


def lanczos3_kernel(x: np.ndarray) -> np.ndarray:
    """Evaluate TF's Lanczos-3 kernel in float32: 3 sin(pi x) sin(pi x / 3) / (pi x)^2."""
    x = np.abs(np.asarray(x, dtype=np.float32))
    pi = np.float32(math.pi)
    radius = np.float32(LANCZOS_RADIUS)
    # TF calls C's sinf (std::sin(float)); glibc's sinf is not correctly rounded, so call it.
    sin_pi_x = _sinf(pi * x)
    sin_pi_x_r = _sinf(pi * x / radius)
    with np.errstate(divide='ignore', invalid='ignore'):
        value = radius * sin_pi_x * sin_pi_x_r / (pi * pi * x * x)
    value = np.where(x.astype(np.float64) <= 1e-3, np.float32(1), value)  # C++: float <= double
    return np.where(x > radius, np.float32(0), value).astype(np.float32)


@functools.lru_cache(maxsize=16)
def lanczos3_resize_weights(input_size: int, output_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Build the sampling table of TF `scale_and_translate` (lanczos3, antialias) on one axis.

    Output pixel i reads input pixels `indices[i, k]` with weights `weights[i, k]` (float32, zero
    past the end of the span). When downscaling the kernel is widened by input/output. Every step
    mirrors TF's float32 arithmetic, including the sequential weight sum.
    Returns (indices (O, K) int64, weights (O, K) float32), both read-only.
    """
    scale = np.float32(output_size) / np.float32(input_size)
    inv_scale = np.float32(1.0 / np.float64(scale))  # TF: float = double 1.0 / float scale
    kernel_scale = max(inv_scale, np.float32(1))
    one_over_kernel_scale = np.float32(1) / kernel_scale
    reach = np.float32(LANCZOS_RADIUS) * kernel_scale
    span = min(2 * int(math.ceil(reach)) + 1, input_size)

    sample = (np.arange(output_size, dtype=np.float32) + np.float32(0.5)) * inv_scale  # (O,)
    starts = np.clip(np.ceil(sample - reach - np.float32(0.5)), 0, input_size - 1).astype(int)
    ends = np.clip(np.floor(sample + reach - np.float32(0.5)), 0, input_size - 1).astype(int) + 1
    sources = starts[:, None] + np.arange(span)[None, :]  # (O, K)
    inside = sources < ends[:, None]
    position = (sources.astype(np.float32) + np.float32(0.5)) - sample[:, None]
    weights = np.where(inside, lanczos3_kernel(position * one_over_kernel_scale), np.float32(0))
    total = np.zeros(output_size, dtype=np.float32)
    for k in range(span):  # float32, in span order
        total += weights[:, k]
    usable = np.abs(total) >= np.float32(1000) * np.finfo(np.float32).tiny
    inverse = np.float32(1) / np.where(usable, total, np.float32(1))
    weights = np.where(usable[:, None], weights * inverse[:, None], np.float32(0))
    indices = np.minimum(sources, input_size - 1)  # zero-weight tail: any valid index
    return _read_only(indices), _read_only(weights.astype(np.float32))


@functools.lru_cache(maxsize=16)
def _lanczos3_tables(input_size: int, output_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    indices, weights = lanczos3_resize_weights(input_size, output_size)
    return torch.from_numpy(indices.copy()), torch.from_numpy(weights.copy())


def _lanczos3_resize_tensor(source: torch.Tensor, height: int, width: int) -> torch.Tensor:
    in_height, in_width, channels = source.shape
    row_indices, row_weights = _lanczos3_tables(in_height, height)
    col_indices, col_weights = _lanczos3_tables(in_width, width)
    source = source.reshape(in_height, in_width * channels)  # (H, W C)
    rows = torch.zeros(height, in_width * channels)  # (h, W C)
    for k in range(row_weights.shape[1]):  # multiply, then add: no fused multiply-add
        rows += source.index_select(0, row_indices[:, k]) * row_weights[:, k, None]
    # Columns become rows so that the second pass also gathers contiguous memory.
    rows = rows.reshape(height, in_width, channels).transpose(0, 1)  # (W, h, C)
    rows = rows.reshape(in_width, height * channels)  # (W, h C), a copy
    out = torch.zeros(width, height * channels)  # (w, h C)
    for k in range(col_weights.shape[1]):
        out += rows.index_select(0, col_indices[:, k]) * col_weights[:, k, None]
    return out.reshape(width, height, channels).transpose(0, 1)  # (h, w, C)


def lanczos3_resize_float(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize like `tf.image.resize(image, size, 'lanczos3', antialias=True)`: float32 HxWxC.

    Separable: rows (vertical) first into a float32 intermediate, then columns; each output sums
    weight * input in span order, like TF's GatherRows / GatherColumns.
    """
    source = _as_tensor(np.asarray(image)).float()
    if source.ndim == 2:
        source = source[:, :, None]
    resized = _lanczos3_resize_tensor(source, height, width).contiguous().numpy()
    return resized.reshape((height, width) + np.shape(image)[2:])


def _round_to_uint8(values: torch.Tensor) -> torch.Tensor:
    return torch.round(values).clamp_(0, 255).to(torch.uint8)  # round() is half-to-even


def lanczos3_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Lanczos-3 resize as upstream's policy input: TF resize, round half-to-even, clip, uint8."""
    resized = torch.from_numpy(lanczos3_resize_float(image, height, width))
    return _round_to_uint8(resized).numpy()


def resize_for_policy(image: np.ndarray, size: int = IMAGE_SIZE, jpeg: bool = True) -> np.ndarray:
    """Apply upstream's `resize_image_for_policy`; a size x size x 3 image is returned as is."""
    if image.shape == (size, size, 3):
        return image
    if jpeg:
        image = jpeg_round_trip(image)
    return lanczos3_resize(image, size, size)


# --------------------------------------------------------------------------------------------
# Step 2: centre crop (TF crop_and_resize, bilinear)


class CenterCrop:
    """Upstream's `center_crop_image`: crop the centred `area` box, resize it back, uint8.

    Follows TF `crop_and_resize` on the image converted to float32 in [0, 1]: box
    [o, o, o + s, o + s] with s = sqrt(area), o = (1 - s) / 2 (float32), sample row
    y_i = y1 (H - 1) + i (y2 - y1) (H - 1) / (S - 1) (same for columns), bilinear; then clip to
    [0, 1] and `convert_image_dtype(uint8, saturate=True)` = floor(v * 255.5).
    """

    def __init__(self, output_size: int = IMAGE_SIZE, area: float = CENTER_CROP_AREA):
        self.output_size = output_size
        self.area = area
        side = np.clip(np.sqrt(np.float32(area)), np.float32(0), np.float32(1))
        offset = (np.float32(1) - side) / np.float32(2)
        self.box = (offset, offset + side)  # (start, end) in normalized float32 coordinates
        self._tables = {}

    def sampling(self, input_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (low index, high index, lerp) of the S sample points on an axis of that size."""
        start, end = self.box
        last = np.float32(input_size - 1)
        step = (end - start) * last / np.float32(self.output_size - 1)
        points = start * last + np.arange(self.output_size, dtype=np.float32) * step  # (S,)
        low = np.floor(points)
        return low.astype(np.int64), np.ceil(points).astype(np.int64), points - low

    def _table(self, input_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if input_size not in self._tables:
            self._tables[input_size] = tuple(torch.from_numpy(a)
                                             for a in self.sampling(input_size))
        return self._tables[input_size]

    def crop_tensor(self, image: torch.Tensor) -> torch.Tensor:
        """Crop a uint8 (H, W, 3) tensor; returns a uint8 (S, S, 3) tensor."""
        top, bottom, y_lerp = self._table(image.shape[0])
        left, right, x_lerp = self._table(image.shape[1])
        values = image.float() * _ONE_OVER_255  # TF's uint8 -> float32 conversion
        upper, lower = values.index_select(0, top), values.index_select(0, bottom)  # (S, W, 3)
        x_lerp = x_lerp[None, :, None]
        upper_left = upper.index_select(1, left)  # (S, S, 3)
        upper = upper_left + (upper.index_select(1, right) - upper_left) * x_lerp
        lower_left = lower.index_select(1, left)
        lower = lower_left + (lower.index_select(1, right) - lower_left) * x_lerp
        crop = (upper + (lower - upper) * y_lerp[:, None, None]).clamp_(0, 1)
        return torch.floor(crop * 255.5).clamp_(0, 255).to(torch.uint8)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Crop a uint8 HxWx3 array; returns uint8 SxSx3."""
        return self.crop_tensor(_as_tensor(image)).numpy()


_ONE_OVER_255 = torch.tensor(1.0 / 255, dtype=torch.float32)


# --------------------------------------------------------------------------------------------
# Step 3 and the whole pipeline


class ImagePreprocessor:
    """Camera images (uint8 HxWx3 RGB) -> pixel values (1, 3 K N, S, S) float32.

    K = backbones (2 when fused: DINOv2 channels first, then SigLIP), N = images in the given
    order, S = 224. `center_crop` and `jpeg_resize` mirror the upstream deploy switches.
    """

    def __init__(self, normalize_params: Sequence[dict], image_size: int = IMAGE_SIZE,
                 center_crop: bool = True, jpeg_resize: bool = True):
        if not normalize_params:
            raise ValueError('expected at least one set of normalization parameters, got none')
        self.image_size = image_size
        self.jpeg_resize = jpeg_resize
        self.center_crop = CenterCrop(image_size) if center_crop else None
        means = torch.tensor([_three_floats(p, 'mean') for p in normalize_params])  # (K, 3)
        stds = torch.tensor([_three_floats(p, 'std') for p in normalize_params])  # (K, 3)
        self._mean = means[None, :, :, None, None]  # (1, K, 3, 1, 1)
        self._std = stds[None, :, :, None, None]  # (1, K, 3, 1, 1)

    @property
    def num_backbones(self) -> int:
        return int(self._mean.shape[1])

    @classmethod
    def from_config(cls, config: dict, center_crop: bool = True,
                    jpeg_resize: bool = True) -> 'ImagePreprocessor':
        """Build from a `preprocessor_config.json` dict (its `tvf_normalize_params` win)."""
        if not isinstance(config, dict):
            raise ValueError(f'expected a preprocessor config dict, got {type(config).__name__}')
        sizes = config.get('input_sizes') or [[3, IMAGE_SIZE, IMAGE_SIZE]]
        if any(list(s) != list(sizes[0]) for s in sizes) or len(sizes[0]) != 3 \
                or sizes[0][0] != 3 or sizes[0][1] != sizes[0][2]:
            raise ValueError(f'expected input_sizes of equal [3, S, S] entries, got {sizes}')
        params = config.get('tvf_normalize_params')
        if params is None:  # upstream recomputes them from means / stds in float32
            params = [{'mean': np.float32(m).tolist(), 'std': np.float32(s).tolist()}
                      for m, s in zip(config.get('means', ()), config.get('stds', ()))]
        if isinstance(params, dict):
            params = [params]
        if len(params) != len(sizes):
            raise ValueError(f'expected {len(sizes)} tvf_normalize_params (one per input size), '
                             f'got {len(params)}')
        return cls(params, image_size=int(sizes[0][1]), center_crop=center_crop,
                   jpeg_resize=jpeg_resize)

    @classmethod
    def from_checkpoint(cls, checkpoint_dir, center_crop: bool = True,
                        jpeg_resize: bool = True) -> 'ImagePreprocessor':
        """Read the checkpoint's `preprocessor_config.json`; errors name the file."""
        path = pathlib.Path(checkpoint_dir) / PREPROCESSOR_CONFIG_FILENAME
        config = _read_json(path)
        try:
            return cls.from_config(config, center_crop=center_crop, jpeg_resize=jpeg_resize)
        except ValueError as error:
            raise ValueError(f'{path}: {error}') from None

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """Run steps 1 and 2 on one image: uint8 SxSx3, as upstream hands it to the processor."""
        return self._prepare_tensor(image).numpy()

    def _prepare_tensor(self, image: np.ndarray) -> torch.Tensor:
        size = self.image_size
        if image.shape != (size, size, 3):
            image = resize_for_policy(image, size, jpeg=self.jpeg_resize)
        pixels = _as_tensor(image)
        if self.center_crop is not None:
            pixels = self.center_crop.crop_tensor(pixels)
        return pixels

    def __call__(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        _validate_images(images)
        prepared = torch.stack([self._prepare_tensor(image) for image in images])  # (N, S, S, 3)
        return self.normalize(prepared[None])

    def normalize(self, prepared: torch.Tensor) -> torch.Tensor:
        """Step 3 on prepared uint8 images (B, N, S, S, 3) -> pixel values (B, 3 K N, S, S).

        Training caches `prepare`'s output per frame and normalizes batches with this, so its
        pixel values equal inference's exactly.
        """
        batch, num_images = prepared.shape[:2]
        pixels = prepared.permute(0, 1, 4, 2, 3).float().div(255)  # (B, N, 3, S, S)
        pixels = (pixels[:, :, None] - self._mean[:, None]) / self._std[:, None]  # (B,N,K,3,S,S)
        return pixels.reshape(batch, -1, self.image_size, self.image_size)  # (B, N K 3, S, S)


def _validate_images(images) -> None:
    if isinstance(images, np.ndarray) or not isinstance(images, Sequence) or not images:
        raise ValueError(f'expected a non-empty sequence of images, got {_describe(images)}')
    for index, image in enumerate(images):
        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
                and image.shape[2] == 3 and image.shape[0] > 0 and image.shape[1] > 0):
            raise ValueError(f'image {index}: expected uint8 HxWx3, got {_describe(image)}')


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f'{value.dtype} {value.shape}'
    if isinstance(value, (list, tuple)):
        return f'{type(value).__name__} of length {len(value)}'
    return type(value).__name__


def _three_floats(params, name: str) -> list[float]:
    values = params.get(name) if isinstance(params, dict) else None
    if values is None or len(values) != 3:
        raise ValueError(f'expected tvf_normalize_params entries with 3 {name} values, '
                         f'got {params!r}')
    return [float(v) for v in values]


def _read_json(path: pathlib.Path, missing_ok: bool = False):
    if not path.is_file():
        if missing_ok:
            return None
        raise FileNotFoundError(f'{path}: file not found')
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f'{path}: cannot read JSON: {error}') from None


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    """Share memory with `array` when torch can (C-contiguous and writable), else copy it."""
    if not (array.flags.c_contiguous and array.flags.writeable):
        array = np.array(array, order='C')
    return torch.from_numpy(array)


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array
