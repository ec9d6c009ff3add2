"""Configuration of an OpenVLA-OFT checkpoint: `config.json` and the platform constants.

Public API:

* `OpenVLAConfig` - `config.json` as upstream writes it (`OpenVLAConfig.from_dict`,
  `from_json_file`, `to_dict`); `llama_config()` builds the `LlamaConfig` from `text_config`, a
  diff against the LlamaConfig defaults of transformers 4.40.1 (`LLAMA_DEFAULTS`, e.g.
  rms_norm_eps 1e-6), never against whatever the installed transformers defaults to.
  Optional `timm_model_kwargs` (one dict per `timm_model_ids` entry) builds tiny ViTs for tests;
  optional `platform_constants` (an openvla_ros extension written by `save_openvla`) records the
  resolved `ActionConfig` so a saved model reloads without arguments.
* `PLATFORMS` / `PlatformPreset` - LIBERO, ALOHA, BRIDGE (OPENVLA_OFT_REFERENCE.md section 1).
  Upstream picks them by sniffing `sys.argv`; here they are explicit.
* `ActionConfig` - the resolved constants of one loaded model (chunk length, action and proprio
  dims, normalization type, head type, FiLM, images, proprio, diffusion steps).
* `CheckpointFacts` + `resolve_action_config` - merge explicit arguments, recorded constants,
  shapes inferred from the checkpoint and a preset; every conflict raises `ConfigError` that
  names the source and the fix (the openvla-oft#47 failure mode).
"""

import dataclasses
import json
import pathlib
from typing import Any, Mapping, Optional

from transformers import LlamaConfig

from openvla_ros.normalization import NormalizationType

# Token constants of the Llama-2 vocabulary (reference section 1).
IGNORE_INDEX = -100
ACTION_TOKEN_BEGIN_IDX = 31743
STOP_INDEX = 2
BOS_INDEX = 1
# '▁' (empty SentencePiece piece) that ended every training prompt (reference section 5).
EMPTY_PIECE_INDEX = 29871

HEAD_TYPES = ('l1', 'diffusion', 'discrete')
DEFAULT_NUM_DIFFUSION_STEPS = 50

# LlamaConfig() defaults of transformers 4.40.1: upstream's `text_config` is a diff against them.
LLAMA_DEFAULTS = {
    'vocab_size': 32000,
    'hidden_size': 4096,
    'intermediate_size': 11008,
    'num_hidden_layers': 32,
    'num_attention_heads': 32,
    'num_key_value_heads': None,
    'hidden_act': 'silu',
    'max_position_embeddings': 2048,
    'initializer_range': 0.02,
    'rms_norm_eps': 1e-6,
    'use_cache': True,
    'pad_token_id': None,
    'bos_token_id': 1,
    'eos_token_id': 2,
    'pretraining_tp': 1,
    'tie_word_embeddings': False,
    'rope_theta': 10000.0,
    'rope_scaling': None,
    'attention_bias': False,
    'attention_dropout': 0.0,
    'mlp_bias': False,
}
# Bookkeeping keys HF writes into `text_config` that do not describe the network.
_TEXT_CONFIG_METADATA = ('model_type', 'torch_dtype', 'dtype', 'transformers_version',
                         'architectures', '_name_or_path')


class ConfigError(ValueError):
    """An invalid `config.json` or platform constants that contradict each other."""


@dataclasses.dataclass(frozen=True)
class PlatformPreset:
    """Constants upstream hard-codes per robot platform (`prismatic/vla/constants.py`).

    Args:
        name: Preset name (LIBERO, ALOHA, BRIDGE).
        chunk_len: Actions per predicted chunk (upstream NUM_ACTIONS_CHUNK).
        action_dim: Dimensions of one action (ACTION_DIM).
        proprio_dim: Dimensions of the proprio state (PROPRIO_DIM).
        normalization_type: ACTION_PROPRIO_NORMALIZATION_TYPE.
        num_images_in_input: Camera images of the reference setup (LIBERO third-person + wrist,
            ALOHA high + two wrists; BRIDGE one camera). Not upstream constants: deploy flags.
    """

    name: str
    chunk_len: int
    action_dim: int
    proprio_dim: int
    normalization_type: NormalizationType
    num_images_in_input: int


