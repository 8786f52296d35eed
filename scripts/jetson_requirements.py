#!/usr/bin/env python3
"""The requirement set of the robot (an Orin on JetPack 6: aarch64, CPython 3.10), from pyproject.toml and
requirements/, with the environment markers evaluated for that target — pip evaluates markers against the
interpreter it runs in, so a resolution for another platform (`pip download --platform …`) needs them resolved first.

    python scripts/jetson_requirements.py [--set robot|jetson]    # one requirement per line

robot:  the project's dependencies + realsense (what the control / camera / navigation side needs)
jetson: robot + export + jetson + test extras + TensorRT-LLM 0.12-jetson's own requirements (requirements/)
Left out on purpose: cyclonedds (no aarch64 wheel on PyPI; built from source against the system CycloneDDS 0.10 by
scripts/setup.sh), the packages installed with --no-deps (unitree-sdk2py-dimos), tensorrt (JetPack's) and the
tensorrt_llm wheel itself (NVIDIA's Jetson wheel, installed --no-deps).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = {  # PEP 508 marker environment of an Orin on JetPack 6 (Ubuntu 22.04, CPython 3.10)
    "implementation_name": "cpython",
    "platform_machine": "aarch64",
    "platform_system": "Linux",
    "sys_platform": "linux",
    "os_name": "posix",
    "python_version": "3.10",
    "python_full_version": "3.10.12",
    "platform_python_implementation": "CPython",
}
NOT_FROM_PYPI = {"cyclonedds"}  # built from source on the robot (no aarch64 wheel)
PLATFORM_ARGS = (
    [arg for g in range(17, 36) for arg in ("--platform", f"manylinux_2_{g}_aarch64")]
    + ["--platform", "manylinux2014_aarch64", "--platform", "linux_aarch64"]
    + ["--python-version", "3.10", "--implementation", "cp", "--only-binary=:all:"]
)  # pip does not expand manylinux_2_X tags for --platform: list every one glibc 2.35 accepts (docs/jetson.md §6)


def _pyproject() -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        from pip._vendor import tomli as tomllib  # type: ignore[no-redef]
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _for_target(reqs: list[str]) -> list[str]:
    from packaging.requirements import Requirement

    out = []
    for line in reqs:
        r = Requirement(line)
        if r.marker is not None and not r.marker.evaluate(TARGET):
            continue
        if r.name.lower() in NOT_FROM_PYPI:
            continue
        r.marker = None
        out.append(str(r))
    return out


def _file(name: str) -> list[str]:
    lines = (ROOT / "requirements" / name).read_text().splitlines()
    return [ln.split("#", 1)[0].strip() for ln in lines if ln.split("#", 1)[0].strip()]


def requirements(which: str = "jetson") -> list[str]:
    project = _pyproject()["project"]
    extras = project["optional-dependencies"]
    reqs = list(project["dependencies"]) + extras["realsense"]
    if which == "jetson":
        reqs += extras["export"] + extras["jetson"] + extras["test"] + _file("trtllm-0.12-jetson.txt")
    return _for_target(reqs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", choices=("robot", "jetson"), default="jetson")
    ap.add_argument("--platform-args", action="store_true", help="print pip's --platform arguments instead")
    a = ap.parse_args(argv)
    print("\n".join(PLATFORM_ARGS if a.platform_args else requirements(a.set)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
