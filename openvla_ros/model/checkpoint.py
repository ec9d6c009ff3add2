"""Load and save OpenVLA-OFT checkpoint directories in the Hugging Face hub layout.

    model = load_openvla(checkpoint_dir, platform=None, device='cpu', dtype=None,
                         num_images_in_input=None, use_proprio=None, num_diffusion_steps=None,
                         attn_implementation='sdpa', **constant_overrides)
    save_openvla(model, directory, step=0, copy_from=checkpoint_dir)

Layout (OPENVLA_OFT_REFERENCE.md section 2): `config.json`; merged weights in
`model.safetensors` or `model-0000K-of-0000N.safetensors` + `model.safetensors.index.json`
(`vision_backbone.*`, `projector.*`, `language_model.*`); component files found as upstream
does (exactly one file whose name contains the pattern and 'checkpoint'):
`action_head--*` (L1: `model.*`, diffusion: `noise_predictor.*`), `proprio_projector--*`,
`noisy_action_projector--*` (diffusion) and `vision_backbone--*` (FiLM: the fine-tuned ViT with
unmerged LoRA; it replaces the safetensors ViT, which upstream leaves un-adapted). Component
keys may carry DDP's `module.` prefix and may be bf16 or fp32; they are read with
`torch.load(weights_only=True)` only. `dataset_statistics.json` replaces config.json's
`norm_stats`. Nothing in the directory is executed (no `trust_remote_code`).

Head type: `action_head--*` with `model.*` keys -> 'l1'; with `noise_predictor.*` (plus a
noisy-action projector file) -> 'diffusion'; no action head -> 'discrete' (LM-head tokens).
Constants (chunk length, dims, normalization) come from `config.resolve_action_config`.

Loading builds the model on the meta device and assigns the stored tensors (cast to `dtype`:
default bf16 on CUDA, fp32 on CPU) without a random init or a second copy. Every key set is
checked strictly per file; errors (`CheckpointError`) list missing / unexpected keys and shape
mismatches and name the file and the fix.
"""

import contextlib
import json
import pathlib
import re
import shutil
from typing import Dict, Mapping, Optional

from safetensors import safe_open, SafetensorError
from safetensors.torch import save_file
import torch

from openvla_ros.model.config import (
    ActionConfig, CheckpointFacts, ConfigError, OpenVLAConfig, resolve_action_config)
from openvla_ros.model.film import convert_film_checkpoint, lora_rank_of, \
    to_upstream_film_checkpoint
from openvla_ros.model.modeling import OpenVLAForActionPrediction
from openvla_ros.model.vision import PrismaticVisionBackbone
from openvla_ros.normalization import (
    DatasetStats, load_dataset_statistics, NormalizationError, STATISTICS_FILENAME)

CONFIG_FILENAME = 'config.json'
GENERATION_CONFIG_FILENAME = 'generation_config.json'
SAFETENSORS_FILENAME = 'model.safetensors'
SAFETENSORS_INDEX_FILENAME = 'model.safetensors.index.json'
# Files `save_openvla(copy_from=...)` carries over unchanged (tokenizer and image processor).
AUXILIARY_FILENAMES = ('tokenizer.json', 'tokenizer.model', 'tokenizer_config.json',
                       'special_tokens_map.json', 'added_tokens.json',
                       'preprocessor_config.json')

ACTION_HEAD = 'action_head'
PROPRIO_PROJECTOR = 'proprio_projector'
NOISY_ACTION_PROJECTOR = 'noisy_action_projector'
VISION_BACKBONE = 'vision_backbone'
COMPONENT_PATTERNS = (ACTION_HEAD, PROPRIO_PROJECTOR, NOISY_ACTION_PROJECTOR, VISION_BACKBONE)
DDP_PREFIX = 'module.'
MAIN_PREFIXES = ('vision_backbone.', 'projector.', 'language_model.')
DEFAULT_FILM_LORA_RANK = 32
DEFAULT_MAX_SHARD_BYTES = 5 * 10**9  # HF's default "5GB"
# Stored by some transformers versions but recomputed at build time.
_IGNORED_KEY = re.compile(r'rotary_emb\.inv_freq$')
_MAX_LISTED_KEYS = 8


class CheckpointError(ConfigError):
    """A checkpoint directory that cannot be loaded as asked; the message names file and fix."""


