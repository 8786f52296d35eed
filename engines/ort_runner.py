"""ONNX Runtime backend of the tensor-model interface (engines.runtime)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from engines.runtime import TensorSpec, check_feeds

# ONNX Runtime's telemetry opt-out, set before ORT is first imported (it reads it when its environment is created).
# onnxruntime/core/platform/telemetry_environment.h: at revision 20a21a8 it stops only non-essential events (the
# uploader still starts), at 02108d62 all telemetry; the 1.29-1.32 wheels do not read it at all. So pyproject keeps
# onnxruntime < 1.29, and tests/unit/test_ort_quiet.py decides for any other version (docs/design.md "Real-time").
os.environ["ORT_TELEMETRY_DISABLED"] = "1"

_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}


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
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=chosen)
        except Exception as e:  # corrupted file, unsupported IR version, ...
            raise ValueError(f"{path}: ONNX Runtime cannot load this model ({e})") from None
        self.path = path
        self.providers = tuple(self.session.get_providers())
        self.inputs = tuple(self._spec(a) for a in self.session.get_inputs())
        self.outputs = tuple(self._spec(a) for a in self.session.get_outputs())
        self._output_names = [o.name for o in self.outputs]

    @staticmethod
    def _spec(arg) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) else str(d) for d in arg.shape)
        return TensorSpec(arg.name, shape, np.dtype(_ORT_TYPES.get(arg.type, np.float32)))

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            return dict(zip(self._output_names, self.session.run(self._output_names, feeds)))
        except Exception:
            check_feeds(self.path, self.inputs, feeds)  # a clear message when the feeds are wrong
            raise
