#!/usr/bin/env bash
# The quickstart, from a fresh machine: sets up ./.venv, writes a tiny OpenVLA-OFT checkpoint,
# starts policy_node on it and drives it over localhost-only DDS for 15 s (args go to the demo,
# e.g. tools/run_demo.sh --seconds 30).
set -euo pipefail
source "$(dirname "$0")/env.sh"
exec "$root/.venv/bin/python" -m openvla_ros.demo.quickstart "$@"
