"""The robot's requirement sets resolve for the Orin (aarch64, CPython 3.10, glibc 2.35) against PyPI, so a pin
conflict fails CI, not the robot. Resolution only (`pip install --dry-run --report`: wheel metadata, nothing
installed); NVIDIA's Jetson torch wheel, which is not on PyPI, stands in as a metadata-only stub with its exact
version. Skipped, with the reason, only when the package index cannot be reached."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "requirements" / "jetpack6-constraints.txt"
JETSON_TORCH = "2.5.0a0+872d972e41.nv24.08.17622132"

spec = importlib.util.spec_from_file_location("jetson_requirements", ROOT / "scripts" / "jetson_requirements.py")
jr = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
spec.loader.exec_module(jr)  # type: ignore[union-attr]


def _index_url() -> str:
    url = os.environ.get("PIP_INDEX_URL")
    if not url:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", "global.index-url"], capture_output=True, text=True
        )
        url = out.stdout.strip() if out.returncode == 0 else ""
    return (url or "https://pypi.org/simple").rstrip("/") + "/"


@pytest.fixture(scope="module")
def index() -> str:
    url = _index_url()
    try:
        urllib.request.urlopen(url + "pip/", timeout=15).read(1)
    except OSError as e:
        pytest.skip(f"package index {url} unreachable ({e}): aarch64 resolution not checked")
    return url


def _stub_torch(folder: Path) -> Path:
    """A metadata-only wheel named exactly as NVIDIA's JetPack 6.1 torch (its dependencies as torch 2.5 declares
    them, without the CUDA wheels a Jetson build does not pull)."""
    dist = f"torch-{JETSON_TORCH}.dist-info"
    files = {
        f"{dist}/METADATA": (
            f"Metadata-Version: 2.1\nName: torch\nVersion: {JETSON_TORCH}\nRequires-Python: >=3.8.0\n"
            + "".join(
                f"Requires-Dist: {r}\n"
                for r in ("filelock", "typing-extensions>=4.8.0", "sympy", "networkx", "jinja2", "fsspec")
            )
        ),
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: edge-vln-test\nRoot-Is-Purelib: false\n"
        "Tag: cp310-cp310-linux_aarch64\n",
    }
    record = "".join(
        f"{k},sha256={base64.urlsafe_b64encode(hashlib.sha256(v.encode()).digest()).rstrip(b'=').decode()},{len(v)}\n"
        for k, v in files.items()
    )
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"torch-{JETSON_TORCH}-cp310-cp310-linux_aarch64.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for k, v in files.items():
            z.writestr(k, v)
        z.writestr(f"{dist}/RECORD", record + f"{dist}/RECORD,,\n")
    return folder


def _resolve(tmp_path: Path, reqs: list[str], *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    req_file = tmp_path / "reqs.txt"
    req_file.write_text("\n".join(reqs) + "\n")
    report = tmp_path / "report.json"
    env = {**os.environ, "PIP_CONSTRAINT": "", "PIP_FIND_LINKS": ""}  # this machine's own pins do not apply
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--ignore-installed",
        "--disable-pip-version-check",
        "--report",
        str(report),
        "--target",
        str(tmp_path / "target"),
        *jr.PLATFORM_ARGS,
        "-c",
        str(CONSTRAINTS),
        *extra,
        "-r",
        str(req_file),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    return res, (json.loads(report.read_text()) if report.is_file() else {})


def _installed(report: dict) -> dict[str, dict]:
    return {i["metadata"]["name"].lower().replace("_", "-"): i for i in report["install"]}


@pytest.mark.timeout(300)
def test_jetson_set_resolves_for_aarch64_cp310(index, tmp_path):
    """The whole Orin set (it contains the robot set: one resolution, ≈ 30 s)."""
    assert set(jr.requirements("robot")) <= set(jr.requirements("jetson"))
    stubs = _stub_torch(tmp_path / "stubs")
    res, report = _resolve(tmp_path / "jetson", jr.requirements("jetson"), "--find-links", str(stubs))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    got = _installed(report)
    assert {"numpy", "onnxruntime", "pyrealsense2", "pyzmq", "pydantic", "accelerate", "polygraphy"} <= set(got)
    version = lambda n: got[n]["metadata"]["version"]  # noqa: E731
    assert version("torch").startswith("2.5.0a0+872d972e41.nv24") and got["torch"]["download_info"]["url"].startswith(
        "file:"
    )  # NVIDIA's wheel (the stub), never PyPI's aarch64 torch
    assert version("cuda-python").startswith("12.6.") and int(version("numpy").split(".")[0]) < 2
    major, minor, patch = (int(x) for x in version("transformers").split(".")[:3])
    assert (major, minor, patch) <= (4, 42, 4)
    assert version("nvidia-modelopt").startswith("0.15.")
    for name, item in got.items():  # every wheel runs on the Orin
        wheel = item["download_info"]["url"].rsplit("/", 1)[-1]
        assert "x86_64" not in wheel and "win" not in wheel and "macosx" not in wheel, wheel


@pytest.mark.timeout(120)
def test_a_pin_conflict_fails_the_resolution(index, tmp_path):
    """The test can fail: a requirement against the JetPack pins (numpy 2 vs TensorRT-LLM 0.12's numpy<2)."""
    res, _ = _resolve(tmp_path, ["numpy>=2"])
    assert res.returncode != 0 and "numpy" in (res.stdout + res.stderr)


def test_pins_agree_between_pyproject_and_the_constraints_file():
    """One place per fact, checked: the jetson extra's pins are the constraints file's."""
    from packaging.requirements import Requirement

    constraints = {Requirement(r).name: str(Requirement(r).specifier) for r in jr._file("jetpack6-constraints.txt")}
    for line in jr._pyproject()["project"]["optional-dependencies"]["jetson"]:
        r = Requirement(line)
        if str(r.specifier):
            assert constraints.get(r.name) == str(r.specifier), (r.name, constraints.get(r.name))
    reqs = jr.requirements("jetson")
    assert not any(Requirement(r).name == "torch" and "2.13" in r for r in reqs)  # x86 pin stays off the Orin
    assert not any(Requirement(r).name == "cyclonedds" for r in reqs)