# ------------------------------------------------------------------------------------ reading

def find_component_file(directory, pattern: str) -> Optional[pathlib.Path]:
    """Find the one file whose name contains `pattern` and 'checkpoint' (None: no such file)."""
    directory = pathlib.Path(directory)
    matches = sorted(path for path in directory.iterdir()
                     if path.is_file() and pattern in path.name and 'checkpoint' in path.name)
    if len(matches) > 1:
        names = [path.name for path in matches]
        raise CheckpointError(f'{directory}: expected one {pattern} checkpoint file, got '
                              f'{len(matches)}: {names}. Fix: keep only the one to deploy.')
    return matches[0] if matches else None


def load_component_state_dict(path) -> Dict[str, torch.Tensor]:
    """Read a component `.pt` (weights only), stripping DDP's `module.` prefix from keys."""
    path = pathlib.Path(path)
    try:
        loaded = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # torch raises many types for unreadable files
        raise CheckpointError(f'{path}: cannot read as a weights-only torch file: '
                              f'{type(error).__name__}: {error}') from None
    if not isinstance(loaded, Mapping) or not all(
            isinstance(key, str) and isinstance(value, torch.Tensor)
            for key, value in loaded.items()):
        raise CheckpointError(f'{path}: expected a state dict {{name: tensor}}, got '
                              f'{type(loaded).__name__}')
    return {key[len(DDP_PREFIX):] if key.startswith(DDP_PREFIX) else key: value
            for key, value in loaded.items()}


@contextlib.contextmanager
def open_safetensors(path):
    """`safe_open` a weights file; a damaged one is a CheckpointError naming it and the fix."""
    try:
        handle = safe_open(str(path), framework='pt')
    except (SafetensorError, OSError) as error:
        size = path.stat().st_size if path.is_file() else 0
        raise CheckpointError(f'{path}: not a readable safetensors file ({size} bytes: {error}). '
                              'It is probably truncated or corrupt (an interrupted download or '
                              'copy). Fix: download this file again.') from None
    with handle:
        yield handle


def safetensors_files(directory) -> Dict[str, pathlib.Path]:
    """{key: shard path} of the merged weights (sharded with an index, or one file)."""
    directory = pathlib.Path(directory)
    index_path = directory / SAFETENSORS_INDEX_FILENAME
    if index_path.is_file():
        try:
            weight_map = json.loads(index_path.read_text())['weight_map']
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise CheckpointError(f'{index_path}: expected JSON with a "weight_map" object: '
                                  f'{error}') from None
        shards = {name: directory / name for name in sorted(set(weight_map.values()))}
        for name, path in shards.items():
            if not path.is_file():
                raise CheckpointError(f'{index_path}: lists shard {name}, which is missing. '
                                      'Fix: download every model-*.safetensors file.')
        located = {}
        for name, path in shards.items():
            with open_safetensors(path) as handle:
                keys = set(handle.keys())
            claimed = {key for key, shard in weight_map.items() if shard == name}
            if claimed - keys:
                raise CheckpointError(f'{path}: the index places {_listed(claimed - keys)} '
                                      'here, but the shard does not hold them')
            located.update({key: path for key in keys})
        return located
    single = directory / SAFETENSORS_FILENAME
    if single.is_file():
        with open_safetensors(single) as handle:
            return {key: single for key in handle.keys()}
    raise CheckpointError(f'{directory}: expected merged weights ({SAFETENSORS_INDEX_FILENAME} '
                          f'+ shards, or {SAFETENSORS_FILENAME}), found neither')


def read_checkpoint_facts(directory, config: OpenVLAConfig) -> CheckpointFacts:
    """Head type and the dims the component files' shapes imply (see `CheckpointFacts`)."""
    directory = pathlib.Path(directory)
    files = {pattern: find_component_file(directory, pattern) for pattern in COMPONENT_PATTERNS}
    components = {pattern: load_component_state_dict(path)
                  for pattern, path in files.items() if path is not None}
    return _facts_from_components(directory, config, files, components)


