"""Fail CI when a launch test did not run: each test/launch/test_*.py must have passed cases.

    python .ci/check_launch_tests.py JUNIT_XML

Only called where ../shared/wheels exists, so launch_testing is installed and a skip means
something is broken (a missing wheel, a changed import), not a machine without ROS.
"""

import pathlib
import sys
import xml.etree.ElementTree as ElementTree

ROOT = pathlib.Path(__file__).resolve().parents[1]


def launch_module(testcase) -> str:
    """Return 'test.launch.<module>' for a launch testcase ('' for any other)."""
    classname, name = testcase.get('classname', ''), testcase.get('name', '')
    dotted = classname or name  # a module skipped at collection has no classname
    return '.'.join(dotted.split('.')[:3]) if dotted.startswith('test.launch.') else ''


def main(report: str) -> int:
    files = (ROOT / 'test' / 'launch').glob('test_*.py')
    expected = {f'test.launch.{path.stem}' for path in files}
    passed, problems = set(), []
    for testcase in ElementTree.parse(report).iter('testcase'):
        module = launch_module(testcase)
        if not module:
            continue
        outcome = {child.tag for child in testcase} & {'skipped', 'failure', 'error'}
        if 'skipped' in outcome:
            reason = testcase.find('skipped')
            problems.append(f'{module}::{testcase.get("name")} was skipped: '
                            f'{reason.get("message")} {reason.text or ""}'.strip())
        elif not outcome:
            passed.add(module)
    problems += [f'{module}: no test passed (not collected?)'
                 for module in sorted(expected - passed)
                 if not any(p.startswith(module) for p in problems)]
    for problem in problems:
        print(f'[ci] launch test not run: {problem}', file=sys.stderr)
    if not problems:
        print(f'[ci] launch tests ran: {", ".join(sorted(passed))}')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1]))
