#!/usr/bin/env bash
# The quickstart, from a fresh machine: sets up ./.venv, writes a tiny OpenVLA-OFT checkpoint,
# starts policy_node on it and drives it over localhost-only DDS for 15 s (args go to the demo,
# e.g. tools/run_demo.sh --seconds 30).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tools/setup_venv.sh"
export AMENT_PREFIX_PATH="$root/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( $$ % 100 + 1 ))}
cd "$root"
exec "$root/.venv/bin/python" -m openvla_ros.demo.quickstart "$@"
