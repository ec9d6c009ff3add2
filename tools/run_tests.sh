#!/usr/bin/env bash
# The whole test suite, from a fresh machine: sets up ./.venv (tools/setup_venv.sh), keeps DDS on
# this host, and runs pytest. Extra arguments go to pytest (e.g. tools/run_tests.sh -k chunk).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tools/setup_venv.sh"
export AMENT_PREFIX_PATH="$root/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
# DDS must never leave this machine; a per-run domain keeps parallel runs apart.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( $$ % 100 + 1 ))}
cd "$root"
exec "$root/.venv/bin/python" -m pytest "$@"
