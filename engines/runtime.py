"""One runtime interface for tensor models (named inputs/outputs) across backends.

Backends: ONNX Runtime here and on CI; TensorRT on the Jetson (added behind the same interface, imported lazily).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str, ...]   # str = dynamic dimension
    dtype: np.dtype


class TensorModel(Protocol):
    backend: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
              "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_}


class OrtModel:
    """ONNX Runtime, CPU by default; CUDA / TensorRT execution providers when present and asked for."""
    backend = "onnxruntime"

    def __init__(self, path: str | Path, providers: list[str] | None = None, threads: int = 1):
        import onnxruntime as ort
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        available = ort.get_available_providers()
        chosen = [p for p in (providers or ["CPUExecutionProvider"]) if p in available] or ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=chosen)
        self.path = path
        self.inputs = tuple(self._spec(a) for a in self.session.get_inputs())
        self.outputs = tuple(self._spec(a) for a in self.session.get_outputs())
        self._output_names = [o.name for o in self.outputs]

    @staticmethod
    def _spec(arg) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) else str(d) for d in arg.shape)
        return TensorSpec(arg.name, shape, np.dtype(_ORT_TYPES.get(arg.type, np.float32)))

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._output_names, self.session.run(self._output_names, feeds)))


def load_tensor_model(path: str | Path, backend: str = "onnxruntime") -> TensorModel:
    if backend == "onnxruntime":
        return OrtModel(path)
    raise ValueError(f"backend {backend!r} is not available on this machine (known: onnxruntime)")
