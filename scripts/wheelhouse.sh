#!/usr/bin/env bash
# An offline wheelhouse for a robot without internet (make wheelhouse), built on any connected machine:
# every wheel the Orin installs (aarch64, CPython 3.10, JetPack 6), NVIDIA's Jetson torch / TensorRT-LLM wheels from
# EDGE_JETSON_WHEELS, and the CycloneDDS binding's sdist (built on the robot against CycloneDDS 0.10).
#   EDGE_JETSON_WHEELS=/path/to/jetson-wheels scripts/wheelhouse.sh [OUT_DIR]
# Then on the robot: EDGE_WHEELHOUSE=OUT_DIR scripts/setup.sh    (installs with --no-index)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-wheelhouse/jp6-cp310-aarch64}
PY=${PYTHON:-python3}
: "${EDGE_JETSON_WHEELS:?set it to the folder or index URL holding the NVIDIA Jetson torch and TensorRT-LLM wheels}"
mkdir -p "$OUT"
case "$EDGE_JETSON_WHEELS" in
  http://*|https://*) src=(--extra-index-url "$EDGE_JETSON_WHEELS") ;;
  *) src=(--find-links "$EDGE_JETSON_WHEELS") ;;
esac
mapfile -t platform < <("$PY" scripts/jetson_requirements.py --platform-args)
reqs=$(mktemp); trap 'rm -f "$reqs"' EXIT
"$PY" scripts/jetson_requirements.py --set jetson > "$reqs"
dl() { PIP_CONSTRAINT= "$PY" -m pip download --disable-pip-version-check -q --dest "$OUT" "$@"; }
dl "${platform[@]}" "${src[@]}" -c requirements/jetpack6-constraints.txt -r "$reqs"
dl "${platform[@]}" "${src[@]}" --no-deps "tensorrt_llm==0.12.0"
dl "${platform[@]}" --no-deps "unitree-sdk2py-dimos==1.0.3" setuptools wheel pip
# The CycloneDDS binding's sdist, as a file: `pip download` would prepare its metadata, which needs the C library.
"$PY" - "$OUT" <<'EOF_PY'
import json, sys, urllib.request
index = "https://pypi.org/simple/cyclonedds/"  # the simple index (PEP 691 JSON): what pip itself reads
req = urllib.request.Request(index, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
files = json.load(urllib.request.urlopen(req, timeout=60))["files"]
sdist = next(f for f in files if f["filename"] == "cyclonedds-0.10.2.tar.gz")
urllib.request.urlretrieve(sdist["url"], f"{sys.argv[1]}/{sdist['filename']}")
EOF_PY
echo "wheelhouse: $(ls "$OUT" | wc -l) files, $(du -sh "$OUT" | cut -f1) in $OUT"
