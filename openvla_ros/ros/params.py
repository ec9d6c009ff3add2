"""The node's ROS parameters: declared in one table, read into plain settings objects.

Parameter names equal the field names they end up in (ExecutionConfig, OpenVLAPolicy
.from_pretrained), spelling included. Model parameters are read-only: they take effect on
configure and a change needs cleanup + configure.
"""

from dataclasses import dataclass
from typing import Any, Optional

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from openvla_ros.execution.config import ExecutionConfig
from openvla_ros.robot_io.gripper import GripperMapping
from openvla_ros.ros.conversions import DEFAULT_MAX_IMAGE_PIXELS

OUTPUTS = ('action', 'action_chunk', 'joint_command', 'joint_trajectory', 'eef_twist',
           'gripper_command', 'gripper_action')
EEF_POSE_SOURCES = ('', 'topic', 'tf')
GRIPPER_ACTION_TYPES = ('GripperCommand', 'ParallelGripperCommand')  # control_msgs actions

_POSITIVE = FloatingPointRange(from_value=0.0, to_value=1e6, step=0.0)
_DYNAMIC = False
_READ_ONLY = True

# name: (default, description, read_only, range)
PARAMETERS = {
    # Model (read on configure)
    'checkpoint': ('', 'Checkpoint directory in the Hugging Face hub layout.', _READ_ONLY, None),
    'device': ('cuda', "'cuda', 'cuda:N', 'cpu' or 'auto'.", _READ_ONLY, None),
    'platform': ('', "'libero', 'aloha', 'bridge' or '' to infer from the checkpoint.",
                 _READ_ONLY, None),
    'unnorm_key': ('', "Dataset in dataset_statistics.json ('' if there is only one).",
                   _READ_ONLY, None),
    'num_diffusion_steps': (0, 'DDIM inference steps for diffusion heads (0: checkpoint '
                               'default).', _READ_ONLY, IntegerRange(from_value=0, to_value=1000,
                                                                     step=1)),
    'center_crop': (True, 'Apply the 0.9-area center crop (all released checkpoints).',
                    _READ_ONLY, None),
    'compile_llm': (False, 'torch.compile the Llama decoder at configure (off until measured).',
                    _READ_ONLY, None),
    'quantization': ('none', "Llama decoder weights: 'none', 'int8' (CPU, CUDA) or 'int4' "
                             '(CUDA) with torchao.', _READ_ONLY, None),
    'cuda_graphs': (False, 'Capture the forward as CUDA graphs per prompt-length bucket at '
                           'configure and replay them (CUDA only).', _READ_ONLY, None),
    'autostart': (True, 'Configure and activate on start-up (a lifecycle manager can take '
                        'over when false).', _READ_ONLY, None),
    # Inputs
    'camera_topics': (['camera/image'], 'Image topics in model order: primary first, then '
                      "wrists. Topics ending in '/compressed' are sensor_msgs/CompressedImage.",
                      _READ_ONLY, None),
    'proprio_joint_names': ([''], 'Joints whose positions form the proprio vector, in order '
                            "(['']: all positions in message order).", _READ_ONLY, None),
    'action_joint_names': ([''], "Names for action_chunk's joint_names (['']: action_0..).",
                           _READ_ONLY, None),
    'max_instruction_chars': (500, 'Longer instructions are rejected.', _DYNAMIC,
                              IntegerRange(from_value=1, to_value=2000, step=1)),
    'max_observation_age_s': (0.5, 'Images and joint states older than this are not used.',
                              _DYNAMIC, _POSITIVE),
    'max_future_stamp_s': (0.05, 'Observations stamped further in the future are rejected.',
                           _DYNAMIC, _POSITIVE),
    'max_image_pixels': (DEFAULT_MAX_IMAGE_PIXELS, 'Images declaring more pixels are rejected '
                         'before decoding (decompression bombs).', _DYNAMIC,
                         IntegerRange(from_value=1, to_value=178_956_970, step=1)),
    'stale_error_s': (2.0, '/diagnostics turns ERROR when an input is older than this (WARN '
                      'from max_observation_age_s on).', _DYNAMIC, _POSITIVE),
    # Execution: one parameter per ExecutionConfig field, same name, same default (below).
    # Safety
    'clip_to_dataset_bounds': (True, "Clip actions to the dataset's min/max.", _DYNAMIC, None),
    'max_delta_per_tick': (0.0, 'Per-tick change limit for absolute actions (0: off).',
                           _DYNAMIC, _POSITIVE),
    'action_scale': (1.0, 'Factor applied to every action (before clipping).', _DYNAMIC,
                     _POSITIVE),
    'dry_run': (False, 'Run the model and publish action_chunk, but nothing that moves the '
                'robot (action and every command output).', _DYNAMIC, None),
    'diagnostics_period_s': (1.0, 'Period of the /diagnostics status.', _READ_ONLY,
                             _POSITIVE),
}

