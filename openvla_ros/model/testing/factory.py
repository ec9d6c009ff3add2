"""Tiny, seeded OpenVLA-OFT checkpoints in the complete hub layout, for tests and the demo.

    path = write_tiny_checkpoint(directory, variant='l1', seed=0)
    path = tiny_checkpoint('diffusion')          # written once per process into a temp dir
    model = load_openvla(path, **VARIANTS['single_image'].load_kwargs)
    inputs = example_inputs('l1')                 # input_ids, pixel_values, proprio

Every variant writes what a training run of upstream writes (OPENVLA_OFT_REFERENCE.md
section 2): config.json (upstream keys, `text_config` as a diff, `norm_stats` of another
dataset that `dataset_statistics.json` must override, plus `timm_model_kwargs` for tiny ViTs),
generation_config.json, preprocessor_config.json, a real tokenizer.json, merged weights split
into shards with an index, and the component files: `action_head--<step>_checkpoint.pt` in bf16
and the projectors in fp32 with DDP's `module.` prefix, the FiLM
`vision_backbone--<step>_checkpoint.pt` with un-merged LoRA (random non-zero B, rank 32 so
alpha = min(r, 16) matters) and no prefix. No `platform_constants` are recorded, so loading
exercises the shape inference; `TinyVariant.load_kwargs` holds what a variant needs on top.

Sizes: ViTs embed 32 (DINOv2-reg4 structure) and 48 (SigLIP structure), depth 3, 2 heads, at
224 px (256 patches per image); Llama hidden 64, 2 layers, 4 heads, vocab 32064. Output is
deterministic for a seed (fixed creation order under a forked, seeded torch RNG).
"""

import atexit
import dataclasses
import json
import pathlib
import shutil
import tempfile
import threading
from typing import Dict, Optional

import numpy as np
import torch

from openvla_ros.model.checkpoint import (
    generation_config, plain_backbone_state, write_component_file, write_sharded_safetensors)
from openvla_ros.model.config import (
    ActionConfig, LLAMA_DEFAULTS, OpenVLAConfig, text_config_diff)
from openvla_ros.model.film import to_upstream_film_checkpoint
from openvla_ros.model.modeling import OpenVLAForActionPrediction
from openvla_ros.model.testing.tokenizer import write_tiny_llama_tokenizer
from openvla_ros.processing import default_preprocessor_config

TINY_TIMM_MODEL_KWARGS = ({'embed_dim': 32, 'depth': 3, 'num_heads': 2},
                          {'embed_dim': 48, 'depth': 3, 'num_heads': 2})
# initializer_range 0.3 (not 0.02): sharper random attention, so in a 2-layer random model the
# action slots' positions matter (else every slot decodes to the same token).
TINY_LLAMA = {'hidden_size': 64, 'intermediate_size': 128, 'num_hidden_layers': 2,
              'num_attention_heads': 4, 'vocab_size': 32064, 'pad_token_id': 32000,
              'initializer_range': 0.3}
TINY_FILM_LORA_RANK = 32
TINY_STEP = 1000
# Token ids of a short prompt that starts with BOS (any ids work; the tiny vocab is random).
EXAMPLE_PROMPT_IDS = (1, 512, 29901, 1724, 3158, 881, 278, 19964, 2125, 304, 5839, 701,
                      278, 25057, 29973, 13, 3744, 29901)


@dataclasses.dataclass(frozen=True)
class TinyVariant:
    """One tiny checkpoint flavour.

    Args:
        name: Variant name (key of `VARIANTS`).
        platform: Preset whose shapes the variant uses (LIBERO or ALOHA).
        head_type: 'l1', 'diffusion' or 'discrete'.
        num_images: Images per observation.
        use_proprio: Writes a proprio projector.
        uses_film: Writes a FiLM vision_backbone file.
        load_kwargs: Arguments `load_openvla` needs beyond the files.
    """

    name: str
    platform: str
    head_type: str
    num_images: int
    use_proprio: bool
    uses_film: bool = False
    load_kwargs: Dict = dataclasses.field(default_factory=dict)

    @property
    def policy_kwargs(self) -> Dict:
        """`load_kwargs` under the names OpenVLAPolicy.from_pretrained uses."""
        names = {'num_images_in_input': 'num_images'}
        return {names.get(key, key): value for key, value in self.load_kwargs.items()}

    @property
    def unnorm_key(self) -> str:
        return 'aloha_tiny' if self.platform == 'ALOHA' else 'libero_tiny_no_noops'

    def action_config(self) -> ActionConfig:
        return ActionConfig.for_platform(
            self.platform, self.head_type, uses_film=self.uses_film,
            num_images_in_input=self.num_images, use_proprio=self.use_proprio,
            film_lora_rank=TINY_FILM_LORA_RANK if self.uses_film else None)


