"""Module-level gate for the GPU tests: call `require(...)` at the top of a test module, before its imports.

Skip only where the platform clearly lacks the GPU stack (no Jetson L4T release file, no NVIDIA driver), saying so.
Where the stack should be there — a Jetson, or a machine with an NVIDIA driver — a package that does not import is a
FAILURE naming the fix, never a skip: on the Orin a broken TensorRT-LLM install must not pass as "skipped".
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

NO_GPU_STACK = "no NVIDIA GPU stack on this machine (no /etc/nv_tegra_release, no NVIDIA driver): GPU tests not run"


def gpu_platform(root: str | Path = "/") -> str | None:
    """Why this machine must run the GPU tests, or None when it clearly cannot."""
    root = Path(root)
    if (root / "etc/nv_tegra_release").is_file():
        return "this is a Jetson (L4T)"
    if (root / "proc/driver/nvidia/version").is_file() or (root / "dev/nvidia0").exists():
        return "an NVIDIA driver is loaded"
    return None


def missing(names: tuple[str, ...]) -> list[str]:
    """`name: error` for each module that does not import (the real TensorRT, not a namespace folder)."""
    problems = []
    for name in names:
        try:
            mod = importlib.import_module(name)
            if name == "tensorrt" and not hasattr(mod, "Builder"):
                raise ImportError("a folder named tensorrt shadows the package (no Builder)")
        except Exception as e:  # ImportError, or what a broken install raises while importing
            problems.append(f"{name}: {type(e).__name__}: {e}")
    return problems


def require(*also: str):
    """Skip the calling module on a machine without a GPU stack; fail it where one should work but TensorRT,
    cuda-python or `also` does not import. Returns the tensorrt module."""
    why = gpu_platform()
    if why is None:
        pytest.skip(NO_GPU_STACK, allow_module_level=True)
    names = ("tensorrt", *also)
    problems = missing(names)
    try:
        from engines.trt_runner import _cudart

        _cudart()
    except ImportError as e:
        problems.append(f"cuda-python: {e}")
    if problems:
        pytest.fail(
            f"{why}, but the GPU stack does not import:\n  " + "\n  ".join(problems) + "\n(run scripts/setup.sh; "
            "`edge doctor` names each fix)",
            pytrace=False,
        )
    return importlib.import_module("tensorrt")