PLATFORMS = {
    'LIBERO': PlatformPreset('LIBERO', 8, 7, 8, NormalizationType.BOUNDS_Q99, 2),
    'ALOHA': PlatformPreset('ALOHA', 25, 14, 14, NormalizationType.BOUNDS, 3),
    'BRIDGE': PlatformPreset('BRIDGE', 5, 7, 7, NormalizationType.BOUNDS_Q99, 1),
}


def platform_preset(name: str) -> PlatformPreset:
    """Look up a preset by name (case-insensitive)."""
    key = str(name).upper()
    if key not in PLATFORMS:
        raise ConfigError(f'platform: expected one of {sorted(PLATFORMS)}, got {name!r}')
    return PLATFORMS[key]


@dataclasses.dataclass(frozen=True)
class ActionConfig:
    """The constants one loaded model runs with.

    Args:
        chunk_len: Actions per chunk H (upstream NUM_ACTIONS_CHUNK).
        action_dim: Dimensions of one action A (ACTION_DIM).
        proprio_dim: Proprio dimensions S (PROPRIO_DIM); None when unknown and unused.
        normalization_type: How actions / proprio were normalized (bounds or bounds_q99).
        head_type: 'l1', 'diffusion' or 'discrete' (LM-head tokens, no action head).
        uses_film: Whether the vision backbone is FiLM-conditioned on the instruction.
        num_images_in_input: Images N per observation (6 channels each).
        use_proprio: Whether a proprio token is fed (needs a proprio projector).
        platform: Preset the constants came from, if any (informational).
        film_lora_rank: LoRA rank of the FiLM ViT file (re-used when saving), None without FiLM.
        num_diffusion_steps_train: DDIM training timesteps (upstream default 50).
        num_diffusion_steps_inference: DDIM sampling steps (50 -> timesteps 49..0).
    """

    chunk_len: int
    action_dim: int
    proprio_dim: Optional[int]
    normalization_type: NormalizationType
    head_type: str
    uses_film: bool = False
    num_images_in_input: int = 1
    use_proprio: bool = False
    platform: Optional[str] = None
    film_lora_rank: Optional[int] = None
    num_diffusion_steps_train: int = DEFAULT_NUM_DIFFUSION_STEPS
    num_diffusion_steps_inference: int = DEFAULT_NUM_DIFFUSION_STEPS

    def __post_init__(self):
        object.__setattr__(self, 'normalization_type', _as_norm_type(self.normalization_type))
        for name in ('chunk_len', 'action_dim', 'num_images_in_input',
                     'num_diffusion_steps_train', 'num_diffusion_steps_inference'):
            _check_positive_int(name, getattr(self, name))
        if self.proprio_dim is not None:
            _check_positive_int('proprio_dim', self.proprio_dim)
        if self.head_type not in HEAD_TYPES:
            raise ConfigError(f'head_type: expected one of {HEAD_TYPES}, got {self.head_type!r}')
        if self.use_proprio and self.proprio_dim is None:
            raise ConfigError('proprio_dim: expected a positive int when use_proprio, got None')
        if self.num_diffusion_steps_inference > self.num_diffusion_steps_train:
            raise ConfigError(
                f'num_diffusion_steps_inference: expected at most num_diffusion_steps_train '
                f'({self.num_diffusion_steps_train}), got {self.num_diffusion_steps_inference}')

    @classmethod
    def for_platform(cls, platform: str, head_type: str, **fields) -> 'ActionConfig':
        """Take chunk, dims and normalization from a platform preset, the rest from `fields`."""
        preset = platform_preset(platform)
        return cls(chunk_len=preset.chunk_len, action_dim=preset.action_dim,
                   proprio_dim=preset.proprio_dim, normalization_type=preset.normalization_type,
                   head_type=head_type, platform=preset.name, **fields)

    @property
    def num_action_slots(self) -> int:
        """H * A: one LLM position per action dimension of every chunk step."""
        return self.chunk_len * self.action_dim

    def to_record(self) -> dict:
        """JSON form stored under `platform_constants` in config.json by `save_openvla`."""
        record = {
            'platform': self.platform,
            'chunk_len': self.chunk_len,
            'action_dim': self.action_dim,
            'proprio_dim': self.proprio_dim,
            'normalization_type': self.normalization_type.value,
            'num_images_in_input': self.num_images_in_input,
            'num_diffusion_steps_train': self.num_diffusion_steps_train,
            'num_diffusion_steps_inference': self.num_diffusion_steps_inference,
        }
        return {key: value for key, value in record.items() if value is not None}


