"""Engine manifest: one JSON per built artifact, and the gate that loads only what matches this machine.

An engine (TensorRT plan, TRT-LLM engine dir) is tied to GPU arch + TensorRT version (+ JetPack); an ONNX file or a
TorchScript file is not. `check` lists every reason an artifact must not be loaded here; `load_model` loads it, or
refuses (`fallback="error"`) or falls back loudly to ONNX Runtime on the ONNX the engine was built from.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drivers.jetson import jetpack_for, l4t_release
from engines.cudart import detect_cuda, load_cudart

log = logging.getLogger(__name__)

Backend = Literal["tensorrt", "onnxruntime", "torch", "tensorrt_llm", "transformers"]
Fallback = Literal["onnxruntime", "error"]
MANIFEST_SUFFIX = ".manifest.json"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ManifestError(ValueError):
    """A manifest file is missing or malformed; the message names the file."""


class EngineMismatchError(RuntimeError):
    """The artifact does not match this machine (or its source changed). `reasons` lists every mismatch."""

    def __init__(self, path: str | Path, reasons: list[str]):
        self.path, self.reasons = Path(path), list(reasons)
        super().__init__(f"refusing {path}:\n" + "\n".join(f"  - {r}" for r in self.reasons))


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class TensorInfo(_Frozen):
    name: str
    shape: list[int | str]  # str = dynamic dimension
    dtype: str  # numpy name: float32, float16, int64, ...

    @classmethod
    def from_spec(cls, spec) -> TensorInfo:
        return cls(name=spec.name, shape=list(spec.shape), dtype=np.dtype(spec.dtype).name)


def sha256_tree(path: str | Path) -> str:
    """sha256 over a folder: every file's relative path and sha256, in sorted order (a TensorRT-LLM engine folder:
    config.json + rank0.engine). A half-written or edited folder hashes differently."""
    root = Path(path)
    h = hashlib.sha256()
    for f in sorted(x for x in root.rglob("*") if x.is_file()):
        h.update(f"{f.relative_to(root).as_posix()}\0{sha256_file(f)}\n".encode())
    return h.hexdigest()


def sha256_path(path: str | Path) -> str:
    p = Path(path)
    return sha256_tree(p) if p.is_dir() else sha256_file(p)


class FileRef(_Frozen):
    path: str  # relative to the manifest's folder, unless absolute
    sha256: str | None = None  # of the file, or sha256_tree of a folder

    def resolve(self, base_dir: Path) -> Path:
        p = Path(self.path).expanduser()
        return p if p.is_absolute() else base_dir / p

    @classmethod
    def of(cls, path: str | Path, base_dir: Path | None = None) -> FileRef:
        path = Path(path)
        shown = path
        if base_dir is not None:
            try:
                shown = path.resolve().relative_to(Path(base_dir).resolve())
            except ValueError:
                shown = path.resolve()
        return cls(path=str(shown), sha256=sha256_path(path) if path.exists() else None)


def _dist_version(*names: str) -> str | None:
    for n in names:
        try:
            return importlib.metadata.version(n)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


class MachineInfo(_Frozen):
    platform: str = ""  # e.g. Linux-aarch64
    python: str = ""
    tensorrt: str | None = None
    tensorrt_llm: str | None = None
    onnxruntime: str | None = None
    torch: str | None = None
    cuda: str | None = None  # the machine's CUDA (driver API version, cudaDriverGetVersion), e.g. 12.6
    gpu_name: str | None = None
    compute_capability: str | None = None  # e.g. 8.7 (every Orin)
    l4t: str | None = None
    jetpack: str | None = None

    @classmethod
    def detect(cls) -> MachineInfo:
        """This machine; cached. Imports nothing that is not installed, and TensorRT / CUDA only when present."""
        return _detect()


@functools.lru_cache(maxsize=1)
def _detect() -> MachineInfo:
    info: dict[str, Any] = {
        "platform": f"{platform.system()}-{platform.machine()}",
        "python": platform.python_version(),
        "onnxruntime": _dist_version("onnxruntime", "onnxruntime-gpu"),
        "torch": _dist_version("torch"),
        "tensorrt_llm": _dist_version("tensorrt_llm", "tensorrt-llm"),
    }
    from engines.trt_runner import tensorrt_available

    if tensorrt_available():
        try:
            import tensorrt as trt

            info["tensorrt"] = trt.__version__
        except Exception as e:  # a broken install reads as "not installed", with the reason logged
            log.warning("tensorrt is installed but does not import: %s", e)
    cudart = load_cudart()
    info.update(detect_cuda(cudart) if cudart is not None else _detect_gpu_torch())
    info["l4t"] = l4t_release()
    info["jetpack"] = jetpack_for(info["l4t"])
    return MachineInfo(**info)


def _detect_gpu_torch() -> dict[str, Any]:
    if importlib.util.find_spec("torch") is not None:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(0)
            return {
                "cuda": torch.version.cuda,
                "gpu_name": torch.cuda.get_device_name(0),
                "compute_capability": f"{major}.{minor}",
            }
    return {}


class ParityResult(_Frozen):
    reference: str  # e.g. "torch", "onnxruntime"
    candidate: str
    max_abs_diff: float
    tolerance: float  # on max_abs_diff, or on max_abs_diff / reference_max_abs when relative
    passed: bool
    random_samples: int  # input samples compared (frames for a vision encoder: feeds × batch)
    recorded_samples: int = 0
    relative: bool = False
    reference_max_abs: float | None = None
    max_abs_diff_random: float | None = None
    max_abs_diff_recorded: float | None = None


class LatencyResult(_Frozen):
    backend: str
    median_us: float
    p99_us: float
    iterations: int
    cuda_graph: bool = False


class EngineManifest(_Frozen):
    schema_version: Literal[1] = 1
    kind: str = "policy"  # policy | vision | llm | ...
    backend: Backend
    artifact: FileRef
    source: FileRef  # what was exported: checkpoint, TorchScript or ONNX
    onnx: FileRef | None = None  # the ONNX to fall back to (ONNX Runtime)
    exporter_version: str
    built_on: MachineInfo
    precision: str = "fp32"
    inputs: list[TensorInfo] = Field(default_factory=list)
    outputs: list[TensorInfo] = Field(default_factory=list)
    build_flags: dict[str, Any] = Field(default_factory=dict)
    parity: ParityResult | None = None
    latency: LatencyResult | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    extra_files: list[FileRef] = Field(default_factory=list)  # e.g. an ONNX's external-data file
    created_utc: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


def manifest_path_for(artifact: str | Path) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + MANIFEST_SUFFIX)


def write_manifest(manifest: EngineManifest, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(manifest.model_dump_json(indent=2) + "\n")
    return path


def read_manifest(path: str | Path) -> EngineManifest:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestError(f"engine manifest not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path}: not valid JSON ({e})") from None
    try:
        return EngineManifest.model_validate(data)
    except ValidationError as e:
        lines = [f"  {'.'.join(map(str, err['loc'])) or '<root>'}: {err['msg']}" for err in e.errors()]
        raise ManifestError(f"{path}: invalid engine manifest:\n" + "\n".join(lines)) from None


def file_reasons(what: str, ref: FileRef, path: Path, required: bool = True) -> list[str]:
    if not path.exists():
        return [f"{what} missing: {path}"] if required else []
    if ref.sha256:
        actual = sha256_path(path)
        if actual != ref.sha256:
            return [
                f"{what} changed since the build: {path} has sha256 {actual[:12]}…, manifest expects {ref.sha256[:12]}…"
            ]
    return []


def _gpu(m: MachineInfo) -> str:
    return f"compute capability {m.compute_capability} ({m.gpu_name or 'unknown GPU'})"


def check(
    manifest: EngineManifest,
    machine: MachineInfo | None = None,
    source_path: str | Path | None = None,
    base_dir: str | Path = ".",
) -> list[str]:
    """Human-readable reasons this artifact must not be loaded here; empty = loadable.

    source_path: where the source lives now (it must exist and hash as recorded); by default the manifest's own
    source path is checked when that file is present (checkpoints are often not shipped to the robot)."""
    base = Path(base_dir)
    reasons = file_reasons(f"{manifest.backend} artifact", manifest.artifact, manifest.artifact.resolve(base))
    for ref in manifest.extra_files:
        reasons += file_reasons("artifact file", ref, ref.resolve(base))
    if source_path is not None:
        reasons += file_reasons("source", manifest.source, Path(source_path))
    else:
        reasons += file_reasons("source", manifest.source, manifest.source.resolve(base), required=False)
    if manifest.parity is not None and not manifest.parity.passed:
        p = manifest.parity
        rel = f" (relative to max |ref| {p.reference_max_abs:.3g})" if p.relative else ""
        reasons.append(
            f"parity failed at build: max |diff| {p.max_abs_diff:.3g}{rel} vs {p.reference} > tolerance {p.tolerance:g}"
        )
    m, built = machine or MachineInfo.detect(), manifest.built_on
    if manifest.backend in ("tensorrt", "tensorrt_llm"):
        key, label = ("tensorrt", "TensorRT") if manifest.backend == "tensorrt" else ("tensorrt_llm", "TensorRT-LLM")
        want, have = getattr(built, key), getattr(m, key)
        if have is None:
            reasons.append(f"{label} is not installed on this machine (engine built with {label} {want})")
        elif want != have:
            reasons.append(f"engine built with {label} {want}, this machine has {label} {have}")
        if manifest.backend == "tensorrt_llm" and built.tensorrt != m.tensorrt:  # the engine is a TensorRT plan too
            reasons.append(f"engine built with TensorRT {built.tensorrt}, this machine has TensorRT {m.tensorrt}")
        if m.compute_capability is None:
            reasons.append(f"no CUDA GPU detected (engine built for {_gpu(built)})")
        elif built.compute_capability != m.compute_capability:
            reasons.append(f"engine built for {_gpu(built)}, this GPU is {_gpu(m)}")
        if built.l4t and m.l4t and built.l4t != m.l4t:
            reasons.append(
                f"engine built on L4T {built.l4t} (JetPack {built.jetpack}), this machine runs "
                f"L4T {m.l4t} (JetPack {m.jetpack})"
            )
    elif manifest.backend == "transformers":
        if importlib.util.find_spec("transformers") is None:
            reasons.append("transformers is not installed on this machine")
    elif getattr(m, manifest.backend, None) is None:
        reasons.append(f"{manifest.backend} is not installed on this machine")
    return reasons


def verify(
    manifest_path: str | Path, machine: MachineInfo | None = None, source_path: str | Path | None = None
) -> tuple[EngineManifest, list[str]]:
    """Read a manifest and check it against this machine (for callers with their own loaders, e.g. the LLM)."""
    manifest_path = Path(manifest_path)
    manifest = read_manifest(manifest_path)
    return manifest, check(manifest, machine, source_path, manifest_path.parent)


def warn_fallback(manifest_path: str | Path, reasons: list[str], fallback: str) -> None:
    """The loud part of a fallback: one WARNING line per reason, then what is used instead."""
    for r in reasons:
        log.warning("ENGINE REFUSED %s: %s", manifest_path, r)
    log.warning("FALLING BACK to %s for %s: expect different latency (and precision)", fallback, manifest_path)
