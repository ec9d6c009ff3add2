"""`openvla-sim-eval`: the real `policy_node` drives the MuJoCo tabletop over DDS on sim time.

    openvla-sim-eval --checkpoint checkpoints/sim_cubes --episodes 50 --seed 1000000 \
        [--swap-colours] [--gif demo.gif] [--png paths.png]

It starts `policy_node` as a subprocess (config/sim.yaml: use_sim_time, delta actions, control
rate = action rate = 20 Hz) and hosts the sim (`SimNode`) in this process. The sim steps at real
time x `--real-time-factor` and publishes /clock, so inference latency counts as it would on a
robot. Per episode: publish the instruction, call the node's `reset` service (flush its
buffer), reset the sim to the seed, step until a cube is lifted 4 cm (success if it is the
named one; a training episode also ends with its cube up) or 80 steps pass. `--swap-colours`
names the other cube in the instruction while success is still scored on the original one (the
language control: success should drop to about zero, and the other cube be lifted instead).
With `--attach` no subprocess is started (a launch file runs the node). The node is always
stopped, also on Ctrl-C.
"""

import argparse
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('ROS_DOMAIN_ID', str(os.getpid() % 100 + 1))
os.environ.setdefault('MUJOCO_GL', 'egl')

import numpy as np  # noqa: E402

from openvla_ros.demo.quickstart import policy_node_command, share_file  # noqa: E402

NAMESPACE = '/openvla'
READY_TIMEOUT_S = 120.0