# Robot interface: controller-ready outputs and proprio sources (docs/INTEGRATION.md).
PARAMETERS.update({
    'outputs': (['action', 'action_chunk'], 'Topics to publish: any of ' + ', '.join(OUTPUTS)
                + '.', _READ_ONLY, None),
    'command_joint_names': ([''], 'Joints of the joint_command / joint_trajectory controller, '
                            'in its order (arm joints; names from action_joint_names, or the '
                            'non-gripper dimensions in order).', _READ_ONLY, None),
    'gripper_dims': ([-1], 'Action dimensions that are grippers ([-1]: none).', _READ_ONLY,
                     None),
    'gripper_convention': ('oft_open_is_1', "'oft_open_is_1' (1 open, binarized), "
                           "'aloha_normalized' (0 closed .. 1 open) or 'raw'.", _READ_ONLY,
                           None),
    'gripper_open_position': (1.0, 'gripper_command value for an open gripper.', _READ_ONLY,
                              None),
    'gripper_closed_position': (0.0, 'gripper_command value for a closed gripper.',
                                _READ_ONLY, None),
    'gripper_action_type': ('GripperCommand', "gripper_action goals: 'GripperCommand' "
                            "(gripper_action_controller) or 'ParallelGripperCommand' "
                            '(parallel_gripper_action_controller).', _READ_ONLY, None),
    'gripper_joint_names': ([''], 'ParallelGripperCommand: the joint named in the goal of '
                            "each gripper, in gripper_dims order (['']: unnamed).", _READ_ONLY,
                            None),
    'pos_scale': (1.0, 'eef_twist: metres per unit of action per step (robosuite OSC: 0.05).',
                  _READ_ONLY, _POSITIVE),
    'rot_scale': (1.0, 'eef_twist: radians per unit of action per step (robosuite OSC: 0.5).',
                  _READ_ONLY, _POSITIVE),
    'base_frame': ('base_link', 'Frame of eef_twist and of the EEF pose proprio.', _READ_ONLY,
                   None),
    'ee_frame': ('tool0', "End-effector frame (eef_pose_source 'tf').", _READ_ONLY, None),
    'proprio_scale': ([1.0], 'Per-dimension factor on the proprio vector (one value: all).',
                      _READ_ONLY, None),
    'proprio_offset': ([0.0], 'Per-dimension offset added after proprio_scale.', _READ_ONLY,
                       None),
    'joint_state_topics': (['joint_states'], "JointState topics, 'topic' or 'topic:prefix' "
                           "(prefix prepended to its names; ['']: none).", _READ_ONLY, None),
    'eef_pose_topic': ('eef_pose', 'geometry_msgs/PoseStamped topic (eef_pose_source '
                       "'topic').", _READ_ONLY, None),
    'eef_pose_source': ('', "'' (none), 'topic' or 'tf': the EEF pose leads the proprio "
                        'vector as position + axis-angle.', _READ_ONLY, None),
})


