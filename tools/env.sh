# Sourced by the entry scripts: sets up ./.venv (tools/setup_venv.sh), points the ament index at
# it and keeps DDS on this host with a per-run domain. Defines $root.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/tools/setup_venv.sh"
export AMENT_PREFIX_PATH="$root/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
# DDS must never leave this machine; a per-run domain keeps parallel runs apart.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( $$ % 100 + 1 ))}
cd "$root"
