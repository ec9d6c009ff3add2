"""Simulated control runs of the execution engine: sync vs async vs "first action only".

A fake robot tracks a smooth reference trajectory (a sinusoid per joint plus a binary gripper).
The fake policy sees the robot's task progress at the observation time and predicts the next
chunk of the reference with a per-chunk drift (so chunks disagree a little, as real ones do).
Task progress only advances while fresh actions are executed, so a mode that makes the arm wait
is slower rather than jumpy. The control loop ticks at 100 Hz with jitter; inference latency is
drawn from a log-normal distribution per scenario; only one inference runs at a time.

"first action only" is what other ROS wrappers do: execute one action per inference. It is the
engine in sync mode with `execute_steps=1`.

Run:  .venv/bin/python bench/bench_execution.py [--minutes 10] [--out-dir docs] [--no-write]
Writes docs/images/execution_timeline.png and the bench_execution section of
docs/PERFORMANCE.md.
"""

import argparse
from collections import deque
from dataclasses import dataclass, field
import os
import pathlib
import platform
import sys
import time

import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
for _path in (REPO_ROOT, REPO_ROOT / 'bench'):  # this checkout's openvla_ros, not an installed
    if str(_path) not in sys.path:             # copy; perf_doc when imported by the tests
        sys.path.insert(0, str(_path))

from openvla_ros.execution import ExecutionConfig, ExecutionEngine  # noqa: E402
import perf_doc  # noqa: E402, I100, I201

SECTION = 'bench_execution'
ACTION_DIM = 7
GRIPPER_DIM = 6
CONTROL_RATE_HZ = 100.0
TICK_JITTER_S = 0.0005  # standard deviation, clipped at 4 sigma
CAMERA_DELAY_MAX_S = 0.02  # age of the newest image when inference starts, uniform
CHUNK_DRIFT = 0.01  # per-chunk prediction drift reached at the chunk's end, standard deviation
CHUNK_NOISE = 0.002  # per-step prediction noise, standard deviation


@dataclass(frozen=True)
class Scenario:
    """A model/platform combination: chunk shape, action rate and inference latency."""

    name: str
    description: str
    chunk_steps: int
    action_rate_hz: float
    latency_mean_s: float
    latency_std_s: float

    @property
    def chunk_duration_s(self) -> float:
        return self.chunk_steps / self.action_rate_hz


SCENARIOS = (
    Scenario('l1', 'L1 head, LIBERO chunk (8 steps @ 20 Hz = 0.4 s), 75 +- 15 ms',
             8, 20.0, 0.075, 0.015),
    Scenario('diffusion', 'diffusion head, ALOHA chunk (25 steps @ 25 Hz = 1 s), 400 +- 40 ms',
             25, 25.0, 0.400, 0.040),
    Scenario('diffusion-short', 'diffusion head, LIBERO chunk (0.4 s), 400 +- 40 ms',
             8, 20.0, 0.400, 0.040),
)

MODES = {
    'first-action': dict(execution_mode='sync', execute_steps=1),
    'sync': dict(execution_mode='sync'),
    'async': dict(execution_mode='async'),
    'async+crossfade': dict(execution_mode='async', blend='crossfade'),
    'async+ensemble': dict(execution_mode='async', blend='ensemble'),
}


def make_config(scenario: Scenario, mode: str) -> ExecutionConfig:
    """Engine settings for a scenario and a mode name from MODES (defaults otherwise)."""
    return ExecutionConfig(action_rate_hz=scenario.action_rate_hz, control_rate_hz=CONTROL_RATE_HZ,
                           hold_dims=(GRIPPER_DIM,), **MODES[mode])


class Reference:
    """The task: joint i follows a_i sin(2 pi f_i phase + p_i); the gripper opens and closes."""

    def __init__(self, rng: np.random.Generator):
        self.amplitude = rng.uniform(0.2, 0.4, ACTION_DIM - 1)
        self.frequency = rng.uniform(0.2, 0.5, ACTION_DIM - 1)
        self.offset = rng.uniform(0.0, 2.0 * np.pi, ACTION_DIM - 1)

    def __call__(self, phase: np.ndarray) -> np.ndarray:
        """(T,) task phases in seconds -> (T, A) actions."""
        phase = np.asarray(phase, dtype=np.float64)[:, None]  # (T, 1)
        joints = self.amplitude * np.sin(2.0 * np.pi * self.frequency * phase + self.offset)
        gripper = np.where(np.sin(2.0 * np.pi * 0.1 * phase + 0.3) >= 0.0, 1.0, -1.0)
        return np.concatenate([joints, gripper], axis=1)  # (T, A)


