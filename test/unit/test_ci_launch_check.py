""".ci/check_launch_tests.py: CI fails when a launch test was skipped or did not run."""

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
LAUNCH_FILES = sorted(p.stem for p in (ROOT / 'test' / 'launch').glob('test_*.py'))
PASSED = ''.join(f'<testcase classname="test.launch.{stem}" name="test_a" time="1"/>'
                 for stem in LAUNCH_FILES)
OTHER = '<testcase classname="test.unit.test_docs" name="test_x" time="0"/>'
MODULE_SKIPPED = (f'<testcase classname="" name="test.launch.{LAUNCH_FILES[0]}" time="0">'
                  '<skipped message="collection skipped">launch_testing is not installed'
                  '</skipped></testcase>')
CASE_SKIPPED = (f'<testcase classname="test.launch.{LAUNCH_FILES[-1]}" name="test_b" time="0">'
                '<skipped message="the ros2 command is not installed"/></testcase>')


def _check(tmp_path, testcases: str):
    report = tmp_path / 'junit.xml'
    report.write_text(f'<testsuites><testsuite name="pytest">{testcases}</testsuite>'
                      '</testsuites>')
    return subprocess.run([sys.executable, str(ROOT / '.ci' / 'check_launch_tests.py'),
                           str(report)], capture_output=True, text=True)


@pytest.mark.parametrize('testcases, ok, says', [
    (PASSED + OTHER, True, 'launch tests ran'),
    (PASSED + CASE_SKIPPED, False, 'the ros2 command is not installed'),
    (MODULE_SKIPPED + OTHER, False, 'launch_testing is not installed'),
    (OTHER, False, 'no test passed'),
])
def test_the_ci_check_fails_on_skipped_or_missing_launch_tests(tmp_path, testcases, ok, says):
    result = _check(tmp_path, testcases)
    assert (result.returncode == 0) == ok, result.stdout + result.stderr
    assert says in result.stdout + result.stderr