def _facts_from_components(directory, config, files, components) -> CheckpointFacts:
    llm_dim = config.llm_dim
    head = components.get(ACTION_HEAD)
    action_dim, action_source = None, ''
    noisy = files[NOISY_ACTION_PROJECTOR]
    if head is None:
        head_type = 'discrete'
        if noisy is not None:
            raise CheckpointError(f'{noisy}: a noisy-action projector without an action_head '
                                  'file. Fix: add the diffusion action_head--*checkpoint* file.')
    else:
        head_path = files[ACTION_HEAD]
        if any(key.startswith('model.') for key in head):
            head_type, prefix = 'l1', 'model.'
        elif any(key.startswith('noise_predictor.') for key in head):
            head_type, prefix = 'diffusion', 'noise_predictor.mlp_resnet.'
        else:
            raise CheckpointError(f'{head_path}: expected L1 (model.*) or diffusion '
                                  f'(noise_predictor.*) head keys, got {_listed(head)}')
        fc1, fc2 = head.get(prefix + 'fc1.weight'), head.get(prefix + 'fc2.weight')
        if fc1 is None or fc2 is None or fc1.dim() != 2 or fc2.dim() != 2:
            raise CheckpointError(f'{head_path}: expected 2-D {prefix}fc1.weight and '
                                  f'{prefix}fc2.weight, got keys {_listed(head)}')
        action_dim = int(fc2.shape[0])
        action_source = f'{head_path.name} ({prefix}fc2.weight {list(fc2.shape)})'
        if int(fc1.shape[1]) != action_dim * llm_dim:
            raise CheckpointError(
                f'{head_path}: {prefix}fc1.weight takes {int(fc1.shape[1])} inputs, but a head '
                f'for {action_dim}-dim actions on a {llm_dim}-wide LLM takes '
                f'{action_dim * llm_dim} (action_dim x hidden size). The head does not belong '
                'to this model (or config.json text_config is wrong).')
        if head_type == 'diffusion' and noisy is None:
            raise CheckpointError(f'{head_path}: a diffusion head needs a noisy_action_projector'
                                  f'--*checkpoint* file in {directory}, found none')
        if head_type == 'l1' and noisy is not None:
            raise CheckpointError(f'{noisy}: a noisy-action projector next to an L1 head. Fix: '
                                  'remove files from other training runs.')
    proprio_dim, proprio_source = None, ''
    proprio = components.get(PROPRIO_PROJECTOR)
    if proprio is not None:
        weight = proprio.get('fc1.weight')
        if weight is None or weight.dim() != 2:
            raise CheckpointError(f'{files[PROPRIO_PROJECTOR]}: expected a 2-D fc1.weight, got '
                                  f'keys {_listed(proprio)}')
        proprio_dim = int(weight.shape[1])
        proprio_source = f'{files[PROPRIO_PROJECTOR].name} (fc1.weight {list(weight.shape)})'
    film = components.get(VISION_BACKBONE)
    film_rank = None
    if film is not None:
        try:
            film_rank = lora_rank_of(film)
        except ValueError as error:
            raise CheckpointError(f'{files[VISION_BACKBONE]}: {error}') from None
    return CheckpointFacts(
        head_type=head_type, action_dim=action_dim, action_dim_source=action_source,
        proprio_dim=proprio_dim, proprio_dim_source=proprio_source, uses_film=film is not None,
        film_lora_rank=film_rank, recorded=config.platform_constants,
        recorded_source=str(directory / CONFIG_FILENAME))


def load_norm_stats(directory, config: OpenVLAConfig) -> Dict[str, DatasetStats]:
    """`dataset_statistics.json` when present (upstream replaces config.json's norm_stats)."""
    directory = pathlib.Path(directory)
    try:
        if (directory / STATISTICS_FILENAME).is_file():
            return load_dataset_statistics(directory / STATISTICS_FILENAME)
        return {key: DatasetStats.from_dict(value)
                for key, value in (config.norm_stats or {}).items()}
    except NormalizationError as error:
        raise CheckpointError(f'{directory}: {error}') from None


# ------------------------------------------------------------------------------------ loading

def default_dtype(device) -> torch.dtype:
    """bf16 on CUDA (as upstream), fp32 elsewhere."""
    return torch.bfloat16 if torch.device(device).type == 'cuda' else torch.float32


