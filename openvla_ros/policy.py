"""OpenVLAPolicy: numpy in, unnormalized action chunk out. No ROS.

The one object the node, the demo, notebooks and offline evaluation call::

    policy = OpenVLAPolicy.from_pretrained('/path/to/checkpoint', device='cuda')
    chunk = policy.predict([primary_rgb, wrist_rgb], 'pick up the bowl', proprio=state)
    chunk.actions            # (H, A) float64, unnormalized with the checkpoint's statistics
    chunk.normalized_actions # (H, A) float64, the model's output in [-1, 1] space
    chunk.timings            # seconds: preprocess, vision, llm, head, model, total

The node depends only on the `Policy` protocol, so tests can inject a fake policy.
"""

from dataclasses import asdict, dataclass, field
import time
from typing import Any, Optional, Protocol, Sequence

import numpy as np
import torch

from openvla_ros.normalization import (
    normalize_proprio,
    resolve_unnorm_key,
    unnormalize_actions,
)
from openvla_ros.processing import ImagePreprocessor, PromptTokenizer

MAX_INSTRUCTION_CHARS = 1000


class PolicyInputError(ValueError):
    """An observation or instruction the policy cannot run on (the caller's fault)."""


class NonFiniteActionError(RuntimeError):
    """The model produced NaN or inf actions; nothing from this chunk may reach the robot."""


@dataclass(frozen=True)
class PolicySpec:
    """What a loaded policy consumes and produces (all a caller needs to wire it up)."""

    checkpoint_dir: str
    head_type: str              # 'l1' | 'diffusion' | 'discrete'
    chunk_len: int              # H: actions per chunk
    action_dim: int             # A
    proprio_dim: Optional[int]  # S, or None when the policy takes no proprio
    num_images: int             # N: primary camera first, then wrists
    uses_film: bool
    unnorm_key: str
    normalization_type: str     # 'bounds' | 'bounds_q99'
    action_min: tuple           # dataset action minimum per dim (the safe envelope to clip to)
    action_max: tuple
    action_mask: tuple          # dims that were normalized (False: gripper, left raw)
    device: str
    dtype: str
    num_diffusion_steps: Optional[int] = None
    proprio_min: Optional[tuple] = None  # dataset proprio minimum per dim (None: no proprio)
    proprio_max: Optional[tuple] = None
    quantization: str = 'none'  # Llama decoder weights: 'none' | 'int8' | 'int4'
    cuda_graphs: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class ActionChunk:
    """One inference result."""

    actions: np.ndarray             # (H, A) float64, unnormalized
    normalized_actions: np.ndarray  # (H, A) float64
    timings: dict = field(default_factory=dict)  # seconds: preprocess, vision, llm, head,
    #                                               model (= vision + llm + head), total


class Policy(Protocol):
    """What the ROS node needs from a policy (OpenVLAPolicy, or a fake in tests)."""

    spec: PolicySpec

    def predict(self, images: Sequence[np.ndarray], instruction: str,
                proprio: Optional[np.ndarray] = None,
                noise: Optional[np.ndarray] = None) -> ActionChunk:
        ...


def resolve_device(device: str) -> torch.device:
    """Return the torch device for `device` ('cuda', 'cuda:1', 'cpu' or 'auto')."""
    if device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    resolved = torch.device(device)
    if resolved.type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError(
            f"device '{device}' requested but CUDA is not available on this machine; "
            "pass device='cpu' (slow, fine for tiny checkpoints) or device='auto'")
    return resolved


