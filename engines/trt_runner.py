"""TensorRT backend: build an engine from ONNX, run it by tensor name on one CUDA stream (cuda-python buffers),
optionally replayed as a CUDA graph. Written for TensorRT 10.3 (JetPack 6) and tolerant of TensorRT 11.

`tensorrt` and `cuda-python` are imported inside the functions that use them: neither exists on CPU-only machines.
API of the TensorRT 10 Python reference (NVIDIA TensorRT developer guide, Python API; `NVIDIA/TensorRT` samples):
create_network(0), name-based I/O, set_tensor_address, execute_async_v3 — the subset that also runs on TensorRT 11,
which removed BuilderFlag.FP16 (feature-detected here) and the binding-index API.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engines.runtime import TensorSpec, check_feeds

log = logging.getLogger(__name__)


def tensorrt_available() -> bool:
    """The real TensorRT Python package is installed (a folder named tensorrt/ on sys.path, such as tests/tensorrt,
    is only a namespace package: no origin)."""
    spec = importlib.util.find_spec("tensorrt")
    return spec is not None and spec.origin is not None


@functools.lru_cache(maxsize=1)
def _cudart():
    """cuda-python's runtime module (engines.manifest.load_cudart); ImportError naming the package when absent."""
    from engines.cudart import load_cudart

    cudart = load_cudart()
    if cudart is None:
        raise ImportError("cuda-python is not installed (JetPack 6: pip install 'cuda-python>=12.6.1,<12.7')")
    return cudart


MIN_TENSORRT = (10, 0)  # create_network(0) is explicit batch only from TensorRT 10 (8.6 = JetPack 6.0: implicit)


def check_tensorrt_version(version: str) -> None:
    """Raise RuntimeError naming the fix when this TensorRT is older than 10 (docs/jetson.md §2)."""
    parts = tuple(int(x) for x in version.split(".")[:2] if x.isdigit())
    if parts < MIN_TENSORRT:
        raise RuntimeError(
            f"TensorRT {version} is too old: the engines need TensorRT >= 10 (JetPack 6.1/6.2 ship 10.3); "
            "JetPack 6.0 (TensorRT 8.6) is not supported — reflash (docs/deployment.md)"
        )


def _ok(result, what: str):
    """cuda-python returns (err, *values): raise on error, return the value(s)."""
    cudart = _cudart()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        raise RuntimeError(f"{what} failed: {err}")
    return values[0] if len(values) == 1 else tuple(values) or None


def _np_dtype(trt, dt) -> np.dtype:
    nptype = getattr(trt, "nptype", None)
    if nptype is not None:
        return np.dtype(nptype(dt))
    return np.dtype(
        {
            "FLOAT": np.float32,
            "HALF": np.float16,
            "INT32": np.int32,
            "INT64": np.int64,
            "INT8": np.int8,
            "UINT8": np.uint8,
            "BOOL": np.bool_,
        }[dt.name]
    )


# --- build -----------------------------------------------------------------------------------------------------------
@dataclass
class EngineBuild:
    plan: bytes
    precision: str  # "fp16" when the FP16 flag was applied, else "fp32"
    flags: dict = field(default_factory=dict)


def build_engine_from_onnx(
    onnx_path: str | Path,
    fp16: bool = True,
    workspace: int = 1 << 28,
    timing_cache: str | Path | None = None,
    opt_level: int = 3,
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] | None = None,
) -> EngineBuild:
    """Serialized engine for this GPU + TensorRT version (TensorRT developer guide: build_serialized_network,
    timing cache).

    fp16: on TensorRT 10 sets BuilderFlag.FP16 when the platform has fast FP16; TensorRT 11 has no such flag
    (networks are strongly typed: export an FP16-typed ONNX instead) and the build stays in the ONNX's types.
    timing_cache: a file read before and written after the build. shapes: {input: (min, opt, max)} for dynamic inputs.
    """
    import tensorrt as trt

    check_tensorrt_version(trt.__version__)
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {onnx_path}")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch on 10.x, strongly typed on 11.x
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RuntimeError(f"{onnx_path}: TensorRT ONNX parser failed:\n" + "\n".join(errors))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    config.builder_optimization_level = opt_level
    flags: dict = {"workspace": workspace, "builder_optimization_level": opt_level, "fp16_requested": fp16}

    dynamic = [
        network.get_input(i) for i in range(network.num_inputs) if any(d < 0 for d in tuple(network.get_input(i).shape))
    ]
    if dynamic:
        known = shapes or {}
        profile = builder.create_optimization_profile()
        for t in dynamic:
            if t.name not in known:
                raise ValueError(
                    f"{onnx_path}: input {t.name!r} has dynamic shape {tuple(t.shape)}; "
                    "pass shapes={name: (min, opt, max)}"
                )
            profile.set_shape(t.name, *known[t.name])
        config.add_optimization_profile(profile)
        flags["shapes"] = {t.name: [list(s) for s in known[t.name]] for t in dynamic}

    fp16_flag = getattr(trt.BuilderFlag, "FP16", None)  # removed in TensorRT 11
    fast_fp16 = getattr(builder, "platform_has_fast_fp16", True)  # removed in TensorRT 11
    precision = "fp32"
    if fp16 and fp16_flag is not None and fast_fp16:
        config.set_flag(fp16_flag)
        precision = "fp16"
    flags["fp16"] = precision == "fp16"

    cache = None
    if timing_cache is not None:
        prev = Path(timing_cache).read_bytes() if Path(timing_cache).is_file() else b""
        cache = config.create_timing_cache(prev)
        config.set_timing_cache(cache, ignore_mismatch=False)
        flags["timing_cache"] = str(timing_cache)

    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f"{onnx_path}: TensorRT engine build failed (see the TensorRT log above)")
    if cache is not None and timing_cache is not None:
        Path(timing_cache).write_bytes(bytes(cache.serialize()))  # augmented by the build
    return EngineBuild(bytes(plan), precision, flags)