def predict_chunk(reference, phase_obs, scenario, rng):
    """Fake policy: the next chunk of the reference from the observed phase, imperfectly."""
    steps = np.arange(1, scenario.chunk_steps + 1)  # step k targets the state after k+1 periods
    chunk = reference(phase_obs + steps / scenario.action_rate_hz)  # (H, A)
    drift = rng.normal(0.0, CHUNK_DRIFT, ACTION_DIM) * (steps / scenario.chunk_steps)[:, None]
    noise = rng.normal(0.0, CHUNK_NOISE, chunk.shape)
    chunk[:, :GRIPPER_DIM] += (drift + noise)[:, :GRIPPER_DIM]
    return chunk


def draw_latency(scenario, rng):
    """Log-normal latency with the scenario's mean and standard deviation."""
    sigma2 = np.log1p((scenario.latency_std_s / scenario.latency_mean_s) ** 2)
    mu = np.log(scenario.latency_mean_s) - sigma2 / 2.0
    return float(rng.lognormal(mu, np.sqrt(sigma2)))


@dataclass
class RunResult:
    """Metrics of one simulated run (and, on request, a trace of a time window)."""

    scenario: str
    mode: str
    duration_s: float
    ticks: int
    underruns: int
    gpu_busy_s: float
    chunks: int
    final_phase: float
    switch_jumps: list
    tick_jumps: list
    skipped_steps: int
    max_latency_s: float
    latencies: list
    tick_cost_s: float
    counters: dict
    trace: dict = field(default_factory=dict)

    @property
    def arm_idle_fraction(self) -> float:
        return self.underruns / self.ticks

    @property
    def gpu_busy_fraction(self) -> float:
        return self.gpu_busy_s / self.duration_s

    @property
    def task_speed(self) -> float:
        """Task progress per second: 1.0 when the arm never waits."""
        return self.final_phase / self.duration_s


def simulate(scenario: Scenario, mode: str, duration_s: float, seed: int = 0,
             trace_window=None) -> RunResult:
    """Run the engine against the fake robot and policy for `duration_s` simulated seconds.

    Args:
        scenario: chunk shape, rates and latency distribution.
        mode: a key of MODES.
        duration_s: simulated time.
        seed: seeds the trajectory, the latencies, the jitter and the prediction errors.
        trace_window: optional (start_s, end_s); ticks and chunks inside it are recorded.
    """
    rng = np.random.default_rng(seed)
    reference = Reference(rng)
    engine = ExecutionEngine(make_config(scenario, mode))
    rate = scenario.action_rate_hz
    n_ticks = int(round(duration_s * CONTROL_RATE_HZ))
    jitter = np.clip(rng.normal(0.0, TICK_JITTER_S, n_ticks), -4 * TICK_JITTER_S,
                     4 * TICK_JITTER_S)
    phase, moving = 0.0, False
    history = deque([(-np.inf, 0.0, False)], maxlen=16)  # (tick time, phase, moving)
    chunk_phase = {}  # t_obs -> observed phase
    pending = None  # (arrival time, actions, t_obs)
    gpu_busy_s, tick_cost_s, latencies = 0.0, 0.0, []
    previous_action, switch_jumps, tick_jumps = None, [], []
    trace = {'t': [], 'value': [], 'fresh': [], 'switch': [], 'chunks': []}
    chunk_actions, traced = {}, set()  # for the trace only
    used_steps = engine.config.execute_steps or scenario.chunk_steps
    for i in range(n_ticks):
        now = i / CONTROL_RATE_HZ + jitter[i]
        if pending is not None and pending[0] <= now:
            engine.push_chunk(pending[1], pending[2], pending[0])
            pending = None
        start = time.perf_counter()
        result = engine.tick(now)
        tick_cost_s += time.perf_counter() - start
        moving = result is not None and result.fresh
        if result is not None:
            phase_obs = chunk_phase[result.t_obs]
            if result.fresh:
                phase = phase_obs + result.position / rate
            else:
                phase = phase_obs + (result.step + 1) / rate  # the arm reached the held target
            if previous_action is not None:
                jump = float(np.max(np.abs(result.action[:GRIPPER_DIM]
                                           - previous_action[:GRIPPER_DIM])))
                (switch_jumps if result.switched else tick_jumps).append(jump)
            previous_action = result.action
        history.append((now, phase, moving))
        if trace_window is not None and trace_window[0] <= now < trace_window[1]:
            trace['t'].append(now)
            trace['value'].append(np.nan if result is None else result.action[0])
            trace['fresh'].append(result is not None and result.fresh)
            trace['switch'].append(result is not None and result.switched)
            if result is not None and result.fresh and result.chunk_id not in traced:
                traced.add(result.chunk_id)
                step0_due = now - result.position / rate  # re-based start in sync mode
                trace['chunks'].append((step0_due, chunk_actions[result.t_obs][:used_steps, 0]))
        if pending is None and engine.needs_inference(now):
            engine.inference_started(now)
            t_obs = max(now - rng.uniform(0.0, CAMERA_DELAY_MAX_S), 0.0)
            t_tick, phase_tick, moved = next(h for h in reversed(history) if h[0] <= t_obs)
            phase_at_obs = phase_tick + (t_obs - t_tick if moved else 0.0)
            latency = draw_latency(scenario, rng)
            actions = predict_chunk(reference, phase_at_obs, scenario, rng)
            chunk_phase[t_obs] = phase_at_obs
            if trace_window is not None:
                chunk_actions[t_obs] = actions
            pending = (now + latency, actions, t_obs)
            gpu_busy_s += min(latency, duration_s - now)
            latencies.append(latency)
    return RunResult(
        scenario=scenario.name, mode=mode, duration_s=duration_s, ticks=n_ticks,
        underruns=engine.counters.underruns, gpu_busy_s=gpu_busy_s, chunks=len(latencies),
        final_phase=phase, switch_jumps=switch_jumps, tick_jumps=tick_jumps,
        skipped_steps=engine.counters.skipped_stale_steps, max_latency_s=max(latencies),
        latencies=latencies,
        tick_cost_s=tick_cost_s / n_ticks, counters=engine.counters.as_dict(), trace=trace)