# Keys `resolve_action_config` accepts as explicit overrides and from `platform_constants`.
CONSTANT_NAMES = ('chunk_len', 'action_dim', 'proprio_dim', 'normalization_type',
                  'num_diffusion_steps_train')
_RECORD_NAMES = CONSTANT_NAMES + ('platform', 'num_images_in_input',
                                  'num_diffusion_steps_inference')


@dataclasses.dataclass(frozen=True)
class CheckpointFacts:
    """What the checkpoint files say about the action constants (found by `checkpoint.py`).

    Args:
        head_type: 'l1', 'diffusion' or 'discrete'.
        action_dim: Action dim read from the head's shapes; None for discrete checkpoints.
        action_dim_source: Where `action_dim` was read, for error messages (file and key).
        proprio_dim: Proprio dim from the proprio projector's fc1; None without one.
        proprio_dim_source: Where `proprio_dim` was read.
        uses_film: A FiLM `vision_backbone--*` file is present.
        film_lora_rank: LoRA rank read from that file.
        recorded: `platform_constants` of config.json (openvla_ros extension) or None.
        recorded_source: Where `recorded` came from.
    """

    head_type: str
    action_dim: Optional[int] = None
    action_dim_source: str = ''
    proprio_dim: Optional[int] = None
    proprio_dim_source: str = ''
    uses_film: bool = False
    film_lora_rank: Optional[int] = None
    recorded: Optional[Mapping[str, Any]] = None
    recorded_source: str = 'config.json'


def resolve_action_config(facts: CheckpointFacts, platform: Optional[str] = None,
                          num_images_in_input: Optional[int] = None,
                          use_proprio: Optional[bool] = None,
                          num_diffusion_steps: Optional[int] = None,
                          **overrides) -> ActionConfig:
    """Decide every constant; shapes from the checkpoint are the truth and are cross-checked.

    Precedence per constant: explicit override (`chunk_len=`, `action_dim=`, `proprio_dim=`,
    `normalization_type=`, `num_diffusion_steps_train=`) > the `platform=` preset (which
    discards recorded constants) > constants recorded in config.json > the recorded preset, or
    else one guessed from the files' dims (action/proprio 7/8 -> LIBERO, 14/14 -> ALOHA,
    7/7 -> BRIDGE, only when exactly one fits). Dims read from the files always win; any value
    that contradicts them is an error naming the file and the fix.
    """
    unknown = sorted(set(overrides) - set(CONSTANT_NAMES))
    if unknown:
        raise ConfigError(f'expected overrides among {list(CONSTANT_NAMES)}, got {unknown}')
    overrides = {key: value for key, value in overrides.items() if value is not None}
    recorded = _check_record(facts.recorded or {}, facts.recorded_source)
    if platform is not None:
        preset = platform_preset(platform)
        recorded = {}  # an explicit platform replaces whatever was recorded
        preset_source = f'platform={preset.name!r}'
    elif recorded.get('platform') is not None:
        preset = platform_preset(recorded['platform'])
        preset_source = f'platform {preset.name!r} recorded in {facts.recorded_source}'
    else:
        preset = _guess_preset(facts)
        preset_source = f'platform {preset.name} inferred from the checkpoint' if preset else ''

    def pick(name):
        for value, source in ((overrides.get(name), f'{name}={overrides.get(name)!r}'),
                              (recorded.get(name), f'{name} recorded in {facts.recorded_source}')):
            if value is not None:
                return value, source
        if preset is not None and hasattr(preset, name):
            return getattr(preset, name), preset_source
        return None, ''

    action_dim, action_source = pick('action_dim')
    if facts.action_dim is not None:
        if action_dim is not None and action_dim != facts.action_dim:
            raise ConfigError(
                f'{facts.action_dim_source} predicts {facts.action_dim}-dim actions, but '
                f'{action_source} expects action_dim {action_dim}. Fix: '
                f'{_fix_for_dims(facts.action_dim, facts.proprio_dim)}')
        action_dim = facts.action_dim
    if action_dim is None:
        raise ConfigError(_cannot_infer_message(facts, 'action_dim'))

    use_proprio = (facts.proprio_dim is not None) if use_proprio is None else bool(use_proprio)
    if use_proprio and facts.proprio_dim is None:
        raise ConfigError(
            'use_proprio=True, but the checkpoint has no proprio_projector--*checkpoint* file. '
            'Fix: pass use_proprio=False or add the proprio projector file.')
    proprio_dim, proprio_source = pick('proprio_dim')
    if use_proprio:
        if proprio_dim is not None and proprio_dim != facts.proprio_dim:
            raise ConfigError(
                f'{facts.proprio_dim_source} takes {facts.proprio_dim}-dim proprio, but '
                f'{proprio_source} expects proprio_dim {proprio_dim}. Fix: '
                f'{_fix_for_dims(facts.action_dim or action_dim, facts.proprio_dim)}')
        proprio_dim = facts.proprio_dim

    chunk_len, _ = pick('chunk_len')
    normalization_type, _ = pick('normalization_type')
    for name, value in (('chunk_len', chunk_len), ('normalization_type', normalization_type)):
        if value is None:
            raise ConfigError(_cannot_infer_message(facts, name))
    if num_images_in_input is None:
        num_images_in_input = recorded.get('num_images_in_input')
    if num_images_in_input is None:
        num_images_in_input = preset.num_images_in_input if preset is not None else 1
    steps_train = pick('num_diffusion_steps_train')[0] or DEFAULT_NUM_DIFFUSION_STEPS
    if num_diffusion_steps is None:
        num_diffusion_steps = recorded.get('num_diffusion_steps_inference', steps_train)
    return ActionConfig(
        chunk_len=chunk_len, action_dim=action_dim, proprio_dim=proprio_dim,
        normalization_type=normalization_type, head_type=facts.head_type,
        uses_film=facts.uses_film, num_images_in_input=num_images_in_input,
        use_proprio=use_proprio, platform=preset.name if preset is not None else None,
        film_lora_rank=facts.film_lora_rank, num_diffusion_steps_train=steps_train,
        num_diffusion_steps_inference=num_diffusion_steps)