# --- run -------------------------------------------------------------------------------------------------------------
class _Buffer:
    """Pinned host memory + device memory of `nbytes`, viewed as `dtype` on the host."""

    def __init__(self, nbytes: int, dtype: np.dtype):
        cudart = _cudart()
        self.nbytes, self.dtype = max(int(nbytes), dtype.itemsize), dtype
        self.host_ptr = _ok(cudart.cudaMallocHost(self.nbytes), "cudaMallocHost")
        self.device = _ok(cudart.cudaMalloc(self.nbytes), "cudaMalloc")
        raw = (ctypes.c_byte * self.nbytes).from_address(self.host_ptr)
        self.host = np.ctypeslib.as_array(raw).view(dtype)

    def free(self) -> None:
        cudart = _cudart()
        cudart.cudaFree(self.device)
        cudart.cudaFreeHost(self.host_ptr)
        self.host_ptr = self.device = 0


class TrtModel:
    """A deserialized TensorRT engine as a TensorModel: I/O by tensor name, one non-blocking CUDA stream.

    cuda_graph=True (fixed-shape engines only): after one warm-up enqueue, H2D copy + execute_async_v3 + D2H copy
    are captured once and each run() replays the graph; new observations are written into the same pinned buffer.
    """

    backend = "tensorrt"

    def __init__(self, path: str | Path, cuda_graph: bool = False):
        import tensorrt as trt

        cudart = _cudart()
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"TensorRT engine not found: {self.path}")
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise RuntimeError(
                f"{self.path}: TensorRT could not deserialize the engine "
                f"(built for another GPU or TensorRT version than {trt.__version__}?)"
            )
        self.context = self.engine.create_execution_context()
        self.stream = _ok(cudart.cudaStreamCreateWithFlags(cudart.cudaStreamNonBlocking), "cudaStreamCreate")
        specs: dict[Any, list[TensorSpec]] = {trt.TensorIOMode.INPUT: [], trt.TensorIOMode.OUTPUT: []}
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            shape = tuple(d if d >= 0 else f"dim{j}" for j, d in enumerate(self.engine.get_tensor_shape(name)))
            specs[self.engine.get_tensor_mode(name)].append(
                TensorSpec(name, shape, _np_dtype(trt, self.engine.get_tensor_dtype(name)))
            )
        self.inputs = tuple(specs[trt.TensorIOMode.INPUT])
        self.outputs = tuple(specs[trt.TensorIOMode.OUTPUT])
        self.static = all(isinstance(d, int) for s in self.inputs + self.outputs for d in s.shape)
        self.max_batch = self._max_batch()
        self._buffers: dict[str, _Buffer] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._graph_exec = None
        self._graph = None
        self.cuda_graph = False
        if self.static:
            for s in self.inputs:
                self._set_input_shape(s.name, tuple(int(d) for d in s.shape))  # static: all dims are ints
            self._bind_all()
        if cuda_graph:
            if self.static:
                self.cuda_graph = self._capture()
            else:
                log.warning("%s: dynamic shapes, CUDA graph not used", self.path)

    def _max_batch(self) -> int | None:
        """The largest dim 0 of the first input: fixed in the engine, or the max of optimization profile 0
        (`ICudaEngine.get_tensor_profile_shape(name, profile)` → [min, opt, max]; TensorRT v10.3.0
        python/src/infer/pyCore.cpp). None for an engine without inputs."""
        if not self.inputs:
            return None
        first = self.inputs[0]
        if isinstance(first.shape[0], int):
            return first.shape[0]
        return int(self.engine.get_tensor_profile_shape(first.name, 0)[2][0])

    # -- buffers ---------------------------------------------------------------------------------------------------
    def _set_input_shape(self, name: str, shape: tuple[int, ...]) -> None:
        if self._shapes.get(name) != tuple(shape):
            if not self.context.set_input_shape(name, tuple(shape)):
                raise ValueError(f"{self.path}: input {name!r} shape {tuple(shape)} is outside the engine's profile")
            self._shapes[name] = tuple(shape)

    def _bind_all(self) -> None:
        """Size buffers for the current shapes (reallocating only to grow) and set every tensor address."""
        for s in self.inputs + self.outputs:
            shape = tuple(self.context.get_tensor_shape(s.name))
            self._shapes[s.name] = shape
            nbytes = int(np.prod(shape)) * s.dtype.itemsize
            buf = self._buffers.get(s.name)
            if buf is None or buf.nbytes < nbytes:
                if buf is not None:
                    buf.free()
                buf = self._buffers[s.name] = _Buffer(nbytes, s.dtype)
            if not self.context.set_tensor_address(s.name, int(buf.device)):
                raise RuntimeError(f"{self.path}: set_tensor_address({s.name!r}) failed")

    def _enqueue(self) -> None:
        cudart = _cudart()
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for s in self.inputs:
            b = self._buffers[s.name]
            n = int(np.prod(self._shapes[s.name])) * s.dtype.itemsize
            _ok(cudart.cudaMemcpyAsync(b.device, b.host_ptr, n, h2d, self.stream), "cudaMemcpyAsync H2D")
        if not self.context.execute_async_v3(int(self.stream)):
            raise RuntimeError(f"{self.path}: execute_async_v3 failed")
        for s in self.outputs:
            b = self._buffers[s.name]
            n = int(np.prod(self._shapes[s.name])) * s.dtype.itemsize
            _ok(cudart.cudaMemcpyAsync(b.host_ptr, b.device, n, d2h, self.stream), "cudaMemcpyAsync D2H")

    def _capture(self) -> bool:
        """One plain enqueue (flushes deferred setup), then capture on a non-default stream (TensorRT developer guide,
        "CUDA Graphs"; what trtexec --useCudaGraph measures)."""
        cudart = _cudart()
        self._enqueue()
        _ok(cudart.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")
        try:
            _ok(
                cudart.cudaStreamBeginCapture(
                    self.stream, cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
                ),
                "cudaStreamBeginCapture",
            )
            try:
                self._enqueue()
            finally:
                self._graph = _ok(cudart.cudaStreamEndCapture(self.stream), "cudaStreamEndCapture")
            self._graph_exec = _ok(cudart.cudaGraphInstantiate(self._graph, 0), "cudaGraphInstantiate")
            return True
        except RuntimeError as e:
            log.warning("%s: CUDA graph capture failed, running without it: %s", self.path, e)
            self._graph_exec = None
            return False

    # -- TensorModel -----------------------------------------------------------------------------------------------
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cudart = _cudart()
        check_feeds(self.path, self.inputs, feeds)
        if not self.static:
            for s in self.inputs:
                self._set_input_shape(s.name, np.shape(feeds[s.name]))
            self._bind_all()
        for s in self.inputs:
            a = np.asarray(feeds[s.name])
            self._buffers[s.name].host[: a.size] = a.reshape(-1)
        if self._graph_exec is not None:
            _ok(cudart.cudaGraphLaunch(self._graph_exec, self.stream), "cudaGraphLaunch")
        else:
            self._enqueue()
        _ok(cudart.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")
        out = {}
        for s in self.outputs:
            shape = self._shapes[s.name]
            out[s.name] = self._buffers[s.name].host[: int(np.prod(shape))].reshape(shape).copy()
        return out

    def close(self) -> None:
        cudart = _cudart()
        if self._graph_exec is not None:
            cudart.cudaGraphExecDestroy(self._graph_exec)
            cudart.cudaGraphDestroy(self._graph)
            self._graph_exec = self._graph = None
        for b in self._buffers.values():
            b.free()
        self._buffers.clear()
        if self.stream is not None:
            cudart.cudaStreamDestroy(self.stream)
            self.stream = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
