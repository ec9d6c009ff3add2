#!/usr/bin/env bash
# Creates (or refreshes) ./.venv for machines without a ROS distro: ROS 2 Kilted from PyPI wheels,
# the ML stack, test tools and this package. Idempotent: dependencies are reinstalled only when a
# requirements file changes; the package itself is reinstalled every time (a few seconds).
# Usage: tools/setup_venv.sh        (prints the line to source for AMENT_PREFIX_PATH)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3

if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating $venv"
  "$python" -m venv "$venv"
fi

# pip, minus the per-package notes about local index folders that lack a package.
pip_quiet() {
  "$venv/bin/pip" --quiet "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}

# launch, launch_ros, launch_testing and ros2cli are on no registry reachable here; where the
# shared wheels folder sits beside this checkout (CI, development), they come from it (see its
# README). Without it (a user's fresh clone) the launch tests skip with their reason.
wheels="$root/../shared/wheels"
stamp="$venv/.requirements.sha256"
want=$({ cat "$root"/requirements/*.txt; if [ -d "$wheels" ]; then ls "$wheels"; fi; } | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing dependencies (first run: a few minutes)"
  pip_quiet install --upgrade pip setuptools wheel
  pip_quiet install -r "$root/requirements/ros-kilted.txt" -r "$root/requirements/ml.txt" \
    -r "$root/requirements/test.txt" -r "$root/requirements/sim.txt"
  if [ -d "$wheels" ]; then
    echo "[setup] installing launch/launch_testing/ros2cli from $wheels"
    # --no-deps: their metadata names ROS packages by ROS names (rclpy, not ros-rclpy).
    pip_quiet install --no-deps "$wheels"/*.whl
    # Then pip reports the ROS names as missing; harmless (the shared README), so not shown.
    pip_quiet install -r "$root/requirements/launch.txt" \
      | { grep -v -e "dependency resolver does not" -e "which is not installed" || true; }
  fi
  echo "$want" > "$stamp"
fi

# Non-editable on purpose: pip then installs the data files (launch/, config/, ament index
# marker, lib/openvla_ros/policy_node) under the venv, as a ROS install would.
pip_quiet install --no-deps --no-build-isolation --force-reinstall "$root"
echo "[setup] ready: $venv (AMENT_PREFIX_PATH=$venv)"
