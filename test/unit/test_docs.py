"""Docs stay true to the code: every node parameter is documented with its default."""

import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_node_parameters_are_documented_with_their_defaults():
    pytest.importorskip('rcl_interfaces', reason='ROS message packages are not installed')
    from openvla_ros.ros.params import PARAMETERS

    doc = (ROOT / 'docs' / 'NODE.md').read_text()
    rows = {line.split('|')[1].strip(' `'): line for line in doc.splitlines()
            if line.startswith('| `')}
    assert sorted(rows) == sorted(PARAMETERS), 'docs/NODE.md parameter table is out of date'
    for name, (default, *_rest) in PARAMETERS.items():
        assert f'`{default!r}`' in rows[name], f'{name}: default {default!r} not in docs/NODE.md'


def test_config_files_only_set_declared_parameters():
    pytest.importorskip('rcl_interfaces', reason='ROS message packages are not installed')
    import yaml

    from openvla_ros.ros.params import PARAMETERS

    for path in sorted((ROOT / 'config').glob('*.yaml')):
        params = yaml.safe_load(path.read_text())['/**']['ros__parameters']
        unknown = sorted(set(params) - set(PARAMETERS))
        assert unknown == [], f'{path.name} sets undeclared parameters {unknown}'
