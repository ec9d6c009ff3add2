"""Lint as a test: ament_flake8 settings (setup.cfg [flake8]) plus pep257 docstrings."""

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_flake8_clean():
    pytest.importorskip('flake8', reason='flake8 is not installed (requirements/test.txt)')
    targets = ['openvla_ros', 'test', 'bench', 'launch', 'setup.py', '.ci']
    result = subprocess.run(
        [sys.executable, '-m', 'flake8', *[t for t in targets if (ROOT / t).exists()]],
        cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, 'flake8 found problems:\n' + result.stdout + result.stderr