def _guess_preset(facts: CheckpointFacts) -> Optional[PlatformPreset]:
    candidates = _candidate_presets(facts.action_dim, facts.proprio_dim)
    if facts.action_dim is None and facts.proprio_dim is None:
        return None
    return candidates[0] if len(candidates) == 1 else None


def _candidate_presets(action_dim, proprio_dim) -> list:
    return [preset for preset in PLATFORMS.values()
            if action_dim in (None, preset.action_dim)
            and proprio_dim in (None, preset.proprio_dim)]


def _fix_for_dims(action_dim, proprio_dim) -> str:
    names = [preset.name for preset in _candidate_presets(action_dim, proprio_dim)]
    if names:
        return ('pass ' + ' or '.join(f'platform={name!r}' for name in names)
                + ' (the preset the checkpoint was trained with), or matching explicit '
                'action_dim / proprio_dim')
    return (f'no preset has action_dim {action_dim} and proprio_dim {proprio_dim}; pass '
            'chunk_len=, action_dim=, proprio_dim= and normalization_type= explicitly')


def _cannot_infer_message(facts: CheckpointFacts, name: str) -> str:
    seen = []
    if facts.action_dim is not None:
        seen.append(f'action_dim {facts.action_dim} from {facts.action_dim_source}')
    if facts.proprio_dim is not None:
        seen.append(f'proprio_dim {facts.proprio_dim} from {facts.proprio_dim_source}')
    seen_text = ', '.join(seen) if seen else f'a {facts.head_type} checkpoint without proprio'
    names = [p.name for p in _candidate_presets(facts.action_dim, facts.proprio_dim)]
    fits = (f'presets {" and ".join(names)} all fit' if len(names) > 1
            else 'no preset fits')
    return (f'cannot determine {name}: the checkpoint gives {seen_text} and {fits}. Fix: pass '
            f'platform= one of {sorted(PLATFORMS)} or {name}= explicitly')


def _check_record(record: Mapping[str, Any], source: str) -> dict:
    if not isinstance(record, Mapping):
        raise ConfigError(f'{source}: platform_constants: expected an object, '
                          f'got {type(record).__name__}')
    unknown = sorted(set(record) - set(_RECORD_NAMES))
    if unknown:
        raise ConfigError(f'{source}: platform_constants: expected keys among '
                          f'{list(_RECORD_NAMES)}, got {unknown}')
    return dict(record)


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f'{name}: expected a positive int, got {value!r}')


