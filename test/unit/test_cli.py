"""`openvla-predict` end to end in a subprocess, against the in-process policy."""

import json
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from openvla_ros.model.testing.factory import tiny_checkpoint
from openvla_ros.policy import OpenVLAPolicy


def _run(*args):
    return subprocess.run([sys.executable, '-m', 'openvla_ros.cli', *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope='module')
def image_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp('images')
    rng = np.random.default_rng(5)
    arrays = [rng.integers(0, 256, (200, 300, 3), dtype=np.uint8) for _ in range(2)]
    paths = []
    for i, array in enumerate(arrays):
        paths.append(folder / f'camera{i}.png')
        Image.fromarray(array).save(paths[-1])
    return paths, arrays


def test_prints_the_same_chunk_as_the_policy(image_files):
    paths, arrays = image_files
    proprio = [0.01 * i for i in range(8)]
    result = _run('--checkpoint', tiny_checkpoint('l1'), '--image', paths[0], '--image',
                  paths[1], '--instruction', 'open the top drawer', '--proprio',
                  ','.join(map(str, proprio)), '--device', 'cpu')
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    policy = OpenVLAPolicy.from_pretrained(tiny_checkpoint('l1'), device='cpu', warmup=False)
    expected = policy.predict(arrays, 'open the top drawer', proprio=np.array(proprio))
    np.testing.assert_allclose(printed['actions'], expected.actions, rtol=0, atol=1e-12)
    assert printed['spec']['chunk_len'] == 8 and printed['spec']['unnorm_key']
    assert printed['timings_s']['total'] > 0


def test_wrong_image_count_fails_with_a_message(image_files):
    paths, _ = image_files
    result = _run('--checkpoint', tiny_checkpoint('l1'), '--image', paths[0], '--instruction',
                  'open the drawer', '--proprio', ','.join(['0'] * 8), '--device', 'cpu')
    assert result.returncode == 2
    assert 'expected 2 image(s)' in result.stderr
    assert result.stdout == ''


def test_missing_checkpoint_fails_with_a_message(tmp_path, image_files):
    paths, _ = image_files
    result = _run('--checkpoint', tmp_path / 'nope', '--image', paths[0], '--instruction',
                  'open the drawer', '--device', 'cpu')
    assert result.returncode == 2
    assert 'nope' in result.stderr