def load_openvla(checkpoint_dir, platform: Optional[str] = None, device='cpu',
                 dtype: Optional[torch.dtype] = None,
                 num_images_in_input: Optional[int] = None,
                 use_proprio: Optional[bool] = None,
                 num_diffusion_steps: Optional[int] = None,
                 attn_implementation: str = 'sdpa',
                 **constant_overrides) -> OpenVLAForActionPrediction:
    """Load a checkpoint directory into an eval-mode `OpenVLAForActionPrediction`.

    Args:
        checkpoint_dir: Local directory in the hub layout (module docstring).
        platform: 'LIBERO' | 'ALOHA' | 'BRIDGE' | None (inferred from the shapes if unique).
        device: Where the weights go.
        dtype: Weight dtype; None: bf16 on CUDA, fp32 elsewhere.
        num_images_in_input: Images per observation; None: recorded or the preset's.
        use_proprio: None: iff a proprio projector file exists.
        num_diffusion_steps: DDIM sampling steps (diffusion heads); None: 50.
        attn_implementation: 'sdpa' (default) or 'eager'.
        **constant_overrides: chunk_len, action_dim, proprio_dim, normalization_type,
            num_diffusion_steps_train.
    """
    directory = pathlib.Path(checkpoint_dir)
    if not directory.is_dir():
        raise CheckpointError(f'{directory}: expected a checkpoint directory, got '
                              f'{"a file" if directory.exists() else "nothing"}')
    device = torch.device(device)
    dtype = dtype or default_dtype(device)
    try:
        config = OpenVLAConfig.from_json_file(directory / CONFIG_FILENAME)
    except ConfigError as error:
        raise CheckpointError(str(error)) from None
    files = {pattern: find_component_file(directory, pattern) for pattern in COMPONENT_PATTERNS}
    components = {pattern: load_component_state_dict(path)
                  for pattern, path in files.items() if path is not None}
    facts = _facts_from_components(directory, config, files, components)
    try:
        action_config = resolve_action_config(
            facts, platform=platform, num_images_in_input=num_images_in_input,
            use_proprio=use_proprio, num_diffusion_steps=num_diffusion_steps,
            **constant_overrides)
    except ConfigError as error:
        raise CheckpointError(f'{directory}: {error}') from None
    norm_stats = load_norm_stats(directory, config)

    with torch.device('meta'):
        model = OpenVLAForActionPrediction(config, action_config, attn_implementation)
        plain_backbone = None
        if action_config.uses_film:  # the key set the safetensors ViT must have
            plain_backbone = _plain_backbone(config, action_config)
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    main_expected = {key: shape for key, shape in expected.items()
                     if key.startswith(MAIN_PREFIXES)}
    if plain_backbone is not None:
        main_expected = {key: shape for key, shape in main_expected.items()
                         if not key.startswith('vision_backbone.')}
        main_expected.update({'vision_backbone.' + key: tuple(value.shape)
                              for key, value in plain_backbone.state_dict().items()})

    state = _read_main_weights(directory, main_expected, device, dtype)
    if plain_backbone is not None:
        state = {key: value for key, value in state.items()
                 if not key.startswith('vision_backbone.')}
        film_path = files[VISION_BACKBONE]
        try:
            converted = convert_film_checkpoint(components[VISION_BACKBONE])
        except ValueError as error:
            raise CheckpointError(f'{film_path}: {error}') from None
        state.update(_checked_component(film_path, 'vision_backbone.', converted, expected,
                                        device, dtype))
    used = {ACTION_HEAD: 'action_head.', NOISY_ACTION_PROJECTOR: 'noisy_action_projector.'}
    if action_config.use_proprio:
        used[PROPRIO_PROJECTOR] = 'proprio_projector.'
    for pattern, prefix in used.items():
        if pattern in components:
            state.update(_checked_component(files[pattern], prefix, components[pattern],
                                            expected, device, dtype))
    missing = sorted(set(expected) - set(state))
    if missing:  # a component the configuration needs but whose file is absent
        raise CheckpointError(f'{directory}: missing weights {_listed(missing)}')
    model.load_state_dict(state, strict=True, assign=True)
    model.reset_runtime_state(device)
    left_on_meta = [name for name, tensor in (*model.named_parameters(), *model.named_buffers())
                    if tensor.is_meta]
    if left_on_meta:
        raise CheckpointError(f'{directory}: tensors left unloaded: {_listed(left_on_meta)}')
    model.norm_stats = norm_stats
    return model.eval()


def _plain_backbone(config: OpenVLAConfig, action_config: ActionConfig):
    return PrismaticVisionBackbone(config.timm_model_ids, config.image_size,
                                   config.timm_override_act_layers, config.timm_model_kwargs,
                                   action_config.num_images_in_input)


