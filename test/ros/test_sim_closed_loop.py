"""openvla-sim-eval: the installed policy_node drives the sim over DDS on sim time.

The plumbing tests run any checkpoint (a random tiny one); `test_shipped_checkpoint_*` are the
closed-loop quality gate on checkpoints/sim_cubes (>= 80 % over 10 held-out episodes) and its
language control (the swapped colour word: the other cube is lifted instead).
"""

import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml

pytestmark = pytest.mark.ros
pytest.importorskip('mujoco', reason='mujoco is not installed (tools/setup_venv.sh)')

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHIPPED = ROOT / 'checkpoints' / 'sim_cubes'
# A reason to skip the shipped-checkpoint gate while a checkpoint below the bar is shipped (None:
# the gate runs; OPENVLA_SIM_GATE=1 runs it anyway). The shipped one lifts the named cube in
# 47/50 held-out episodes (docs/SIM.md).
GATE_NOT_MET = None
EPISODE_LINE = re.compile(r'^episode +(\d+)/(\d+) seed (\d+) "([^"]+)" \((\w+) cube scored\): '
                          r'(success|failure|lifted the other cube) after (\d+) steps')


def _eval_command(*args):
    return [sys.executable, '-m', 'openvla_ros.ros.sim_eval', *map(str, args)]


def _leftover_processes(marker: str):
    """Return the processes whose command line mentions `marker` (our checkpoint path)."""
    found = []
    for proc in pathlib.Path('/proc').iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                cmdline = (proc / 'cmdline').read_bytes().replace(b'\0', b' ').decode()
            except OSError:
                continue
            if marker in cmdline:
                found.append(cmdline)
    return found


@pytest.fixture(scope='module')
def random_checkpoint(tmp_path_factory):
    """Write a random tiny two-camera checkpoint and a sim config feeding it the camera twice."""
    from openvla_ros.model.testing.factory import write_tiny_checkpoint

    directory = tmp_path_factory.mktemp('sim_eval')
    checkpoint = write_tiny_checkpoint(directory / 'tiny-l1', variant='l1')
    config = yaml.safe_load((ROOT / 'config' / 'sim.yaml').read_text())
    config['/**']['ros__parameters']['camera_topics'] = ['camera/image', 'camera/image']
    config_path = directory / 'sim_two_cameras.yaml'
    config_path.write_text(yaml.safe_dump(config))
    return checkpoint, config_path


def test_cli_rejects_bad_arguments(tmp_path):
    result = subprocess.run(_eval_command('--checkpoint', tmp_path / 'missing'),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and 'not a directory' in result.stderr
    result = subprocess.run(_eval_command('--episodes', '2'), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and '--checkpoint is required' in result.stderr


def test_eval_runs_the_real_node_and_writes_gif_and_paths(random_checkpoint, tmp_path):
    checkpoint, config = random_checkpoint
    gif = tmp_path / 'episode.gif'
    report = tmp_path / 'report.txt'
    result = subprocess.run(
        _eval_command('--checkpoint', checkpoint, '--config', config, '--episodes', 2,
                      '--seed', 1_000_000, '--swap-colours', '--gif', gif, '--report', report),
        capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    episodes = [EPISODE_LINE.match(line) for line in lines if line.startswith('episode ')]
    assert len(episodes) == 2 and all(episodes), lines
    for match in episodes:
        # swapped: the instruction names the other colour than the one scored
        assert match.group(5) not in match.group(4)
    wins = sum(m.group(6) == 'success' for m in episodes)
    assert lines[-1] == f'success: {wins}/2'
    assert any(line.startswith('timing:') for line in lines)
    driven = next(line for line in lines if 'steps driven by a fresh action' in line)
    fresh, total = map(int, re.search(r'action: (\d+)/(\d+)', driven).groups())
    assert total > 0 and fresh >= 0.5 * total, driven   # the node's actions really drove the arm
    from PIL import Image

    with Image.open(gif) as image:
        assert image.n_frames > 10
    assert (tmp_path / 'episode_paths.png').stat().st_size > 10_000
    assert report.read_text().splitlines()[-1] == lines[-1]
    assert _leftover_processes(str(checkpoint)) == []


def test_ctrl_c_ends_the_policy_node(random_checkpoint, tmp_path):
    checkpoint, config = random_checkpoint
    process = subprocess.Popen(
        _eval_command('--checkpoint', checkpoint, '--config', config, '--episodes', 50),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        for line in process.stdout:
            if line.startswith('episode   1/50') or time.monotonic() > deadline:
                break
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=60)[0]
    finally:  # on failure, its policy_node must not outlive it and drive later tests' sims
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
    assert process.returncode == 130 and 'interrupted' in output
    assert _leftover_processes(str(checkpoint)) == []


def _run_shipped(tmp_path, *extra):
    """Run 10 held-out episodes on the shipped checkpoint; return (successes, other lifted)."""
    if not SHIPPED.exists() and not SHIPPED.is_symlink():
        pytest.skip('checkpoints/sim_cubes is absent (it ships with the trained model)')
    if GATE_NOT_MET and os.environ.get('OPENVLA_SIM_GATE') != '1':
        pytest.skip(GATE_NOT_MET)
    result = subprocess.run(
        _eval_command('--checkpoint', SHIPPED, '--episodes', 10, '--seed', 1_000_000,
                      '--report', tmp_path / 'report.txt', *extra),
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # the node must also end cleanly on the eval's SIGINT (it logs the exit code otherwise)
    assert 'policy_node exited with' not in result.stdout, result.stdout[-3000:]
    lines = result.stdout.splitlines()
    wins, total = map(int, re.fullmatch(r'success: (\d+)/(\d+)', lines[-1]).groups())
    other = next(re.fullmatch(r'other cube lifted instead: (\d+)/(\d+)', line)
                 for line in lines if line.startswith('other cube lifted'))
    assert total == 10 and int(other.group(2)) == 10, result.stdout
    return wins, int(other.group(1)), result.stdout


def test_shipped_checkpoint_lifts_the_named_cube_in_closed_loop(tmp_path):
    """CI gate: >= 8/10 held-out episodes through the real node.

    Skipped where checkpoints/sim_cubes does not exist at all (a branch without the trained
    model), and while GATE_NOT_MET says the shipped model is below the bar; otherwise an
    existing but broken or empty directory, or a dangling link, fails.
    """
    wins, _, output = _run_shipped(tmp_path)
    assert wins >= 8, output


def test_shipped_checkpoint_lifts_the_cube_the_swapped_colour_word_names(tmp_path):
    """The language control: name the other cube and the arm lifts that one instead.

    Success on the originally named cube must fall to chance or below (<= 2/10), and the cube
    the instruction now names must be lifted in most episodes (>= 6/10), so the policy follows
    the word rather than some other cue.
    """
    wins, other, output = _run_shipped(tmp_path, '--swap-colours')
    assert wins <= 2 and other >= 6, output
