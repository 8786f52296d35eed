"""cuda-python, imported lazily: the runtime module under either of its layouts, and the machine's CUDA driver / GPU.

Facts (docs/jetson.md §3): cuda-python 12.6.1 moved `cuda.cudart` to `cuda.bindings.runtime` (old path forwarded with
a deprecation warning); cuda-bindings 13.0 removed `cuda.cudart`. Without a driver, 12.6.x raises RuntimeError and
12.9 / 13.x return error codes.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def load_cudart() -> Any:
    """cuda-python's runtime module: `cuda.bindings.runtime` (cuda-python ≥ 12.6.1), else the older `cuda.cudart`
    (removed in cuda-bindings 13.0; docs/jetson.md §3). None when cuda-python is not installed."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            return None
    return cudart


def detect_cuda(cudart: Any) -> dict[str, Any]:
    """The machine's CUDA driver version and GPU 0, through cuda-python; {} when there is no usable driver or GPU.

    cuda-python 12.6.x raises RuntimeError ("Failed to dlopen libcuda.so.1", "Function cuInit not found") where no
    driver is installed, 12.9 / 13.x return an error code instead: both mean "no GPU" here (docs/jetson.md §3).
    `cuda` is cudaDriverGetVersion() (12060 → "12.6"), not cudaRuntimeGetVersion(), which is the bindings' own."""
    ok = cudart.cudaError_t.cudaSuccess
    try:
        err, driver = cudart.cudaDriverGetVersion()
        if err != ok or not driver:
            return {}
        err, count = cudart.cudaGetDeviceCount()
        if err != ok or not count:
            return {}
        err, props = cudart.cudaGetDeviceProperties(0)
        if err != ok:
            return {}
    except RuntimeError as e:
        log.info("cuda-python found no usable CUDA driver: %s", e)
        return {}
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return {
        "cuda": f"{driver // 1000}.{driver % 1000 // 10}",
        "gpu_name": name.rstrip("\x00"),
        "compute_capability": f"{props.major}.{props.minor}",
    }