def _read_main_weights(directory, expected, device, dtype) -> Dict[str, torch.Tensor]:
    located = {key: path for key, path in safetensors_files(directory).items()
               if not _IGNORED_KEY.search(key)}
    stored_shapes = {}
    for path in sorted(set(located.values())):
        with open_safetensors(path) as handle:
            for key in handle.keys():
                if key in located:
                    stored_shapes[key] = tuple(handle.get_slice(key).get_shape())
    problems = _key_problems(expected, stored_shapes, located)
    if problems:
        raise CheckpointError(f'{directory}: the merged safetensors weights do not match the '
                              f'model built from config.json: {problems}. Fix: check '
                              'config.json (text_config, timm_model_ids) against the weights.')
    state = {}
    for path in sorted(set(located.values())):
        with open_safetensors(path) as handle:
            for key in handle.keys():
                if key in located:
                    state[key] = handle.get_tensor(key).to(device=device, dtype=dtype)
    return state


def _checked_component(path, prefix, component, expected, device, dtype):
    component_expected = {key[len(prefix):]: shape for key, shape in expected.items()
                          if key.startswith(prefix)}
    shapes = {key: tuple(value.shape) for key, value in component.items()}
    problems = _key_problems(component_expected, shapes)
    if problems:
        raise CheckpointError(f'{path}: strict load failed: {problems}. Fix: check that the file '
                              'belongs to this checkpoint and the platform constants.')
    return {prefix + key: value.to(device=device, dtype=dtype)
            for key, value in component.items()}


def _key_problems(expected, actual, located=None) -> str:
    """Describe how key sets and shapes differ ('' when they agree)."""
    missing = sorted(set(expected) - set(actual))
    unexpected = sorted(set(actual) - set(expected))
    mismatched = sorted(key for key in set(expected) & set(actual)
                        if tuple(expected[key]) != tuple(actual[key]))
    parts = []
    if missing:
        parts.append(f'missing keys {_listed(missing)}')
    if unexpected:
        where = ''
        if located:
            where = ' in ' + ', '.join(sorted({located[key].name for key in unexpected}))
        parts.append(f'unexpected keys{where} {_listed(unexpected)}')
    if mismatched:
        details = [f'{key}: expected {list(expected[key])}, got {list(actual[key])}'
                   + (f' ({located[key].name})' if located else '')
                   for key in mismatched[:_MAX_LISTED_KEYS]]
        more = len(mismatched) - len(details)
        parts.append('shape mismatches ' + '; '.join(details)
                     + (f'; and {more} more' if more > 0 else ''))
    return '; '.join(parts)


def _listed(keys) -> str:
    keys = sorted(keys)
    shown = ', '.join(keys[:_MAX_LISTED_KEYS])
    more = len(keys) - _MAX_LISTED_KEYS
    return f'({len(keys)}) [{shown}' + (f', ... {more} more]' if more > 0 else ']')


# ------------------------------------------------------------------------------------- saving

def write_sharded_safetensors(directory, state_dict: Mapping[str, torch.Tensor],
                              max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES) -> list:
    """Write `model.safetensors`, or shards + index when larger than `max_shard_bytes`."""
    directory = pathlib.Path(directory)
    shards, current, current_bytes = [], {}, 0
    for key in sorted(state_dict):
        tensor = state_dict[key].detach()
        size = tensor.numel() * tensor.element_size()
        if current and current_bytes + size > max_shard_bytes:
            shards.append(current)
            current, current_bytes = {}, 0
        current[key] = tensor
        current_bytes += size
    shards.append(current)
    if len(shards) == 1:
        names = [SAFETENSORS_FILENAME]
    else:
        names = [f'model-{i + 1:05d}-of-{len(shards):05d}.safetensors' for i in range(len(shards))]
    weight_map, total = {}, 0
    for name, shard in zip(names, shards):
        tensors = {key: value.to('cpu').contiguous() for key, value in shard.items()}
        save_file(tensors, str(directory / name), metadata={'format': 'pt'})
        for key, value in tensors.items():
            weight_map[key] = name
            total += value.numel() * value.element_size()
    if len(shards) > 1:
        index = {'metadata': {'total_size': total}, 'weight_map': weight_map}
        _write_json(directory / SAFETENSORS_INDEX_FILENAME, index)
    return [directory / name for name in names]