def latency_bound_s(scenario: Scenario) -> float:
    """Largest latency async can absorb with one inference at a time (see the section text)."""
    return (scenario.chunk_duration_s - 1.0 / CONTROL_RATE_HZ - CAMERA_DELAY_MAX_S) / 2.0


def reading(results) -> str:
    """Sentences on the async runs that follow from the numbers of this run."""
    by_key = {(r.scenario, r.mode): r for r in results}
    lines = []
    for scenario in SCENARIOS:
        run = by_key[(scenario.name, 'async')]
        bound = latency_bound_s(scenario)
        over = sum(latency > bound for latency in run.latencies)
        lines.append(
            f'`{scenario.name}`: {over} of {run.chunks} inferences took longer than '
            f'{bound * 1e3:.0f} ms; async had {run.underruns} underrun ticks (sync: '
            f'{by_key[(scenario.name, "sync")].underruns}).')
    plain, faded = by_key[('l1', 'async')], by_key[('l1', 'async+crossfade')]
    lines.append(
        f'Crossfade cut the largest `l1` switch jump from {max(plain.switch_jumps):.4f} to '
        f'{max(faded.switch_jumps):.4f}.')
    return '\n'.join(f'- {line}' for line in lines)


def _percentile(values, q):
    return float(np.percentile(values, q)) if len(values) else float('nan')