class OpenVLAPolicy:
    """A loaded OpenVLA-OFT checkpoint plus its preprocessing and dataset statistics.

    Not thread-safe: one thread calls `predict` at a time (the node's inference worker).
    """

    def __init__(self, model, tokenizer: PromptTokenizer, preprocessor: ImagePreprocessor,
                 spec: PolicySpec, device: torch.device, predictor=None):
        self._model = model
        self._runner = predictor or model  # a StaticActionPredictor replays CUDA graphs
        self._tokenizer = tokenizer
        self._preprocessor = preprocessor
        self._device = device
        self._stats = model.norm_stats[spec.unnorm_key]
        self.spec = spec

    @classmethod
    def from_pretrained(cls, checkpoint_dir, device: str = 'cuda', dtype=None,
                        unnorm_key: Optional[str] = None, platform: Optional[str] = None,
                        num_images: Optional[int] = None, center_crop: bool = True,
                        use_proprio: Optional[bool] = None,
                        num_diffusion_steps: Optional[int] = None,
                        jpeg_resize: bool = True, warmup: bool = True,
                        compile_llm: bool = False, quantization: str = 'none',
                        cuda_graphs: bool = False,
                        prompt_buckets: Optional[Sequence[int]] = None,
                        ) -> 'OpenVLAPolicy':
        """Load a local checkpoint directory in the Hugging Face hub layout.

        Args:
            checkpoint_dir: directory with config.json, safetensors, tokenizer, statistics and
                the `action_head--*` / `proprio_projector--*` / ... component files.
            device: 'cuda' (default), 'cuda:N', 'cpu' or 'auto'.
            dtype: torch dtype; None picks bf16 on CUDA and fp32 on CPU.
            unnorm_key: dataset in dataset_statistics.json; None requires exactly one.
            platform: 'libero' | 'aloha' | 'bridge' | None (inferred from the checkpoint).
            num_images: camera images per observation; None uses the platform's default.
            center_crop: the 0.9-area center crop every released checkpoint was trained with.
            use_proprio: feed proprio; None means "if the checkpoint has a proprio projector".
            num_diffusion_steps: DDIM inference steps (diffusion heads only).
            jpeg_resize: the JPEG round trip + Lanczos resize upstream applies to images that are
                not 224x224 already; False resizes without the JPEG step.
            warmup: run one dummy prediction so the first real call is not slow.
            compile_llm: `torch.compile` the Llama decoder (dynamic shapes, compiled during the
                warm-up). Off by default until measured on a GPU; on a 2-core CPU it costs
                ~50 s once and gives the eager numbers to ~1e-6.
            quantization: Llama decoder weights 'none', 'int8' (CPU and CUDA) or 'int4' (CUDA,
                bf16), with torchao; vision backbone, projectors and heads keep `dtype`. The
                model is loaded on the CPU and quantized layer by layer onto the device.
            cuda_graphs: pad prompts to `prompt_buckets`, capture each bucket's forward as CUDA
                graphs during `warmup` and replay them per chunk (CUDA only; longer prompts run
                eagerly). See `model.static_inference`.
            prompt_buckets: prompt lengths in tokens (after BOS, with 29871) to pad to; None:
                `static_inference.DEFAULT_PROMPT_BUCKETS` (32, 64, 128, 256).
        """
        # the heavy part: timm, transformers
        from openvla_ros.model.checkpoint import default_dtype, load_openvla
        from openvla_ros.model.quantization import check_quantization, quantize_language_model
        from openvla_ros.model.static_inference import (
            DEFAULT_PROMPT_BUCKETS, StaticActionPredictor)

        torch_device = resolve_device(device)
        dtype = dtype or default_dtype(torch_device)
        check_quantization(quantization, torch_device, dtype)
        if cuda_graphs and torch_device.type != 'cuda':
            raise ValueError(f"cuda_graphs: needs a CUDA device, got '{device}' (CUDA graphs do "
                             'not exist on the CPU; use cuda_graphs=False)')
        load_device = torch_device if quantization == 'none' else torch.device('cpu')
        model = load_openvla(checkpoint_dir, platform=platform, device=load_device,
                             dtype=dtype, num_images_in_input=num_images,
                             use_proprio=use_proprio, num_diffusion_steps=num_diffusion_steps)
        if quantization != 'none':
            quantize_language_model(model, quantization, torch_device)
        if compile_llm:
            model.language_model.model.compile(dynamic=True)  # in place: state-dict keys kept
        predictor = None
        if cuda_graphs:
            predictor = StaticActionPredictor(model, prompt_buckets or DEFAULT_PROMPT_BUCKETS,
                                              cuda_graphs=True)
            predictor.warmup()  # captures every bucket's graphs
        key = resolve_unnorm_key(model.norm_stats, unnorm_key)
        stats = model.norm_stats[key]
        cfg = model.action_config
        if cfg.use_proprio and stats.proprio is None:
            raise PolicyInputError(
                f"{checkpoint_dir}/dataset_statistics.json has no 'proprio' statistics for "
                f"'{key}' but the checkpoint uses proprio; add them or pass use_proprio=False")
        spec = PolicySpec(
            checkpoint_dir=str(checkpoint_dir),
            head_type=cfg.head_type,
            chunk_len=cfg.chunk_len,
            action_dim=cfg.action_dim,
            proprio_dim=cfg.proprio_dim if cfg.use_proprio else None,
            num_images=cfg.num_images_in_input,
            uses_film=cfg.uses_film,
            unnorm_key=key,
            normalization_type=cfg.normalization_type.value,
            action_min=tuple(float(v) for v in stats.action.min),
            action_max=tuple(float(v) for v in stats.action.max),
            action_mask=tuple(bool(v) for v in stats.action.effective_mask),
            device=str(torch_device),
            dtype=str(model.dtype).replace('torch.', ''),
            num_diffusion_steps=model.num_diffusion_steps,  # None unless diffusion
            proprio_min=_floats(stats.proprio.min) if cfg.use_proprio else None,
            proprio_max=_floats(stats.proprio.max) if cfg.use_proprio else None,
            quantization=quantization,
            cuda_graphs=cuda_graphs,
        )
        policy = cls(
            model,
            PromptTokenizer.from_checkpoint(checkpoint_dir),
            ImagePreprocessor.from_checkpoint(checkpoint_dir, center_crop=center_crop,
                                              jpeg_resize=jpeg_resize),
            spec, torch_device, predictor)
        if warmup:
            policy.warmup()
        return policy

    def warmup(self) -> None:
        """Run one prediction on blank inputs (allocator, kernels, caches)."""
        blank = [np.zeros((224, 224, 3), np.uint8)] * self.spec.num_images
        proprio = None
        if self.spec.proprio_dim is not None:
            proprio = 0.5 * (self._stats.proprio.min + self._stats.proprio.max)
        self.predict(blank, 'warm up', proprio=proprio)

    def predict(self, images: Sequence[np.ndarray], instruction: str,
                proprio: Optional[np.ndarray] = None,
                noise: Optional[np.ndarray] = None) -> ActionChunk:
        """Predict one action chunk.

        Args:
            images: uint8 HxWx3 RGB arrays in camera order (primary first, then wrists).
            instruction: the task in natural language, e.g. 'pick up the black bowl'.
            proprio: raw (unnormalized) state vector of length spec.proprio_dim.
            noise: optional initial diffusion noise of shape (H, A) (diffusion heads only).

        Raises:
            PolicyInputError: invalid images, instruction, proprio or noise.
            NonFiniteActionError: the model produced NaN/inf.
        """
        t_start = time.perf_counter()
        self._check_inputs(images, instruction, proprio, noise)
        try:
            pixel_values = self._preprocessor(images)  # (1, 6N, 224, 224) float32
        except ValueError as exc:
            raise PolicyInputError(str(exc)) from exc
        input_ids = torch.tensor([self._tokenizer.encode(instruction)], dtype=torch.long)
        proprio_tensor = None
        if self.spec.proprio_dim is not None:
            normalized = normalize_proprio(proprio, self._stats.proprio,
                                           self.spec.normalization_type)
            proprio_tensor = torch.from_numpy(normalized).float().unsqueeze(0)  # (1, S)
        noise_tensor = None
        if noise is not None:
            noise_tensor = torch.from_numpy(np.asarray(noise, np.float32)).unsqueeze(0)
        pixel_values, input_ids, proprio_tensor, noise_tensor = (
            self._to_device(t) for t in (pixel_values, input_ids, proprio_tensor, noise_tensor))
        t_model = time.perf_counter()

        out = self._runner.predict_action(input_ids=input_ids, pixel_values=pixel_values,
                                          proprio=proprio_tensor, noise=noise_tensor)
        # float32 (L1, diffusion) or float64 (discrete bins), exactly what upstream unnormalizes
        normalized = out.normalized_actions.cpu().numpy()
        t_end = time.perf_counter()

        if not np.all(np.isfinite(normalized)):
            raise NonFiniteActionError(
                f'the model produced non-finite actions for {instruction!r}; chunk dropped')
        actions = unnormalize_actions(normalized, self._stats.action,
                                      self.spec.normalization_type)
        normalized_actions = normalized.astype(np.float64)
        timings = {'preprocess': t_model - t_start, **out.timings, 'model': t_end - t_model,
                   'total': time.perf_counter() - t_start}
        return ActionChunk(actions=actions, normalized_actions=normalized_actions,
                           timings=timings)

    def _to_device(self, tensor: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        if tensor is None:
            return None
        if self._device.type == 'cuda':
            return tensor.pin_memory().to(self._device, non_blocking=True)
        return tensor.to(self._device)

    def _check_inputs(self, images, instruction, proprio, noise) -> None:
        spec = self.spec
        if not isinstance(images, (list, tuple)):
            raise PolicyInputError(
                f'images: expected a list of {spec.num_images} uint8 HxWx3 arrays, '
                f'got {type(images).__name__}')
        if len(images) != spec.num_images:
            raise PolicyInputError(
                f'expected {spec.num_images} image(s) (primary camera first, then wrists), '
                f'got {len(images)}')
        if not isinstance(instruction, str) or not instruction.strip():
            raise PolicyInputError('instruction: expected a non-empty string, got '
                                   f'{instruction!r}')
        if len(instruction) > MAX_INSTRUCTION_CHARS:
            raise PolicyInputError(f'instruction: expected at most {MAX_INSTRUCTION_CHARS} '
                                   f'characters, got {len(instruction)}')
        if spec.proprio_dim is None:
            if proprio is not None:
                raise PolicyInputError('proprio given but this policy takes no proprio '
                                       '(the checkpoint has no proprio projector, or '
                                       'use_proprio=False)')
        else:
            _check_vector('proprio', proprio, (spec.proprio_dim,))
        if noise is not None:
            if spec.head_type != 'diffusion':
                raise PolicyInputError(f'noise is only used by diffusion heads, this policy '
                                       f'has a {spec.head_type} head')
            _check_vector('noise', noise, (spec.chunk_len, spec.action_dim))


def _check_vector(name: str, value: Any, shape: tuple) -> None:
    if value is None:
        raise PolicyInputError(f'{name}: expected an array of shape {shape}, got None')
    array = np.asarray(value)
    if array.shape != shape or not np.issubdtype(array.dtype, np.number):
        raise PolicyInputError(
            f'{name}: expected a numeric array of shape {shape}, got {array.dtype} {array.shape}')
    if not np.all(np.isfinite(array)):
        raise PolicyInputError(f'{name}: expected finite values, got {array.tolist()}')


def _floats(values) -> tuple:
    return tuple(float(v) for v in values)
