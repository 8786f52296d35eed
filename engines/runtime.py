"""One runtime interface for tensor models (named inputs/outputs) across backends.

Backends: ONNX Runtime (engines/ort_runner.py; CPU, CUDA / TensorRT execution providers when present), TensorRT
(engines/trt_runner.py, imported lazily: absent on CPU machines) and a PyTorch reference (engines/torch_runner.py).
engines/loader.py picks one; engines are loaded through their manifest (engines/manifest.py), which refuses artifacts
built for another GPU / TensorRT / source.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

BACKENDS = ("onnxruntime", "tensorrt", "torch")
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str, ...]  # str = dynamic dimension
    dtype: np.dtype


class TensorModel(Protocol):
    backend: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def feed_errors(where: str | Path, specs: tuple[TensorSpec, ...], feeds: dict[str, np.ndarray]) -> list[str]:
    """Everything wrong with `feeds` for these input specs (names, ranks, fixed dims, dtypes), named clearly."""
    errors = []
    names = {s.name for s in specs}
    for extra in sorted(set(feeds) - names):
        errors.append(f"unexpected input {extra!r} (inputs: {sorted(names)})")
    for s in specs:
        if s.name not in feeds:
            errors.append(f"missing input {s.name!r}: expected {s.dtype.name}{list(s.shape)}")
            continue
        a = np.asarray(feeds[s.name])
        fixed_ok = len(a.shape) == len(s.shape) and all(
            not isinstance(d, int) or d < 0 or d == n for d, n in zip(s.shape, a.shape)
        )
        if not fixed_ok:
            errors.append(f"input {s.name!r}: expected shape {list(s.shape)}, got {list(a.shape)}")
        if a.dtype != s.dtype:
            errors.append(f"input {s.name!r}: expected dtype {s.dtype.name}, got {a.dtype.name}")
    return [f"{where}: {e}" for e in errors]


def check_feeds(where: str | Path, specs: tuple[TensorSpec, ...], feeds: dict[str, np.ndarray]) -> None:
    errors = feed_errors(where, specs, feeds)
    if errors:
        raise ValueError("\n".join(errors))