def results_table(results) -> str:
    """Markdown table, one row per run."""
    lines = [
        '| scenario | mode | underrun ticks | arm idle | GPU busy | chunks/s | task speed '
        '| switch jump p95 / max | per-tick motion p95 | skipped steps/chunk | max latency '
        '| tick() cost |',
        '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ]
    for r in results:
        lines.append(
            f'| {r.scenario} | {r.mode} | {r.underruns} | {100 * r.arm_idle_fraction:.1f} % '
            f'| {100 * r.gpu_busy_fraction:.0f} % | {r.chunks / r.duration_s:.2f} '
            f'| {r.task_speed:.2f} | {_percentile(r.switch_jumps, 95):.4f} / '
            f'{max(r.switch_jumps, default=float("nan")):.4f} '
            f'| {_percentile(r.tick_jumps, 95):.4f} '
            f'| {r.skipped_steps / max(r.chunks, 1):.2f} | {1e3 * r.max_latency_s:.0f} ms '
            f'| {1e6 * r.tick_cost_s:.0f} us |')
    return '\n'.join(lines)


def plot_timeline(traces, scenario, path):
    """One action dimension over a few seconds per mode: chunks, switches and underruns."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(traces), 1, figsize=(10, 2.4 * len(traces)), sharex=True)
    for ax, (mode, trace) in zip(np.atleast_1d(axes), traces.items()):
        t = np.asarray(trace['t'])
        value = np.asarray(trace['value'])
        fresh = np.asarray(trace['fresh'])
        for k, (step0_due, chunk) in enumerate(trace['chunks']):
            due = step0_due + np.arange(len(chunk)) / scenario.action_rate_hz
            ax.plot(due, chunk, 'o:', ms=2.5, lw=0.8, color=f'C{k % 8 + 1}', alpha=0.6)
        ax.step(t, value, where='post', color='k', lw=1.2, label='published (dim 0)')
        for t_switch in t[np.asarray(trace['switch'])]:
            ax.axvline(t_switch, color='0.6', ls='--', lw=0.6)
        starved = ~fresh
        ax.plot(t[starved], np.where(np.isnan(value[starved]), np.nanmin(value), value[starved]),
                '|', color='red', ms=6, label='underrun (hold)')
        ax.set_title(f'{mode}: {int(starved.sum())} underrun ticks in this window', fontsize=9)
        ax.set_ylabel('action[0]')
        ax.grid(alpha=0.3)
    axes[0].legend(loc='upper right', fontsize=7)
    axes[-1].set_xlabel('time (s); dotted: each chunk at its due times; dashed: switch')
    fig.suptitle(f'{scenario.description}, control at {CONTROL_RATE_HZ:.0f} Hz', fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    return (f'{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, '
            f'Python {platform.python_version()}, numpy {np.__version__}')


def section_body(results, minutes, seed, command, elapsed_s) -> str:
    """Markdown for the bench_execution section of PERFORMANCE.md."""
    config = ExecutionConfig()
    quantile = f'p{config.latency_quantile * 100:.0f}'
    scenario_lines = '\n'.join(f'- `{s.name}`: {s.description}' for s in SCENARIOS)
    return f'''## Chunk execution (bench/bench_execution.py)

Each run simulates {minutes:g} minutes: a control timer at {CONTROL_RATE_HZ:.0f} Hz (jitter sigma
{TICK_JITTER_S * 1e3:.1f} ms), log-normal inference latency, one inference at a time, an image
at most {CAMERA_DELAY_MAX_S * 1e3:.0f} ms old when inference starts. The fake policy predicts a
reference trajectory from the arm's task progress at the observation time, with a per-chunk
drift, so consecutive chunks disagree a little. Task progress only advances while the arm gets
fresh actions. Engine defaults: latency {quantile} over the last {config.latency_window} chunks
plus a {config.latency_margin_s * 1e3:.0f} ms margin, linear interpolation, gripper (dim 6)
held, underrun policy `hold`, `resume_after_stall`.

{scenario_lines}

Modes: `first-action` is what other ROS wrappers do, one action per inference (sync with
`execute_steps=1`); `sync` is upstream (execute the chunk, then query and hold); `async` is the
node's default, with `blend` none, crossfade (3 steps) or ensemble (ACT weights, decay 0.01).

{results_table(results)}

- underrun ticks: ticks without a fresh action (the arm holds); arm idle is their share.
- GPU busy: share of the time an inference runs. task speed: task progress per second, 1.0
  when the arm never waits.
- switch jump: largest change of a joint action on the tick a new chunk takes over (the
  ordinary per-tick motion is included; compare with the per-tick motion column), in action
  units (rad).
- max latency: the slowest inference drawn in the run.
- tick() cost: mean time of `ExecutionEngine.tick` on this machine.

The async target of DESIGN.md section 7 ("zero underruns whenever latency stays below chunk
duration minus margin") needs a stronger premise with one inference at a time: the next chunk
can only be requested once the previous one arrived. Underruns are ruled out while
`2 * latency + control period + image age <= chunk duration` and a latency exceeds the
{quantile} estimate by less than the margin minus one control period (a sufficient condition:
an underrun also needs a slow inference right after one requested on arrival). Far beyond that
bound async is no better than sync; use sync or a longer chunk for such a model.

{reading(results)}

![execution timeline](images/execution_timeline.png)

Command: `{command}` (seed {seed}, {elapsed_s:.0f} s wall time for all runs).
Machine: {machine_description()}.'''


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--minutes', type=float, default=10.0, help='simulated minutes per run')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out-dir', type=pathlib.Path, default=REPO_ROOT / 'docs',
                        help='where PERFORMANCE.md and images/ go')
    parser.add_argument('--no-write', action='store_true', help='print the table only')
    args = parser.parse_args(argv)
    duration_s = 60.0 * args.minutes
    window = (min(30.0, duration_s / 2), min(30.0, duration_s / 2) + 3.0)
    started = time.perf_counter()
    results, traces = [], {}
    for scenario in SCENARIOS:
        for mode in MODES:
            trace_window = window if scenario.name == 'l1' else None
            result = simulate(scenario, mode, duration_s, args.seed, trace_window)
            results.append(result)
            if trace_window is not None and mode in ('first-action', 'sync', 'async+crossfade'):
                traces[mode] = result.trace
            print(f'{scenario.name:16s} {mode:16s} underruns {result.underruns:6d}  '
                  f'max latency {result.max_latency_s * 1e3:5.0f} ms', flush=True)
    elapsed_s = time.perf_counter() - started
    print(results_table(results))
    if not args.no_write:
        plot_timeline(traces, SCENARIOS[0], args.out_dir / 'images' / 'execution_timeline.png')
        command = '.venv/bin/python bench/bench_execution.py'
        if args.minutes != 10.0:
            command += f' --minutes {args.minutes:g}'
        perf_doc.write_section(args.out_dir / 'PERFORMANCE.md', SECTION,
                               section_body(results, args.minutes, args.seed, command,
                                            elapsed_s))
    return 0


if __name__ == '__main__':
    sys.exit(main())
