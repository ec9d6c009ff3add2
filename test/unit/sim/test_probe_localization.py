"""bench/probe_localization.py: its ridge probe, and a run on sim episodes and a checkpoint."""

import re

import numpy as np
import pytest

pytest.importorskip('mujoco', reason='the simulator (requirements/sim.txt) is not installed')


@pytest.fixture(scope='module')
def probe(bench_script):
    return bench_script('probe_localization')


def test_ridge_probe_finds_a_linear_signal_and_not_noise(probe):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(300, 50))
    targets = np.stack([features @ rng.normal(size=50), rng.normal(size=300)], axis=1)
    linear, noise = probe.ridge_correlation(features[:200], targets[:200], features[200:],
                                            targets[200:], penalty=1.0)
    assert linear > 0.99 and abs(noise) < 0.3


@pytest.mark.slow
def test_probe_runs_on_sim_episodes_and_a_trained_checkpoint(probe, tmp_path, capsys):
    from openvla_ros.sim.collect import collect
    from openvla_ros.training import cli

    collect(tmp_path / 'train', 6, seed=0, log=lambda *_: None)
    collect(tmp_path / 'heldout', 4, seed=1_000_000, log=lambda *_: None)
    assert cli.main(['--data', str(tmp_path / 'train'), '--output', str(tmp_path / 'run'),
                     '--architecture', 'test-tiny', '--film', '--steps', '2', '--batch-size',
                     '2', '--no-center-crop', '--no-progress']) == 0
    capsys.readouterr()
    assert probe.main(['--checkpoint', str(tmp_path / 'run' / 'checkpoint'), '--train-data',
                       str(tmp_path / 'train'), '--data', str(tmp_path / 'heldout'),
                       '--no-center-crop']) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:3]}
    assert sorted(rows) == ['patches', 'slots'] and all(len(v) == 4 for v in rows.values())
    assert re.search(r'policy +first action vs expert over \d+ steps: y -?\d\.\d\d  x', out)
