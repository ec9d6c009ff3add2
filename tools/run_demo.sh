#!/usr/bin/env bash
# The closed-loop demo, from a fresh machine: sets up ./.venv, then openvla-sim-eval starts the
# real policy_node on the shipped checkpoint (checkpoints/sim_cubes) and runs 10 held-out
# episodes of the MuJoCo tabletop over localhost-only DDS on sim time. Prints each outcome,
# `success: K/N` and a timing summary; writes artifacts/sim_demo/episode.gif and
# episode_paths.png. Extra args go to openvla-sim-eval, e.g. tools/run_demo.sh --episodes 50
# or --swap-colours (the language control). The node-only quickstart on a random tiny
# checkpoint is `.venv/bin/python -m openvla_ros.demo.quickstart`.
set -euo pipefail
source "$(dirname "$0")/env.sh"
export MUJOCO_GL=${MUJOCO_GL:-egl}
checkpoint="$root/checkpoints/sim_cubes"
if [ ! -f "$checkpoint/config.json" ]; then
  echo "no trained checkpoint at $checkpoint (it ships with the repository; see docs/SIM.md" \
       "for the command that trains it)" >&2
  exit 1
fi
exec "$root/.venv/bin/python" -m openvla_ros.ros.sim_eval --checkpoint "$checkpoint" \
  --episodes 10 --gif "$root/artifacts/sim_demo/episode.gif" "$@"
