"""PolicyNode: cameras, joint states and an instruction in; one action per control tick out.

Concurrency contract (policy_node spins a SingleThreadedExecutor, see main.make_executor):
- subscription callbacks only convert and store the latest message;
- the control loop ticks the execution engine and publishes; it never waits for the model. It
  runs on its own thread on wall-clock deadlines (`ControlLoop`), or, with use_sim_time, as an
  rclpy timer in its own mutually exclusive group;
- inference runs in a plain worker thread at a lower OS priority, woken by the control loop when
  the engine asks for a chunk. The engine and the latest observation are guarded by one lock,
  held only for microseconds, never across a model call.

No exception may end the process: every subscription, service, timer, parameter and control-loop
callback is created through `_guarded`, which counts a ConversionError as a rejected input and
anything else as an error of that source (both in /diagnostics).
"""

import functools
import os
import threading
import traceback
from typing import Callable, Optional

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.publisher import Publisher
from rclpy.qos import qos_profile_sensor_data
from rclpy.service import Service
from rclpy.subscription import Subscription
from rclpy.timer import Timer
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from openvla_ros.execution.engine import ExecutionEngine
from openvla_ros.execution.filters import SafetyFilter, SafetyLimits
from openvla_ros.ros.control_loop import ControlLoop
from openvla_ros.ros.conversions import (
    check_instruction,
    compressed_image_msg_to_rgb,
    ConversionError,
    image_msg_to_rgb,
    joint_names_for_chunk,
    stamp_to_seconds,
)
from openvla_ros.ros.observation import ObservationStore, RejectCounter
from openvla_ros.ros.outputs import CommandOutputs, plan_outputs
from openvla_ros.ros.params import declare_parameters, dynamic_value, NodeSettings, read_settings
from openvla_ros.ros.proprio_sources import plan_proprio, ProprioSources

PolicyLoader = Callable[[NodeSettings], object]
SAFETY_PARAMETERS = ('clip_to_dataset_bounds', 'max_delta_per_tick', 'action_scale')
# The inference worker runs at this nice value (Linux: per thread), so the OS lets the control
# loop and the subscriptions preempt it (bench/bench_node.py).
INFERENCE_NICE = 10


def load_openvla_policy(settings: NodeSettings):
    """Load the real model (the default loader; imported here to keep the module light)."""
    from openvla_ros.policy import OpenVLAPolicy

    return OpenVLAPolicy.from_pretrained(settings.checkpoint, **settings.policy_kwargs())