_EXECUTION_DEFAULTS = ExecutionConfig()
# name: (description, range); defaults come from ExecutionConfig so the two cannot drift.
_EXECUTION_PARAMETERS = {
    'execution_mode': ("'async' (re-query early) or 'sync' (upstream: execute, then query).",
                       None),
    'action_rate_hz': ('Rate the actions were recorded at (step spacing).', _POSITIVE),
    'control_rate_hz': ('Rate of the action topic.', _POSITIVE),
    'execute_steps': ('Steps of each chunk to execute (0: whole chunk).',
                      IntegerRange(from_value=0, to_value=1000, step=1)),
    'latency_quantile': ('Quantile of recent inference latencies used for scheduling.',
                         FloatingPointRange(from_value=0.01, to_value=1.0, step=0.0)),
    'latency_window': ('Number of recent latencies the quantile is taken over.',
                       IntegerRange(from_value=1, to_value=10000, step=1)),
    'latency_initial_s': ('Latency assumed before the first one is measured.', _POSITIVE),
    'latency_margin_s': ('Extra time before the buffer runs out at which the next chunk is '
                         'requested.', _POSITIVE),
    'blend': ("'none', 'crossfade' or 'ensemble' at chunk switches.", None),
    'crossfade_steps': ('Crossfade length in action steps.',
                        IntegerRange(from_value=1, to_value=100, step=1)),
    'ensemble_decay': ("ACT's temporal-ensembling decay m in exp(-m * i).", None),
    'action_kind': ("'absolute' or 'delta' actions.", None),
    'interpolation': ("'linear' or 'hold' between action steps.", None),
    'hold_dims': ('Gripper/binary action dimensions, never interpolated ([-1]: none).', None),
    'resume_after_stall': ('After the arm stood still, resume a chunk where it stopped instead '
                           'of skipping the steps planned for that time.', None),
    'underrun_policy': ("'hold' the last action or stay 'silent' when the buffer is empty.",
                        None),
    'max_action_age_s': ('No action from an older observation is ever published.',
                         _POSITIVE),
}


def _execution_default(name: str):
    value = getattr(_EXECUTION_DEFAULTS, name)
    if name == 'execute_steps':
        return value or 0
    if name == 'hold_dims':
        return list(value) or [-1]  # ROS cannot infer the type of an empty array
    return value


PARAMETERS.update({
    name: (_execution_default(name), description, _READ_ONLY, value_range)
    for name, (description, value_range) in _EXECUTION_PARAMETERS.items()})


def declare_parameters(node) -> None:
    """Declare every parameter with its description, read-only flag and range."""
    for name, (default, description, read_only, value_range) in PARAMETERS.items():
        descriptor = ParameterDescriptor(description=description, read_only=read_only)
        if isinstance(value_range, FloatingPointRange):
            descriptor.floating_point_range = [value_range]
        elif isinstance(value_range, IntegerRange):
            descriptor.integer_range = [value_range]
        node.declare_parameter(name, default, descriptor)


def _names(values) -> tuple:
    return tuple(v for v in values if v)


@dataclass(frozen=True)
class NodeSettings:
    """Parameters as plain values; built once per configure."""

    checkpoint: str
    device: str
    platform: Optional[str]
    unnorm_key: Optional[str]
    num_diffusion_steps: Optional[int]
    center_crop: bool
    compile_llm: bool
    quantization: str
    cuda_graphs: bool
    camera_topics: tuple
    proprio_joint_names: tuple
    action_joint_names: tuple
    execution: ExecutionConfig
    diagnostics_period_s: float
    robot: Optional['RobotSettings'] = None

    def policy_kwargs(self) -> dict:
        """Keyword arguments of OpenVLAPolicy.from_pretrained."""
        return dict(device=self.device, platform=self.platform, unnorm_key=self.unnorm_key,
                    num_diffusion_steps=self.num_diffusion_steps, center_crop=self.center_crop,
                    compile_llm=self.compile_llm, quantization=self.quantization,
                    cuda_graphs=self.cuda_graphs)


