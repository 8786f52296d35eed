"""Module-level skip for the GPU tests: call `require(...)` at the top of a test module, before its imports."""

from __future__ import annotations

import pytest


def require(*also: str):
    """Skip the calling module unless TensorRT (the real package), cuda-python and `also` are importable.
    Returns the tensorrt module."""
    trt = pytest.importorskip("tensorrt")
    if not hasattr(trt, "Builder"):
        pytest.skip("TensorRT is not installed", allow_module_level=True)
    for name in also:
        pytest.importorskip(name)
    try:
        from engines.trt_runner import _cudart

        _cudart()
    except ImportError:
        pytest.skip("cuda-python is not installed", allow_module_level=True)
    return trt