class PolicyNode(LifecycleNode):
    """The OpenVLA-OFT policy as a managed node (configure loads the model)."""

    def __init__(self, policy_loader: PolicyLoader = load_openvla_policy, **kwargs):
        super().__init__('policy', **kwargs)
        self._rejects = RejectCounter()
        self._errors = RejectCounter()  # unexpected exceptions in callbacks, by source
        self._errors_reported = 0
        declare_parameters(self)
        self.add_post_set_parameters_callback(self._guarded('parameters', self._on_parameters_set))
        self._policy_loader = policy_loader
        self._lock = threading.Lock()
        self._policy = None
        self._settings: Optional[NodeSettings] = None
        self._engine: Optional[ExecutionEngine] = None
        self._store: Optional[ObservationStore] = None
        self._active = False
        self._estop = False
        self._safety: Optional[SafetyFilter] = None
        self._last_timings: dict = {}
        self._resources = []  # publishers, subscriptions, timers, services to destroy
        self._worker: Optional[threading.Thread] = None
        self._proprio: Optional[ProprioSources] = None
        self._control_loop: Optional[ControlLoop] = None
        self._wake = threading.Event()
        self._stop_worker = threading.Event()

    # ------------------------------------------------------------------------- lifecycle
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Load the policy and create every interface; FAILURE leaves the node unconfigured."""
        try:
            settings = read_settings(self)
            policy = self._policy_loader(settings)
            spec = policy.spec
            if len(settings.camera_topics) != spec.num_images:
                raise ValueError(
                    f'camera_topics: the checkpoint expects {spec.num_images} image(s) (primary '
                    f'first, then wrists), got {len(settings.camera_topics)} topics '
                    f'{list(settings.camera_topics)}')
            self._chunk_joint_names = joint_names_for_chunk(settings.action_joint_names,
                                                            spec.action_dim)
            self._output_plan = plan_outputs(settings, spec, self._chunk_joint_names)
            self._proprio_plan = plan_proprio(settings, spec)
        except Exception as exc:  # noqa: B902 - any loading error must fail the transition
            self.get_logger().error(f'configure failed: {exc}')
            return TransitionCallbackReturn.FAILURE
        self._settings, self._policy = settings, policy
        self._engine = ExecutionEngine(settings.execution)
        self._store = ObservationStore(len(settings.camera_topics))
        self._configured_at = self._now()  # inputs never received count as old as this
        self._safety = SafetyFilter(self._safety_limits())
        self._create_interfaces(settings)
        self._stop_worker.clear()
        self._worker = threading.Thread(target=self._inference_loop, name='openvla_inference',
                                        daemon=True)
        self._worker.start()
        self.get_logger().info(
            f'configured: {spec.head_type} head, chunk {spec.chunk_len}x{spec.action_dim}, '
            f'{spec.num_images} camera(s), proprio {spec.proprio_dim}, device {spec.device}')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Start publishing actions (from the next chunk on)."""
        with self._lock:
            self._engine.reset('activate', now=self._now())
            self._outputs.reset()
            self._active = True
        self.get_logger().info('active')
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Stop publishing and flush the buffer."""
        with self._lock:
            self._active = False
            self._engine.reset('deactivate', now=self._now())
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Destroy every interface and drop the model."""
        self.release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Release everything, as cleanup does, from any state."""
        self.release()
        return TransitionCallbackReturn.SUCCESS

    def release(self) -> None:
        """Stop the inference worker, destroy every interface, drop the model (idempotent)."""
        self._active = False
        if self._control_loop is not None:
            self._control_loop.stop()
            self._control_loop = None
        self._stop_worker.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join(timeout=30.0)
            self._worker = None
        if self._proprio is not None:
            self._proprio.close()
            self._proprio = None
        for resource in self._resources:
            self._destroy(resource)
        self._resources = []
        with self._lock:  # callbacks already running check for None under the lock
            self._policy = self._engine = self._store = self._safety = None

    def _destroy(self, resource) -> None:
        if isinstance(resource, Timer):
            self.destroy_timer(resource)
        elif isinstance(resource, Service):
            self.destroy_service(resource)
        elif isinstance(resource, Publisher):
            self.destroy_publisher(resource)
        elif isinstance(resource, Subscription):
            self.destroy_subscription(resource)
        else:  # an action client
            resource.destroy()

    # ------------------------------------------------------------------------ interfaces
    def _create_interfaces(self, settings: NodeSettings) -> None:
        inputs = ReentrantCallbackGroup()
        control = MutuallyExclusiveCallbackGroup()
        add = self._resources.append
        for index, topic in enumerate(settings.camera_topics):
            msg_type = CompressedImage if topic.rstrip('/').endswith('compressed') else Image
            add(self.create_subscription(
                msg_type, topic, self._guarded(f'camera{index}',
                                               self._camera_callback(index, msg_type)),
                qos_profile_sensor_data, callback_group=inputs))
        self._proprio = ProprioSources(self, self._proprio_plan, self._put_proprio, self._reject,
                                       self._checked_stamp, inputs, self._guarded)
        self._resources += self._proprio.resources
        add(self.create_subscription(String, 'instruction',
                                     self._guarded('instruction', self._on_instruction), 10,
                                     callback_group=inputs))
        self._outputs = CommandOutputs(self, self._output_plan)
        self._pub_diagnostics = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._resources += self._outputs.resources + [self._pub_diagnostics]
        for name, handler in (('reset', self._on_reset), ('stop', self._on_stop),
                              ('start', self._on_start)):
            add(self.create_service(Trigger, name,
                                    self._guarded(name, handler, _failed_trigger_response),
                                    callback_group=inputs))
        period_s = 1.0 / settings.execution.control_rate_hz
        tick = self._guarded('control', self._on_control_tick)
        if self.get_parameter('use_sim_time').value:
            add(self.create_timer(period_s, tick, callback_group=control))
        else:
            self._control_loop = ControlLoop(period_s, tick, 'openvla_control')
            self._control_loop.start()
        add(self.create_timer(settings.diagnostics_period_s,
                              self._guarded('diagnostics', self._publish_diagnostics),
                              callback_group=inputs))

    def _guarded(self, source: str, callback: Callable, on_error: Optional[Callable] = None
                 ) -> Callable:
        """Wrap `callback` so that no exception it raises reaches the executor or thread.

        A ConversionError is a rejected input (`rejected.<source>`); any other exception is a
        bug or a fault, counted as `errors.<source>` and logged with its traceback. Then
        `on_error(exc, *args)` gives the return value (a service's response), if set. Once the
        context is shut down (a signal), a failing callback (e.g. the control loop publishing
        before release() stops it) is part of shutting down, not an error.
        """
        @functools.wraps(callback)  # keeps the signature rclpy inspects (message info, timer)
        def guarded(*args):
            try:
                return callback(*args)
            except ConversionError as exc:
                self._reject(source, exc)
                failure = exc
            except Exception as exc:  # noqa: B902 - the point: nothing may end the process
                if not self.context.ok():  # shutting down: rclpy calls fail, nothing is wrong
                    return None
                self._error(source, exc)
                failure = exc
            return on_error(failure, *args) if on_error is not None else None
        return guarded

    def _error(self, source: str, exc: BaseException) -> None:
        """Count an unexpected exception; log the 1st (with traceback) and every 100th."""
        count = self._errors.add(source, repr(exc))
        if count == 1:
            self.get_logger().error(f'unexpected error in {source} callback (#1, survived): '
                                    f'{exc!r}\n{traceback.format_exc()}')
        elif count % 100 == 0:
            self.get_logger().error(f'unexpected error in {source} callback #{count}: {exc!r}')

    def _safety_limits(self) -> SafetyLimits:
        spec = self._policy.spec
        clip = dynamic_value(self, 'clip_to_dataset_bounds')
        return SafetyLimits(
            low=np.asarray(spec.action_min) if clip else None,
            high=np.asarray(spec.action_max) if clip else None,
            max_step_per_tick=dynamic_value(self, 'max_delta_per_tick') or None,
            scale=dynamic_value(self, 'action_scale'))

    def _on_parameters_set(self, parameters) -> None:
        """Apply changed safety parameters at once, keeping the rate limiter's memory."""
        if any(p.name in SAFETY_PARAMETERS for p in parameters):
            with self._lock:  # release() sets the filter and policy to None under this lock
                if self._safety is not None:
                    self._safety = _rebuilt(self._safety, self._safety_limits())

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # -------------------------------------------------------------------------- callbacks
    def _camera_callback(self, index: int, msg_type):
        convert = compressed_image_msg_to_rgb if msg_type is CompressedImage else image_msg_to_rgb

        def on_image(msg) -> None:
            store = self._store  # None after cleanup: a callback may still be in flight
            if store is None:
                return
            # a ConversionError is counted as rejected.camera<index> by the guard
            rgb = convert(msg, dynamic_value(self, 'max_image_pixels'))
            stamp = self._checked_stamp(msg.header.stamp, 'image')
            store.put_image(index, rgb, stamp, self._now())
        return on_image

    def _put_proprio(self, positions: np.ndarray, stamp: Optional[float]) -> None:
        store = self._store  # None after cleanup: a callback may still be in flight
        if store is not None:
            store.put_joints(positions, stamp, self._now())

    def _on_instruction(self, msg: String) -> None:
        # a ConversionError is counted as rejected.instruction by the guard
        text = check_instruction(msg.data, dynamic_value(self, 'max_instruction_chars'))
        with self._lock:
            if self._engine is None:
                return
            changed = text != self._store.instruction
            if changed:
                self._engine.reset('new instruction', now=self._now())
                self._store.instruction = text
        if changed:
            self.get_logger().info(f'instruction: {text!r}')

    def _checked_stamp(self, stamp, what: str) -> Optional[float]:
        """Header stamp in seconds (None when unset); rejects future-stamped messages."""
        seconds = stamp_to_seconds(stamp)
        if seconds == 0.0:
            return None
        ahead = seconds - self._now()
        if ahead > dynamic_value(self, 'max_future_stamp_s'):
            raise ConversionError(f'{what}: expected a stamp not in the future, got one '
                                  f'{ahead:.3f} s ahead of the node clock')
        return seconds

    def _reject(self, source: str, reason) -> None:
        """Count a rejected input (an exception or a text) and log the 1st and every 100th."""
        count = self._rejects.add(source, str(reason))
        if count == 1 or count % 100 == 0:
            self.get_logger().warning(f'rejected {source} message #{count}: {reason}')

    # ---------------------------------------------------------------------------- control
    def _on_control_tick(self) -> None:
        if not self._active:
            return
        now = self._now()
        with self._lock:
            if self._engine is None:
                return
            safety = self._safety
            result = self._engine.tick(now)
            wants_chunk = (not self._estop and self._store.instruction is not None
                           and self._engine.needs_inference(now))
        if wants_chunk:
            self._wake.set()
        if result is None or self._estop:
            return
        action = safety(result.action)
        if action is None:
            self._reject('model_output', 'non-finite action, not published')
            return
        if not dynamic_value(self, 'dry_run'):
            self._outputs.on_tick(action, now)

    # -------------------------------------------------------------------------- inference
    def _inference_loop(self) -> None:
        _lower_thread_priority(INFERENCE_NICE)
        while not self._stop_worker.is_set():
            if not self._wake.wait(timeout=0.2):
                continue
            self._wake.clear()
            if self._stop_worker.is_set():
                return
            try:
                self._run_one_inference()
            except Exception as exc:  # noqa: B902 - the worker must outlive any one failure
                if not self.context.ok():
                    return  # shutting down (SIGINT): publishers are already gone
                self._error('inference', exc)

    def _run_one_inference(self) -> None:
        from openvla_ros.policy import NonFiniteActionError, PolicyInputError

        now = self._now()
        max_age = dynamic_value(self, 'max_observation_age_s')
        with self._lock:
            if self._estop or not self._engine.needs_inference(now):
                return
            observation = self._store.snapshot(now, max_age,
                                               needs_proprio=self._policy.spec.proprio_dim
                                               is not None)
            if observation is None:
                return
            self._engine.inference_started(now)
        try:
            chunk = self._policy.predict(observation.images, observation.instruction,
                                         proprio=observation.proprio)
        except Exception as exc:  # noqa: B902 - a model failure must not kill the worker
            if isinstance(exc, (PolicyInputError, NonFiniteActionError, ValueError)):
                self._reject('inference', exc)
            else:  # unexpected: always logged
                self.get_logger().error(f'inference failed: {exc!r}')
                self._rejects.add('inference', repr(exc))
            with self._lock:
                self._engine.inference_failed(self._now())
            return
        with self._lock:
            accepted = self._engine.push_chunk(chunk.actions, observation.t_obs, self._now())
            self._last_timings = dict(chunk.timings)
        if accepted:
            self._publish_chunk(chunk.actions, observation.t_obs)

    def _publish_chunk(self, actions: np.ndarray, t_obs: float) -> None:
        dry_run = dynamic_value(self, 'dry_run')
        with self._lock:  # the trajectory output moves the robot: same gates as on_tick
            may_move = (self._active and not self._estop and self._safety is not None
                        and not dry_run)
            limits = self._safety.limits if may_move else None
        self._outputs.on_chunk(actions, t_obs, self._now(), limits)

    # --------------------------------------------------------------------------- services
    def _on_reset(self, request, response):
        with self._lock:
            if self._engine is None:
                response.success, response.message = False, 'not configured'
                return response
            self._engine.reset('reset service', now=self._now())
        response.success, response.message = True, 'buffer flushed'
        return response

    def _on_stop(self, request, response):
        with self._lock:
            self._estop = True  # latched even while unconfigured
            if self._engine is not None:
                self._engine.reset('stop service', now=self._now())
        self.get_logger().warning('STOP latched: no action is published until start is called')
        response.success, response.message = True, 'stopped (latched)'
        return response

    def _on_start(self, request, response):
        with self._lock:
            was_stopped, self._estop = self._estop, False
            if self._safety is not None:
                self._safety.reset()
        response.success = True
        response.message = 'released' if was_stopped else 'was not stopped'
        return response

    # ------------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        now = self._now()
        with self._lock:
            if self._engine is None:
                return
            counters = self._engine.counters.as_dict()
            ages = self._store.ages(now)
            instruction = self._store.instruction
            timings = dict(self._last_timings)
            spec = self._policy.spec
            topics = dict(zip(ages, self._settings.camera_topics))
        if spec.proprio_dim is None:
            ages.pop('joint_states')  # not an input of this checkpoint
        topics['joint_states'] = 'joint_states'
        stale, stale_level = self._stale_inputs(ages, topics, now)
        errors = self._errors.counts()
        new_errors = sum(errors.values()) - self._errors_reported
        self._errors_reported += new_errors
        status = DiagnosticStatus(name=f'{self.get_name()}: openvla policy',
                                  hardware_id=spec.device)
        if self._estop:
            status.level, status.message = DiagnosticStatus.WARN, 'stopped (latched)'
        elif stale:
            status.level, status.message = stale_level, 'stale input: ' + '; '.join(stale)
        elif new_errors:
            status.level = DiagnosticStatus.WARN
            status.message = f'{new_errors} unexpected error(s) in callbacks (survived, logged)'
        elif counters['chunks_received'] == 0:
            status.level, status.message = DiagnosticStatus.OK, 'waiting for first chunk'
        else:
            status.level, status.message = DiagnosticStatus.OK, 'running'
        values = {
            'checkpoint': spec.checkpoint_dir, 'head_type': spec.head_type,
            'device': spec.device, 'dtype': spec.dtype, 'active': self._active,
            'instruction': instruction or '', 'dry_run': dynamic_value(self, 'dry_run'),
            'control.missed_deadlines': (self._control_loop.missed_deadlines
                                         if self._control_loop is not None else 0),
            **{f'engine.{k}': v for k, v in counters.items()},
            **{f'age_s.{k}': v for k, v in ages.items()},
            **{f'inference_s.{k}': v for k, v in timings.items()},
            **{f'rejected.{k}': v for k, v in self._rejects.counts().items()},
            'rejected.last_reason': self._rejects.last_reason,
            **{f'errors.{k}': v for k, v in errors.items()},
            'errors.last': self._errors.last_reason,
        }
        status.values = [KeyValue(key=k, value=_format(v)) for k, v in values.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._pub_diagnostics.publish(msg)

    def _stale_inputs(self, ages: dict, topics: dict, now: float) -> tuple:
        """Describe inputs older than max_observation_age_s; return them and the status level.

        An input never received counts as old as the configure. ERROR from stale_error_s on.
        """
        warn_s = dynamic_value(self, 'max_observation_age_s')
        error_s = dynamic_value(self, 'stale_error_s')
        stale, level = [], DiagnosticStatus.WARN
        for name, age in ages.items():
            never = age != age  # nan: nothing received since configure
            if never:
                age = now - self._configured_at
            if age > warn_s:
                stale.append(f'{name} ({topics[name]}) ' + (
                    f'nothing received in {age:.1f} s' if never else f'{age:.2f} s old'))
                if age > error_s:
                    level = DiagnosticStatus.ERROR
        return stale, level


def _failed_trigger_response(exc, request, response):
    """Answer a Trigger request whose handler raised (the guard has counted and logged it)."""
    response.success, response.message = False, f'failed: {exc!r}'
    return response


def _lower_thread_priority(nice: int) -> None:
    """Raise the calling thread's nice value (a no-op where threads have no own priority)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (AttributeError, OSError):  # not Linux, or not permitted: keep the priority
        pass


def _rebuilt(safety: SafetyFilter, limits: SafetyLimits) -> SafetyFilter:
    rebuilt = SafetyFilter(limits)
    rebuilt.reset(safety.previous)
    return rebuilt


def _format(value) -> str:
    if isinstance(value, float):
        return f'{value:.6g}'
    return str(value)
