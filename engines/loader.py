"""Loading a tensor model: by file and backend, or through its engine manifest (which gates TensorRT engines by machine
and source, and falls back loudly to ONNX Runtime)."""

from __future__ import annotations

from pathlib import Path

from engines.manifest import (
    MANIFEST_SUFFIX,
    EngineMismatchError,
    Fallback,
    MachineInfo,
    file_reasons,
    manifest_path_for,
    verify,
    warn_fallback,
)
from engines.ort_runner import OrtModel
from engines.runtime import BACKENDS, ENGINE_SUFFIXES, TensorModel


def load_tensor_model(path: str | Path, backend: str = "onnxruntime", **options) -> TensorModel:
    """A TensorModel for `path` on `backend`.

    - `*.manifest.json`: the manifest decides the backend and gates the load (load_model below).
    - onnxruntime: an ONNX file. torch: a TorchScript file (engines.torch_runner).
    - tensorrt: an engine goes through its manifest `<engine>.manifest.json`; an ONNX path looks for the engine built
      from it (`<stem>.engine.manifest.json` beside it). No manifest / a mismatch: `fallback` ("onnxruntime", the
      default, warns loudly and runs the ONNX; "error" raises).
    """
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
                raise FileNotFoundError(
                    f"{path}: engine has no manifest {manifest.name} beside it; "
                    "engines load only through their manifest (rebuild with exporters)"
                )
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


def load_model(
    manifest_path: str | Path,
    fallback: Fallback = "onnxruntime",
    machine: MachineInfo | None = None,
    source_path: str | Path | None = None,
    **backend_options,
):
    """Load the manifest's artifact as a TensorModel if it matches this machine.

    A TensorRT engine runs as it was measured at build: with a CUDA graph when the manifest's build_flags say
    `cuda_graph` (the latency it records), unless `cuda_graph=` is given. Otherwise: fallback="error" raises
    EngineMismatchError with every reason; fallback="onnxruntime" logs each reason at WARNING and loads the manifest's
    ONNX on ONNX Runtime (its sha256 is checked too), with `threads=` when given."""
    manifest_path = Path(manifest_path)
    manifest, reasons = verify(manifest_path, machine, source_path)
    base = manifest_path.parent
    if not reasons:
        artifact = manifest.artifact.resolve(base)
        if manifest.backend == "tensorrt":  # verified here: build the runner itself (load_tensor_model would
            from engines.trt_runner import TrtModel  # come back through this manifest)

            graph = backend_options.get("cuda_graph", bool(manifest.build_flags.get("cuda_graph", False)))
            return TrtModel(artifact, cuda_graph=graph)
        return load_tensor_model(artifact, manifest.backend, **backend_options)
    if fallback == "error":
        raise EngineMismatchError(manifest_path, reasons)
    if fallback != "onnxruntime":
        raise ValueError(f"unknown fallback {fallback!r} (known: onnxruntime, error)")
    onnx_ref = manifest.onnx or (manifest.artifact if manifest.backend == "onnxruntime" else None)
    if onnx_ref is None:
        raise EngineMismatchError(manifest_path, reasons + ["no ONNX recorded in the manifest to fall back to"])
    onnx_path = onnx_ref.resolve(base)
    bad = file_reasons("fallback ONNX", onnx_ref, onnx_path)
    if bad or manifest.backend == "onnxruntime":
        raise EngineMismatchError(manifest_path, reasons + bad)
    warn_fallback(manifest_path, reasons, f"ONNX Runtime on {onnx_path}")
    return OrtModel(onnx_path, **{k: v for k, v in backend_options.items() if k == "threads"})
