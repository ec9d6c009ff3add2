"""bench/gpu_suite.py --smoke: the GPU suite's code runs on the CPU with the tiny model.

Every configuration and weight kind the CPU can run gets a latency and an exactness check, the
rest a stated reason; the table lands in the given document (a temp copy here, never
docs/PERFORMANCE.md) with the device name. The full-size GPU numbers come from running the
script on a GPU, not from a test.
"""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

pytest.importorskip('torchao', reason='the suite quantizes with torchao')


@pytest.fixture(scope='module')
def suite(bench_script):
    return bench_script('gpu_suite')


def _table(text):
    return [[cell.strip() for cell in line.strip('|').split('|')]
            for line in text.splitlines() if line.startswith('| ') and '---' not in line]


def test_smoke_run_measures_every_cpu_variant_and_writes_the_table(suite, tmp_path):
    doc = tmp_path / 'PERFORMANCE.md'
    original = (ROOT / 'docs' / 'PERFORMANCE.md').read_text()
    doc.write_text(original)
    assert suite.main(['--smoke', '--doc', str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith(original.split('<!-- gpu_suite:begin -->')[0])  # others kept
    section = text.split('<!-- gpu_suite:begin -->')[1].split('<!-- gpu_suite:end -->')[0]
    assert 'Device: **CPU' in section
    header, *rows = _table(section)
    assert header[:6] == ['configuration', 'weights', 'eager', 'graphs', 'compile',
                          'compile+graphs']
    assert len(rows) == len(suite.SETUPS) * 3
    latency = re.compile(r'^\d+\.\d / \d+\.\d( \((\d|\.|e|-)+\))?$')
    for row in rows:
        name, weights, eager, graphs, compiled, both = row[:6]
        assert name in {s.name for s in suite.SETUPS}
        if weights == 'int4':
            assert {eager, graphs, compiled, both} == {'n/a (CUDA only)'}
            continue
        assert latency.match(eager) and latency.match(graphs), row
        assert compiled == both == 'not run (smoke)'
        assert 'FAIL' not in ' '.join(row)
        deviation = float(graphs.split('(')[1].rstrip(')'))  # vs eager in full precision
        assert deviation <= float(row[6]), row  # within the stated tolerance
        assert row[9] != '-'  # compute floor known


def test_a_deviation_above_tolerance_fails_the_run(suite, tmp_path, monkeypatch):
    monkeypatch.setattr(suite, 'TOLERANCE', {key: 0.0 for key in suite.TOLERANCE})
    doc = tmp_path / 'doc.md'
    code = suite.main(['--smoke', '--setups', '0', '--modes', 'eager',
                       '--quantizations', 'none,int8', '--doc', str(doc)])
    assert code == 1
    (int8_row,) = [r for r in _table(doc.read_text())[1:] if r[1] == 'int8']
    assert 'FAIL' in int8_row[2]