def stop_process(process: subprocess.Popen, timeout_s: float = 20.0) -> int:
    """SIGINT, then SIGKILL after `timeout_s`; returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


class Evaluation:
    """The sim node, a reset client, an instruction publisher and a diagnostics listener."""

    def __init__(self, context, real_time_factor: float = 1.0, layout: str = 'random'):
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.parameter import Parameter
        from std_msgs.msg import String
        from std_srvs.srv import Trigger

        from openvla_ros.ros.sim_node import SimNode

        self.String, self.Trigger = String, Trigger
        from openvla_ros.sim.env import CubesEnv

        # The controller-facing outputs (config/sim.yaml), as MoveIt Servo and a forward
        # gripper controller would receive them.
        self.sim = SimNode(env=CubesEnv(layout=layout), context=context, namespace=NAMESPACE,
                           parameter_overrides=[Parameter('command_input',
                                                          value='eef_twist')])
        self.client_node = Node('sim_eval', context=context, namespace=NAMESPACE)
        self.instruction = self.client_node.create_publisher(String, 'instruction', 10)
        self.reset_client = self.client_node.create_client(Trigger, 'reset')
        self.diagnostics = {}
        self.client_node.create_subscription(DiagnosticArray, '/diagnostics',
                                             self._on_diagnostics, 10)
        self.period_s = self.sim.dt / real_time_factor
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.sim)
        self.executor.add_node(self.client_node)
        self._spinner = threading.Thread(target=self.executor.spin, daemon=True)
        self._spinner.start()
        self.step_seconds = []

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name.endswith('openvla policy'):
                self.diagnostics = {kv.key: kv.value for kv in status.values}

    def wait_until_ready(self, process=None, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Wait for the policy node's reset service and its camera and instruction readers."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f'policy_node exited with {process.returncode} while starting')
            if (self.reset_client.service_is_ready()
                    and self.sim._pub_image.get_subscription_count() > 0
                    and self.instruction.get_subscription_count() > 0):
                return
            time.sleep(0.2)
        raise RuntimeError(f'policy_node was not ready after {timeout_s:.0f} s')

    def reset_policy(self, timeout_s: float = 10.0) -> None:
        future = self.reset_client.call_async(self.Trigger.Request())
        deadline = time.monotonic() + timeout_s
        while not future.done():
            if time.monotonic() > deadline:
                raise RuntimeError('the policy node did not answer its reset service')
            time.sleep(0.005)
        if not future.result().success:
            raise RuntimeError(f'policy reset failed: {future.result().message}')

    def _step(self) -> None:
        start = time.perf_counter()
        self.sim.step()
        self.step_seconds.append(time.perf_counter() - start)

    def episode(self, seed: int, swap: bool = False, max_steps: int = 80,
                record: bool = False) -> dict:
        """Run one episode; return its outcome, path and timings."""
        from openvla_ros.sim.env import sample_task
        from openvla_ros.sim.language import other_colour, swap_colour
        from openvla_ros.sim.scene import COLOURS

        task = sample_task(seed, self.sim.env.layout)
        other = other_colour(task.colour)
        instruction = swap_colour(task.instruction) if swap else task.instruction
        self.instruction.publish(self.String(data=instruction))
        self.reset_policy()
        self.sim.reset(seed)
        env = self.sim.env
        applied_before = self.sim.commands_applied
        frames = [env.render()] if record else []
        path = [env.proprio()[:3].copy()]
        first_command_step = None
        start = deadline = time.monotonic()
        for step in range(1, max_steps + 1):
            deadline += self.period_s
            time.sleep(max(0.0, deadline - time.monotonic()))
            self._step()
            if first_command_step is None and self.sim.commands_applied > applied_before:
                first_command_step = step
            path.append(env.proprio()[:3].copy())
            if record:
                frames.append(env.render())
            if step % 10 == 0:   # in case the first one was lost (same text: no flush)
                self.instruction.publish(self.String(data=instruction))
            other_lifted = env.lifted(other)
            if env.success() or other_lifted:  # as a training episode, it ends with a cube up
                break
        return {
            'seed': seed, 'instruction': instruction, 'target': task.colour,
            'success': env.success(), 'steps': env.steps, 'other_lifted': other_lifted,
            'commands': self.sim.commands_applied - applied_before,
            'first_command_step': first_command_step,
            'wall_s': time.monotonic() - start, 'path': np.array(path),
            'cubes': {c: task.cube_xy[c] for c in COLOURS}, 'frames': frames,
        }

    def warm_up(self, seed: int, timeout_s: float = 30.0) -> float:
        """Step until the first command arrives (model warm-up); return the wall time it took."""
        from openvla_ros.sim.env import sample_task

        self.instruction.publish(self.String(
            data=sample_task(seed, self.sim.env.layout).instruction))
        self.reset_policy()
        self.sim.reset(seed)
        before, start = self.sim.commands_applied, time.monotonic()
        deadline = start
        while self.sim.commands_applied == before and time.monotonic() - start < timeout_s:
            deadline += self.period_s
            time.sleep(max(0.0, deadline - time.monotonic()))
            self._step()
        if self.sim.commands_applied == before:
            raise RuntimeError(f'no action from the policy node within {timeout_s:.0f} s')
        return time.monotonic() - start

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=5.0)
        self._spinner.join(timeout=5.0)
        self.sim.env.close()
        self.sim.destroy_node()
        self.client_node.destroy_node()


def _print_summary(results, evaluation, wall_s, warm_up_s, log) -> None:
    steps = sum(r['steps'] for r in results)
    commands = sum(r['commands'] for r in results)
    firsts = [r['first_command_step'] for r in results if r['first_command_step'] is not None]
    step_ms = 1000 * np.array(evaluation.step_seconds or [0.0])
    diagnostics = evaluation.diagnostics
    log('timing:')
    log(f'  wall {wall_s:.1f} s for {len(results)} episodes ({steps} steps, sim time '
        f'{steps * evaluation.sim.dt:.1f} s, {wall_s / max(1, len(results)):.2f} s/episode); '
        f'model warm-up {warm_up_s:.1f} s')
    log(f'  sim step (physics + 112 px render + publish): mean {step_ms.mean():.1f} ms, '
        f'p95 {np.percentile(step_ms, 95):.1f} ms')
    log(f'  steps driven by a fresh action: {commands}/{steps} '
        f'({100 * commands / max(1, steps):.0f} %); first action after '
        f'{np.mean(firsts) if firsts else float("nan"):.1f} steps on average')
    keys = ('engine.latency_p50_s', 'engine.latency_estimate_s', 'engine.chunks_received',
            'engine.chunks_discarded', 'engine.underruns', 'inference_s.total')
    found = {k: diagnostics[k] for k in keys if k in diagnostics}
    if found:
        log('  policy node: ' + ', '.join(f'{k} {v}' for k, v in found.items()))
    rejected = {k: v for k, v in diagnostics.items()
                if k.startswith('rejected.') and k != 'rejected.last_reason' and v != '0'}
    log(f'  rejected inputs: {rejected or "none"}; sim rejected commands: '
        f'{evaluation.sim.rejected or "none"}')


def evaluate(args, log=print) -> int:
    import rclpy

    from openvla_ros.sim.plots import write_gif, write_paths_png

    process = None
    if not args.attach:
        command = policy_node_command(args.checkpoint.resolve(), args.config, NAMESPACE,
                                      '-p', 'use_sim_time:=true', '--log-level', 'warn')
        process = subprocess.Popen(command)
    context = rclpy.Context()
    rclpy.init(context=context)
    evaluation = None
    results = []
    try:
        evaluation = Evaluation(context, args.real_time_factor, args.layout)
        log(f'waiting for policy_node ({"attached" if args.attach else args.checkpoint}) ...')
        evaluation.wait_until_ready(process)
        warm_up_s = evaluation.warm_up(args.seed)
        start = time.monotonic()
        for index in range(args.episodes):
            if process is not None and process.poll() is not None:
                raise RuntimeError(f'policy_node exited with {process.returncode}')
            result = evaluation.episode(args.seed + index, swap=args.swap_colours,
                                        record=bool(args.gif) and index == 0)
            results.append(result)
            wins = sum(r['success'] for r in results)
            outcome = 'success' if result['success'] else (
                'lifted the other cube' if result['other_lifted'] else 'failure')
            log(f'episode {index + 1:3d}/{args.episodes} seed {result["seed"]} '
                f'"{result["instruction"]}" ({result["target"]} cube scored): {outcome} after '
                f'{result["steps"]} steps, {result["wall_s"]:.1f} s  [{wins}/{len(results)}]')
            if index == 0 and args.gif:
                write_gif(args.gif, result['frames'], f'{result["instruction"]}: {outcome}')
        wall_s = time.monotonic() - start
        other = sum(r['other_lifted'] and not r['success'] for r in results)
        log(f'other cube lifted instead: {other}/{len(results)}')
        _print_summary(results, evaluation, wall_s, warm_up_s, log)
        if args.gif:
            log(f'wrote {args.gif}')
        png = args.png or (args.gif.with_name(args.gif.stem + '_paths.png') if args.gif else None)
        if png:
            write_paths_png(png, results)
            log(f'wrote {png}')
        log(f'success: {sum(r["success"] for r in results)}/{len(results)}')
        return 0
    finally:
        # the cleanup is bounded (stop_process kills after a timeout): a second Ctrl-C, or the
        # launch system's SIGINT after the episodes, must not cut it short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        exit_code = stop_process(process) if process is not None else 0
        if evaluation is not None:
            evaluation.close()
        rclpy.try_shutdown(context=context)
        if exit_code not in (0, -signal.SIGINT):
            log(f'policy_node exited with {exit_code}')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--checkpoint', type=pathlib.Path,
                        help='checkpoint directory (hub layout); not needed with --attach')
    parser.add_argument('--episodes', type=int, default=10)
    parser.add_argument('--seed', type=int, default=1_000_000,
                        help='first episode seed (1000000.. are the held-out initial states)')
    parser.add_argument('--swap-colours', action='store_true',
                        help='name the other cube in each instruction (the language control)')
    parser.add_argument('--gif', type=pathlib.Path, help='GIF of the first episode')
    parser.add_argument('--png', type=pathlib.Path,
                        help='EEF paths per instruction (default: next to --gif)')
    parser.add_argument('--report', type=pathlib.Path, help='also write the output here')
    parser.add_argument('--config', type=pathlib.Path, default=share_file('config', 'sim.yaml'))
    parser.add_argument('--real-time-factor', type=float, default=1.0,
                        help='sim speed relative to the wall clock (lower on a loaded machine)')
    parser.add_argument('--layout', choices=('random', 'slots'), default='random',
                        help="cube placement the checkpoint was trained on ('slots': fallback)")
    parser.add_argument('--attach', action='store_true',
                        help='use a policy_node that is already running (launch file)')
    args = parser.parse_args(argv)
    if args.episodes <= 0:
        parser.error('--episodes must be positive')
    if not args.attach and args.checkpoint is None:
        parser.error('--checkpoint is required (or --attach to a running policy_node)')
    if args.checkpoint is not None and not args.checkpoint.is_dir():
        parser.error(f'--checkpoint {args.checkpoint}: not a directory')
    if args.real_time_factor <= 0:
        parser.error('--real-time-factor must be positive')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    lines = []

    def log(text):
        print(text, flush=True)
        lines.append(text)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        code = evaluate(args, log)
    except KeyboardInterrupt:
        log('interrupted')
        code = 130
    except RuntimeError as exc:
        log(f'error: {exc}')
        code = 1
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text('\n'.join(lines) + '\n')
    return code


if __name__ == '__main__':
    sys.exit(main())