def read_settings(node) -> NodeSettings:
    """Read the read-only parameters; raises ValueError with the parameter's name."""
    get = {name: node.get_parameter(name).value for name in PARAMETERS}
    execution_values = {name: get[name] for name in _EXECUTION_PARAMETERS}
    execution_values['execute_steps'] = int(get['execute_steps']) or None
    execution_values['hold_dims'] = tuple(int(d) for d in get['hold_dims'] if int(d) >= 0)
    execution = ExecutionConfig(**execution_values)
    camera_topics = _names(get['camera_topics'])
    if not get['checkpoint']:
        raise ValueError("parameter 'checkpoint': expected a checkpoint directory, got ''")
    if not camera_topics:
        raise ValueError("parameter 'camera_topics': expected at least one topic, got none")
    return NodeSettings(
        checkpoint=get['checkpoint'],
        device=get['device'],
        platform=get['platform'] or None,
        unnorm_key=get['unnorm_key'] or None,
        num_diffusion_steps=int(get['num_diffusion_steps']) or None,
        center_crop=bool(get['center_crop']),
        compile_llm=bool(get['compile_llm']),
        quantization=get['quantization'],
        cuda_graphs=bool(get['cuda_graphs']),
        camera_topics=camera_topics,
        proprio_joint_names=_names(get['proprio_joint_names']),
        action_joint_names=_names(get['action_joint_names']),
        execution=execution,
        diagnostics_period_s=float(get['diagnostics_period_s']),
        robot=_robot_settings(get),
    )


@dataclass(frozen=True)
class RobotSettings:
    """Outputs and proprio sources (the robot side of the node)."""

    outputs: tuple
    command_joint_names: tuple
    gripper: GripperMapping
    gripper_action_type: str
    gripper_joint_names: tuple
    pos_scale: float
    rot_scale: float
    base_frame: str
    ee_frame: str
    proprio_scale: tuple
    proprio_offset: tuple
    joint_state_topics: tuple
    eef_pose_topic: str
    eef_pose_source: str


def _robot_settings(get) -> RobotSettings:
    outputs = tuple(dict.fromkeys(_names(get['outputs'])))
    unknown = [o for o in outputs if o not in OUTPUTS]
    if unknown:
        raise ValueError(f"parameter 'outputs': expected names from {list(OUTPUTS)}, got "
                         f'{unknown}')
    if get['eef_pose_source'] not in EEF_POSE_SOURCES:
        raise ValueError(f"parameter 'eef_pose_source': expected one of "
                         f"{list(EEF_POSE_SOURCES)}, got {get['eef_pose_source']!r}")
    if get['gripper_action_type'] not in GRIPPER_ACTION_TYPES:
        raise ValueError(f"parameter 'gripper_action_type': expected one of "
                         f"{list(GRIPPER_ACTION_TYPES)}, got {get['gripper_action_type']!r}")
    gripper = GripperMapping(
        dims=tuple(int(d) for d in get['gripper_dims'] if int(d) >= 0),
        convention=get['gripper_convention'],
        open_position=float(get['gripper_open_position']),
        closed_position=float(get['gripper_closed_position']))
    return RobotSettings(
        outputs=outputs,
        command_joint_names=_names(get['command_joint_names']),
        gripper=gripper,
        gripper_action_type=get['gripper_action_type'],
        gripper_joint_names=_names(get['gripper_joint_names']),
        pos_scale=float(get['pos_scale']),
        rot_scale=float(get['rot_scale']),
        base_frame=get['base_frame'],
        ee_frame=get['ee_frame'],
        proprio_scale=tuple(float(v) for v in get['proprio_scale']),
        proprio_offset=tuple(float(v) for v in get['proprio_offset']),
        joint_state_topics=_names(get['joint_state_topics']),
        eef_pose_topic=get['eef_pose_topic'],
        eef_pose_source=get['eef_pose_source'])


def dynamic_value(node, name: str) -> Any:
    """Return the current value of a parameter that may change at run time."""
    return node.get_parameter(name).value
