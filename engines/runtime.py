"""One runtime interface for tensor models (named inputs/outputs) across backends.

Backends: ONNX Runtime (CPU; CUDA / TensorRT execution providers when present), TensorRT (engines/trt_runner.py,
imported lazily: absent on CPU machines) and a PyTorch reference (engines/torch_runner.py). Engines are loaded through
their manifest (engines/manifest.py), which refuses artifacts built for another GPU / TensorRT / source.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)

BACKENDS = ("onnxruntime", "tensorrt", "torch")
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


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
            not isinstance(d, int) or d < 0 or d == n for d, n in zip(s.shape, a.shape))
        if not fixed_ok:
            errors.append(f"input {s.name!r}: expected shape {list(s.shape)}, got {list(a.shape)}")
        if a.dtype != s.dtype:
            errors.append(f"input {s.name!r}: expected dtype {s.dtype.name}, got {a.dtype.name}")
    return [f"{where}: {e}" for e in errors]


def check_feeds(where: str | Path, specs: tuple[TensorSpec, ...], feeds: dict[str, np.ndarray]) -> None:
    errors = feed_errors(where, specs, feeds)
    if errors:
        raise ValueError("\n".join(errors))


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
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=chosen)
        except Exception as e:   # corrupted file, unsupported IR version, ...
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
            check_feeds(self.path, self.inputs, feeds)   # a clear message when the feeds are wrong
            raise


def load_tensor_model(path: str | Path, backend: str = "onnxruntime", **options) -> TensorModel:
    """A TensorModel for `path` on `backend`.

    - `*.manifest.json`: the manifest decides the backend and gates the load (engines.manifest.load_model).
    - onnxruntime: an ONNX file. torch: a TorchScript file (engines.torch_runner).
    - tensorrt: an engine goes through its manifest `<engine>.manifest.json`; an ONNX path looks for the engine built
      from it (`<stem>.engine.manifest.json` beside it). No manifest / a mismatch: `fallback` ("onnxruntime", the
      default, warns loudly and runs the ONNX; "error" raises).
    """
    from engines.manifest import MANIFEST_SUFFIX, EngineMismatchError, load_model, manifest_path_for, warn_fallback

    path = Path(path)
    if path.name.endswith(MANIFEST_SUFFIX):
        return load_model(path, **options)
    if backend == "onnxruntime":
        return OrtModel(path, **options)
    if backend == "torch":
        from engines.torch_runner import TorchModel
        return TorchModel(path, **options)
    if backend == "tensorrt":
        if path.suffix in ENGINE_SUFFIXES:
            manifest = manifest_path_for(path)
            if not manifest.is_file():
                raise FileNotFoundError(f"{path}: engine has no manifest {manifest.name} beside it; "
                                        "engines load only through their manifest (rebuild with exporters)")
            return load_model(manifest, **options)
        manifest = manifest_path_for(path.with_suffix(".engine"))
        if manifest.is_file():
            return load_model(manifest, **options)
        reason = f"no TensorRT engine manifest {manifest} for {path.name} (build it on this machine)"
        if options.get("fallback", "onnxruntime") == "error":
            raise EngineMismatchError(path, [reason])
        warn_fallback(path, [reason], f"ONNX Runtime on {path}")
        return OrtModel(path)
    raise ValueError(f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