def write_component_file(path, state_dict: Mapping[str, torch.Tensor], prefix: str = DDP_PREFIX,
                         dtype: Optional[torch.dtype] = None) -> None:
    """torch.save a component state dict as upstream does (keys with DDP's `module.`)."""
    torch.save({prefix + key: (value.detach().to('cpu', dtype=dtype or value.dtype)).clone()
                for key, value in state_dict.items()}, str(path))


def plain_backbone_state(film_state: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Strip FiLM from backbone weights: `blocks.i.block.X` -> `blocks.i.X`, no scale/shift.

    Stands in for the un-adapted base ViT upstream keeps in the safetensors (never used when
    the FiLM file is present).
    """
    plain = {}
    for key, value in film_state.items():
        if re.search(r'\.blocks\.\d+\.(scale|shift)\.', key):
            continue
        plain[re.sub(r'(\.blocks\.\d+)\.block\.', r'\1.', key)] = value
    return plain


def save_openvla(model: OpenVLAForActionPrediction, directory, step: int = 0,
                 copy_from=None, max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
                 component_prefix: str = DDP_PREFIX) -> pathlib.Path:
    """Write `model` in the layout `load_openvla` reads (tensors in the model's dtype).

    config.json also records `platform_constants` (the model's `ActionConfig`), so the saved
    directory reloads with no arguments. A FiLM ViT is stored as upstream does: fine-tuned
    weights in `vision_backbone--<step>_checkpoint.pt` with LoRA adapters whose B is zero
    (merging reproduces the weights exactly). `copy_from` copies the tokenizer and
    preprocessor files of another checkpoint directory.
    """
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    action_config = model.action_config
    state = model.state_dict()
    main = {key: value for key, value in state.items() if key.startswith(MAIN_PREFIXES)}
    if action_config.uses_film:
        film_state = {key[len('vision_backbone.'):]: value for key, value in state.items()
                      if key.startswith('vision_backbone.')}
        main = {key: value for key, value in main.items()
                if not key.startswith('vision_backbone.')}
        main.update({'vision_backbone.' + key: value
                     for key, value in plain_backbone_state(film_state).items()})
        rank = action_config.film_lora_rank or DEFAULT_FILM_LORA_RANK
        # B = 0 (PEFT's own init) makes the merge exact; a local generator spares the global RNG.
        upstream = to_upstream_film_checkpoint(film_state, rank, torch.Generator().manual_seed(0))
        upstream = {key: (torch.zeros_like(value) if '.lora_B.' in key else value)
                    for key, value in upstream.items()}
        write_component_file(directory / f'vision_backbone--{step}_checkpoint.pt', upstream,
                             prefix='')
    write_sharded_safetensors(directory, main, max_shard_bytes)
    for module, name in ((model.action_head, ACTION_HEAD),
                         (model.proprio_projector, PROPRIO_PROJECTOR),
                         (model.noisy_action_projector, NOISY_ACTION_PROJECTOR)):
        if module is not None:
            write_component_file(directory / f'{name}--{step}_checkpoint.pt',
                                 module.state_dict(), prefix=component_prefix)
    config_data = model.config.to_dict()
    config_data['platform_constants'] = action_config.to_record()
    config_data['torch_dtype'] = str(model.dtype).replace('torch.', '')
    _write_json(directory / CONFIG_FILENAME, config_data)
    _write_json(directory / GENERATION_CONFIG_FILENAME, generation_config(model.config))
    if model.norm_stats:
        _write_json(directory / STATISTICS_FILENAME,
                    {key: stats.to_dict() for key, stats in model.norm_stats.items()})
    if copy_from is not None:
        for name in AUXILIARY_FILENAMES:
            source = pathlib.Path(copy_from) / name
            if source.is_file():
                shutil.copyfile(source, directory / name)
    return directory


def generation_config(config: OpenVLAConfig) -> dict:
    """generation_config.json as upstream ships it (bos 1, eos 2, pad 32000)."""
    return {'_from_model_config': True, 'bos_token_id': 1, 'eos_token_id': 2,
            'pad_token_id': config.pad_token_id, 'transformers_version': '4.40.1'}


def _write_json(path, data) -> None:
    pathlib.Path(path).write_text(json.dumps(data, indent=2) + '\n')
