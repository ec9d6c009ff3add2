"""bench/probe_grounding.py: its agreement measure, and a run on fresh scenes and a checkpoint."""

import re

import numpy as np
import pytest

pytest.importorskip('mujoco', reason='the simulator (requirements/sim.txt) is not installed')


@pytest.fixture(scope='module')
def probe(bench_script):
    return bench_script('probe_grounding')


def test_agreement_counts_signs_only_where_the_cube_is_clearly_to_one_side(probe):
    offsets = np.array([0.05, -0.05, 0.03, -0.03, 0.01, -0.01])
    following = np.array([0.5, -0.5, 0.4, -0.4, -0.3, 0.3])  # wrong only where |dy| < 2 cm
    correlation, sign = probe.agreement(following, offsets)
    assert sign == 1.0 and correlation > 0.5
    _, sign = probe.agreement(-following, offsets)
    assert sign == 0.0
    assert probe.agreement(np.zeros(6), offsets) == (0.0, 0.0)  # a constant policy: no signal


@pytest.mark.slow
def test_probe_runs_on_fresh_scenes_and_a_trained_checkpoint(probe, tmp_path, capsys):
    from openvla_ros.sim.collect import collect
    from openvla_ros.training import cli

    collect(tmp_path / 'train', 2, seed=0, log=lambda *_: None)
    assert cli.main(['--data', str(tmp_path / 'train'), '--output', str(tmp_path / 'run'),
                     '--architecture', 'test-tiny', '--steps', '1', '--batch-size', '2',
                     '--no-center-crop', '--no-progress']) == 0
    capsys.readouterr()
    assert probe.main(['--checkpoint', str(tmp_path / 'run' / 'checkpoint'), '--episodes', '6',
                       '--no-center-crop']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert 'over 6 held-out first frames' in lines[0]
    number = r' +-?\d\.\d{3}'
    assert re.fullmatch(r'own' + number * 4, lines[2]), lines
    assert re.fullmatch(r'swapped' + number * 4, lines[3]), lines