def _as_norm_type(value) -> NormalizationType:
    try:
        norm_type = NormalizationType(value)
    except ValueError:
        raise ConfigError(
            f'normalization_type: expected one of {[t.value for t in NormalizationType]}, '
            f'got {value!r}') from None
    if norm_type is NormalizationType.NORMAL:
        raise ConfigError('normalization_type: expected bounds or bounds_q99, got normal '
                          '(OpenVLA-OFT inference does not support it)')
    return norm_type


@dataclasses.dataclass
class OpenVLAConfig:
    """`config.json` of an OpenVLA(-OFT) checkpoint (upstream `OpenVLAConfig`, model_type openvla).

    Args:
        timm_model_ids: ViTs of the vision backbone, DINOv2 first (fused: two ids).
        timm_override_act_layers: Activation override per ViT (upstream: [None, None]).
        timm_model_kwargs: openvla_ros extension: extra `timm.create_model` kwargs per ViT
            (tiny test checkpoints); None for released checkpoints.
        image_sizes: Input resolution per ViT (224, 224).
        use_fused_vision_backbone: DINOv2 + SigLIP fused features.
        arch_specifier: Projector architecture (`no-align+fused-gelu-mlp` for OFT).
        text_config: Llama config as a diff against `LLAMA_DEFAULTS` (as stored).
        n_action_bins: Discrete action bins (256).
        pad_token_id: `<PAD>` id (32000).
        pad_to_multiple_of: Vocabulary padding of the LLM (64): text vocab = LLM vocab - 64.
        norm_stats: Dataset statistics inherited from the base model (raw JSON); replaced by
            `dataset_statistics.json` at load time when that file exists.
        platform_constants: openvla_ros extension: a recorded `ActionConfig` (see `to_record`).
        extra: Every other key of config.json, kept so `to_dict` round-trips.
    """

    timm_model_ids: tuple = ('vit_large_patch14_reg4_dinov2.lvd142m',
                             'vit_so400m_patch14_siglip_224')
    timm_override_act_layers: tuple = (None, None)
    timm_model_kwargs: Optional[tuple] = None
    image_sizes: tuple = (224, 224)
    use_fused_vision_backbone: bool = True
    arch_specifier: str = 'no-align+fused-gelu-mlp'
    vision_backbone_id: str = 'dinosiglip-vit-so-224px'
    llm_backbone_id: str = 'llama2-7b-pure'
    hf_llm_id: str = 'meta-llama/Llama-2-7b-hf'
    image_resize_strategy: str = 'resize-naive'
    llm_max_length: int = 2048
    n_action_bins: int = 256
    pad_token_id: int = 32000
    pad_to_multiple_of: int = 64
    output_projector_states: bool = False
    torch_dtype: str = 'bfloat16'
    text_config: dict = dataclasses.field(default_factory=lambda: {
        'model_type': 'llama', 'pad_token_id': 32000, 'torch_dtype': 'bfloat16',
        'vocab_size': 32064})
    norm_stats: Optional[dict] = None
    platform_constants: Optional[dict] = None
    extra: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.timm_model_ids = tuple(self.timm_model_ids)
        self.timm_override_act_layers = tuple(self.timm_override_act_layers)
        self.image_sizes = tuple(self.image_sizes)
        expected_ids = 2 if self.use_fused_vision_backbone else 1
        if len(self.timm_model_ids) != expected_ids:
            raise ConfigError(
                f'timm_model_ids: expected {expected_ids} ids (use_fused_vision_backbone='
                f'{self.use_fused_vision_backbone}), got {list(self.timm_model_ids)}')
        for name in ('timm_override_act_layers', 'image_sizes'):
            if len(getattr(self, name)) != expected_ids:
                raise ConfigError(f'{name}: expected {expected_ids} entries (one per ViT), '
                                  f'got {list(getattr(self, name))}')
        if len(set(self.image_sizes)) != 1:
            raise ConfigError(f'image_sizes: expected equal sizes, got {list(self.image_sizes)}')
        if self.timm_model_kwargs is not None:
            kwargs = tuple(dict(k or {}) for k in self.timm_model_kwargs)
            if len(kwargs) != expected_ids:
                raise ConfigError(f'timm_model_kwargs: expected {expected_ids} entries (aligned '
                                  f'with timm_model_ids), got {len(kwargs)}')
            self.timm_model_kwargs = kwargs
        fused_projector = self.arch_specifier.endswith('fused-gelu-mlp')
        if not self.arch_specifier.endswith('gelu-mlp'):
            raise ConfigError(f'arch_specifier: expected ...gelu-mlp or ...fused-gelu-mlp, '
                              f'got {self.arch_specifier!r}')
        if fused_projector != self.use_fused_vision_backbone:
            raise ConfigError(
                f'arch_specifier {self.arch_specifier!r} does not match '
                f'use_fused_vision_backbone={self.use_fused_vision_backbone}')
        if not isinstance(self.text_config, Mapping):
            raise ConfigError(f'text_config: expected an object, got '
                              f'{type(self.text_config).__name__}')
        self.text_config = dict(self.text_config)
        if self.text_vocab_size < self.n_action_bins + 1:
            raise ConfigError(
                f'text_config vocab_size - pad_to_multiple_of: expected more than n_action_bins '
                f'({self.n_action_bins}), got {self.text_vocab_size}')

    @property
    def image_size(self) -> int:
        return int(self.image_sizes[0])

    @property
    def llm_vocab_size(self) -> int:
        """Rows of the (padded) embedding / LM head: 32064 for the 7B model."""
        return int(self._text_value('vocab_size'))

    @property
    def text_vocab_size(self) -> int:
        """Vocabulary without padding (32000); action token ids count down from it."""
        return self.llm_vocab_size - int(self.pad_to_multiple_of)

    @property
    def llm_dim(self) -> int:
        return int(self._text_value('hidden_size'))

    def _text_value(self, name):
        return self.text_config.get(name, LLAMA_DEFAULTS[name])

    def llama_config(self) -> LlamaConfig:
        """Build the LlamaConfig: LLAMA_DEFAULTS updated with `text_config` (minus bookkeeping)."""
        values = dict(LLAMA_DEFAULTS)
        values.update({key: value for key, value in self.text_config.items()
                       if key not in _TEXT_CONFIG_METADATA})
        try:
            return LlamaConfig(**values)
        except (TypeError, ValueError) as error:
            raise ConfigError(f'text_config: cannot build a LlamaConfig: {error}') from None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> 'OpenVLAConfig':
        if not isinstance(data, Mapping):
            raise ConfigError(f'expected a JSON object, got {type(data).__name__}')
        model_type = data.get('model_type')
        if model_type not in ('openvla', 'prismatic'):
            raise ConfigError(f'model_type: expected "openvla", got {model_type!r}')
        names = {field.name for field in dataclasses.fields(cls)} - {'extra'}
        known = {key: value for key, value in data.items() if key in names}
        extra = {key: value for key, value in data.items() if key not in names}
        try:
            return cls(**known, extra=extra)
        except TypeError as error:
            raise ConfigError(str(error)) from None

    @classmethod
    def from_json_file(cls, path) -> 'OpenVLAConfig':
        """Read config.json; every error names the file."""
        path = pathlib.Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f'{path}: not found (expected a checkpoint directory with '
                              'config.json)') from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ConfigError(f'{path}: cannot read: {error}') from None
        try:
            return cls.from_dict(data)
        except ConfigError as error:
            raise ConfigError(f'{path}: {error}') from None

    def to_dict(self) -> dict:
        """config.json content in upstream's layout (plus the optional openvla_ros keys)."""
        data = {
            'model_type': 'openvla',
            'architectures': ['OpenVLAForActionPrediction'],
            'auto_map': {
                'AutoConfig': 'configuration_prismatic.OpenVLAConfig',
                'AutoModelForVision2Seq': 'modeling_prismatic.OpenVLAForActionPrediction',
            },
        }
        data.update(self.extra)
        for field in dataclasses.fields(self):
            if field.name == 'extra':
                continue
            value = getattr(self, field.name)
            if field.name in ('timm_model_kwargs', 'platform_constants', 'norm_stats') \
                    and value is None:
                continue
            data[field.name] = list(value) if isinstance(value, tuple) else value
        return dict(sorted(data.items()))


def text_config_diff(llama_values: Mapping[str, Any], torch_dtype: str = 'bfloat16') -> dict:
    """`text_config` as upstream writes it: what differs from LLAMA_DEFAULTS, plus bookkeeping."""
    diff = {'model_type': 'llama', 'torch_dtype': torch_dtype}
    for key, value in llama_values.items():
        if key in LLAMA_DEFAULTS and value != LLAMA_DEFAULTS[key]:
            diff[key] = value
    return dict(sorted(diff.items()))