VARIANTS = {variant.name: variant for variant in (
    TinyVariant('l1', 'LIBERO', 'l1', num_images=2, use_proprio=True),
    TinyVariant('diffusion', 'LIBERO', 'diffusion', num_images=2, use_proprio=True),
    TinyVariant('discrete', 'LIBERO', 'discrete', num_images=2, use_proprio=True),
    TinyVariant('film', 'LIBERO', 'l1', num_images=2, use_proprio=True, uses_film=True),
    TinyVariant('single_image', 'LIBERO', 'l1', num_images=1, use_proprio=False,
                load_kwargs={'platform': 'LIBERO', 'num_images_in_input': 1}),
    TinyVariant('aloha', 'ALOHA', 'l1', num_images=3, use_proprio=True, uses_film=True),
)}
TINY_VARIANTS = tuple(VARIANTS)


def tiny_config() -> OpenVLAConfig:
    """Return the config.json content shared by every tiny variant."""
    llama_values = dict(LLAMA_DEFAULTS, **TINY_LLAMA)
    return OpenVLAConfig(timm_model_kwargs=TINY_TIMM_MODEL_KWARGS,
                         text_config=text_config_diff(llama_values),
                         norm_stats={'bridge_orig': _dataset_stats(7, 7, seed=99,
                                                                   gripper_raw=True)},
                         extra={'transformers_version': '4.40.1'})


def build_tiny_model(variant: str = 'l1', seed: int = 0) -> OpenVLAForActionPrediction:
    """Build the randomly initialised fp32 model a variant's files are written from."""
    spec = _variant(variant)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = OpenVLAForActionPrediction(tiny_config(), spec.action_config())
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if name.endswith('scale_factor'):  # timm's 1e-5 LayerScale init mutes blocks
                    parameter.normal_(1.0, 0.1)
            if spec.head_type == 'discrete':  # make action tokens win the argmax, as trained
                text_vocab = model.config.text_vocab_size
                first_action = text_vocab - model.config.n_action_bins
                lm_head = model.language_model.lm_head.weight
                lm_head[:first_action].mul_(0.1)
                lm_head[text_vocab:].mul_(0.1)
    return model.eval()


def write_tiny_checkpoint(directory, variant: str = 'l1', seed: int = 0) -> pathlib.Path:
    """Write a complete tiny checkpoint directory for `variant`; return its path."""
    spec = _variant(variant)
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = build_tiny_model(variant, seed)
    state = model.state_dict()
    main = {key: value for key, value in state.items()
            if key.startswith(('projector.', 'language_model.'))}
    backbone = {key[len('vision_backbone.'):]: value for key, value in state.items()
                if key.startswith('vision_backbone.')}
    if spec.uses_film:
        generator = torch.Generator().manual_seed(seed + 1)
        film_file = to_upstream_film_checkpoint(backbone, TINY_FILM_LORA_RANK, generator)
        write_component_file(directory / f'vision_backbone--{TINY_STEP}_checkpoint.pt',
                             film_file, prefix='')
        backbone = plain_backbone_state(backbone)  # the un-adapted base ViT
    main.update({'vision_backbone.' + key: value for key, value in backbone.items()})
    total_bytes = sum(value.numel() * value.element_size() for value in main.values())
    write_sharded_safetensors(directory, main, max_shard_bytes=int(total_bytes * 0.6))
    if model.action_head is not None:
        write_component_file(directory / f'action_head--{TINY_STEP}_checkpoint.pt',
                             model.action_head.state_dict(), dtype=torch.bfloat16)
    for module, name in ((model.proprio_projector, 'proprio_projector'),
                         (model.noisy_action_projector, 'noisy_action_projector')):
        if module is not None:
            write_component_file(directory / f'{name}--{TINY_STEP}_checkpoint.pt',
                                 module.state_dict(), dtype=torch.float32)
    config = model.config
    _write_json(directory / 'config.json', config.to_dict())
    _write_json(directory / 'generation_config.json', generation_config(config))
    _write_json(directory / 'preprocessor_config.json',
                default_preprocessor_config(config.image_size, config.use_fused_vision_backbone))
    action_config = spec.action_config()
    stats = _dataset_stats(action_config.action_dim, action_config.proprio_dim, seed,
                           gripper_raw=spec.platform != 'ALOHA')
    _write_json(directory / 'dataset_statistics.json', {spec.unnorm_key: stats})
    write_tiny_llama_tokenizer(directory)
    return directory


