"""DESIGN.md section 2: the dependency direction between the package's layers.

Each check imports a layer in a fresh interpreter and asserts which heavy modules it pulled in,
so a stray import anywhere in the chain is caught, not just in the file that declares it.
"""

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKG = ROOT / 'openvla_ros'

# layer -> modules that must not be loaded by importing it
FORBIDDEN_AT_RUNTIME = {
    'openvla_ros': ['rclpy', 'torch', 'numpy'],
    'openvla_ros.execution': ['rclpy', 'torch', 'transformers', 'openvla_ros.model'],
    'openvla_ros.normalization': ['rclpy', 'torch'],
    'openvla_ros.model': ['rclpy', 'openvla_ros.ros', 'openvla_ros.execution'],
    'openvla_ros.processing': ['rclpy', 'openvla_ros.ros', 'openvla_ros.execution'],
    'openvla_ros.policy': ['rclpy', 'openvla_ros.ros', 'openvla_ros.execution'],
    'openvla_ros.robot_io.gripper': ['rclpy', 'torch', 'openvla_ros.ros', 'openvla_ros.model'],
    'openvla_ros.robot_io.joints': ['rclpy', 'torch', 'openvla_ros.ros', 'openvla_ros.model'],
    'openvla_ros.robot_io.pose': ['rclpy', 'torch', 'openvla_ros.ros', 'openvla_ros.model'],
    'openvla_ros.robot_io.proprio': ['rclpy', 'torch', 'openvla_ros.ros', 'openvla_ros.model'],
    'openvla_ros.robot_io.trajectory': ['rclpy', 'torch', 'openvla_ros.ros',
                                        'openvla_ros.model'],
    'openvla_ros.robot_io.twist': ['rclpy', 'torch', 'openvla_ros.ros', 'openvla_ros.model'],
    'openvla_ros.training': ['rclpy', 'openvla_ros.ros', 'openvla_ros.execution', 'torch'],
    'openvla_ros.training.trainer': ['rclpy', 'openvla_ros.ros', 'openvla_ros.execution',
                                     'openvla_ros.policy'],
    'openvla_ros.sim': ['rclpy', 'torch', 'openvla_ros.ros', 'openvla_ros.model'],
    'openvla_ros.sim.collect': ['rclpy', 'torch', 'openvla_ros.ros', 'openvla_ros.model'],
}

# package directory / module -> package-internal or external modules its files may not import
FORBIDDEN_STATIC = {
    'model': ('rclpy', 'openvla_ros.ros', 'openvla_ros.execution', 'openvla_ros.policy',
              'sensor_msgs', 'std_msgs'),
    'execution': ('rclpy', 'torch', 'openvla_ros.model', 'openvla_ros.ros', 'openvla_ros.policy',
                  'time'),
    'normalization.py': ('rclpy', 'torch', 'openvla_ros.ros'),
    'processing.py': ('rclpy', 'openvla_ros.ros', 'openvla_ros.execution'),
    'policy.py': ('rclpy', 'openvla_ros.ros', 'openvla_ros.execution'),
    'robot_io': ('rclpy', 'torch', 'openvla_ros.ros', 'openvla_ros.model', 'openvla_ros.policy',
                 'openvla_ros.execution', 'sensor_msgs', 'std_msgs', 'geometry_msgs',
                 'trajectory_msgs', 'tf2_ros', 'control_msgs'),
    'training': ('rclpy', 'openvla_ros.ros', 'openvla_ros.execution', 'openvla_ros.policy',
                 'sensor_msgs', 'std_msgs'),
    'sim': ('rclpy', 'torch', 'openvla_ros.ros', 'openvla_ros.model', 'openvla_ros.policy',
            'openvla_ros.execution', 'sensor_msgs', 'std_msgs', 'geometry_msgs'),
}


def _module_exists(name):
    parts = name.split('.')
    path = ROOT.joinpath(*parts)
    return path.is_dir() or path.with_suffix('.py').is_file()


@pytest.mark.parametrize('layer', sorted(FORBIDDEN_AT_RUNTIME))
def test_importing_a_layer_does_not_load_forbidden_modules(layer):
    if not _module_exists(layer):
        pytest.skip(f'{layer} does not exist yet')
    forbidden = FORBIDDEN_AT_RUNTIME[layer]
    code = (
        'import importlib, sys\n'
        f'importlib.import_module({layer!r})\n'
        f'print(",".join(m for m in {forbidden!r} if m in sys.modules))\n'
    )
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ''
    assert loaded == '', f'importing {layer} loaded {loaded}'


def _imported_names(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


@pytest.mark.parametrize('part', sorted(FORBIDDEN_STATIC))
def test_source_files_respect_the_dependency_direction(part):
    target = PKG / part
    if not target.exists():
        pytest.skip(f'openvla_ros/{part} does not exist yet')
    files = sorted(target.rglob('*.py')) if target.is_dir() else [target]
    bad = []
    for path in files:
        for lineno, name in _imported_names(path):
            if any(name == f or name.startswith(f + '.') for f in FORBIDDEN_STATIC[part]):
                bad.append(f'{path.relative_to(ROOT)}:{lineno} imports {name}')
    assert bad == [], '\n'.join(bad)
