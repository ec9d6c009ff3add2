#!/usr/bin/env bash
# The whole test suite, from a fresh machine: sets up ./.venv (tools/setup_venv.sh), keeps DDS on
# this host, and runs pytest. Extra arguments go to pytest (e.g. tools/run_tests.sh -k chunk).
set -euo pipefail
source "$(dirname "$0")/env.sh"
exec "$root/.venv/bin/python" -m pytest "$@"