def example_inputs(variant: str = 'l1', seed: int = 0) -> dict:
    """Return seeded `predict_action` inputs for `variant`.

    input_ids (1, L), pixel_values (1, 6N, 224, 224), proprio (1, S) in [-1, 1] or None.
    """
    spec = _variant(variant)
    action_config = spec.action_config()
    generator = torch.Generator().manual_seed(seed)
    pixel_values = torch.randn(1, 6 * spec.num_images, 224, 224, generator=generator)
    proprio = None
    if spec.use_proprio:
        proprio = torch.rand(1, action_config.proprio_dim, generator=generator) * 2 - 1
    return {'input_ids': torch.tensor([EXAMPLE_PROMPT_IDS]), 'pixel_values': pixel_values,
            'proprio': proprio}


_CACHE: Dict[str, pathlib.Path] = {}
_CACHE_LOCK = threading.Lock()
_CACHE_ROOT: Optional[pathlib.Path] = None


def tiny_checkpoint(variant: str = 'l1') -> pathlib.Path:
    """Return the path of `variant` (seed 0), written once per process into a temp directory.

    Treat it as read-only: other tests share it. Removed when the process exits.
    """
    global _CACHE_ROOT
    _variant(variant)
    with _CACHE_LOCK:
        if variant not in _CACHE:
            if _CACHE_ROOT is None:
                _CACHE_ROOT = pathlib.Path(tempfile.mkdtemp(prefix='openvla_tiny_'))
                atexit.register(shutil.rmtree, _CACHE_ROOT, True)
            _CACHE[variant] = write_tiny_checkpoint(_CACHE_ROOT / variant, variant)
        return _CACHE[variant]


def _variant(name: str) -> TinyVariant:
    if name not in VARIANTS:
        raise ValueError(f'variant: expected one of {list(VARIANTS)}, got {name!r}')
    return VARIANTS[name]


def _dataset_stats(action_dim: int, proprio_dim: Optional[int], seed: int,
                   gripper_raw: bool) -> dict:
    """Plausible statistics: ordered q01 < min-side ... with distinct values per dimension."""
    rng = np.random.default_rng(seed)

    def array_stats(dim):
        center = rng.uniform(-0.2, 0.2, dim)
        half_range = rng.uniform(0.3, 1.0, dim)
        q01, q99 = center - half_range, center + half_range
        low, high = q01 - rng.uniform(0.01, 0.2, dim), q99 + rng.uniform(0.01, 0.2, dim)
        std = half_range / 2.5
        return {key: np.round(value, 6).tolist() for key, value in (
            ('mean', center), ('std', std), ('max', high), ('min', low), ('q01', q01),
            ('q99', q99))}

    action = array_stats(action_dim)
    if gripper_raw:  # EEF-delta datasets leave the gripper (last dim) un-normalized
        action['mask'] = [True] * (action_dim - 1) + [False]
    else:
        action['mask'] = [True] * action_dim
    stats = {'action': action, 'num_transitions': 1000, 'num_trajectories': 20}
    if proprio_dim is not None:
        stats['proprio'] = array_stats(proprio_dim)
    return stats


def _write_json(path: pathlib.Path, data) -> None:
    path.write_text(json.dumps(data, indent=2) + '\n')
