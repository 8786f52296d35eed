"""`make jetson-check`'s latency benchmarks (pytest-benchmark): vision encoder per frame, LLM prefill and decode,
policy step on ONNX Runtime (CPU) and TensorRT, and the 50 Hz loop's period error and the policy's p99 while a VLM
prefill runs in another process (CUDA stream priorities do not cross processes: measure, then place the policy).

Backends: ONNX Runtime / transformers here; TensorRT / TensorRT-LLM where the GPU stack is (the tensorrt cases skip,
with the reason, only on a machine without one: tests/gpu/gpu_required.py). Engines: EDGE_JETSON_ENGINES (default
build/engines_tiny, what `make jetson-check` builds). Raw timings go to extra_info for the report (p50 / p99).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edge.common.config import resolve_path
from edge.common.realtime import DT_CONTROL, Ratekeeper
from edge.controls.locomotion import Policy, load_policy_config
from tests.fakes.robot import robot_state
from tests.gpu.gpu_required import NO_GPU_STACK, gpu_platform, missing

pytest.importorskip("torch")
pytest.importorskip("transformers")

CFG = load_policy_config("configs/policies/go2_robot_lab.yaml")
ENGINES = Path(os.environ.get("EDGE_JETSON_ENGINES", "build/engines_tiny"))
LOAD_SCRIPT = r"""
import sys, time
import numpy as np
from engines.vlm.checkpoints import load_vlm_checkpoint
from engines.vlm.generator import IMAGE_TOKEN_INDEX, GenerationRequest, TransformersGenerator, TrtLlmGenerator
ckpt = load_vlm_checkpoint(sys.argv[1])
engine = sys.argv[2] if len(sys.argv) > 2 else ""
gen = TrtLlmGenerator(engine) if engine else TransformersGenerator(ckpt.llm_dir)
ids = [1] * 64 + [IMAGE_TOKEN_INDEX] * 8 + [2] * 64
req = GenerationRequest(ids, np.zeros((8, ckpt.tokens_per_frame, gen.hidden_size), np.float32), (-1,), 1)
print("ready", flush=True)
while True:
    gen.generate(req)
"""


def _percentiles(t_s: np.ndarray) -> dict:
    return {"p50_ms": float(np.percentile(t_s, 50) * 1e3), "p99_ms": float(np.percentile(t_s, 99) * 1e3)}


def _require_tensorrt(*also: str) -> None:
    """Skip only where the platform has no GPU stack; where it has one, a missing package or engine fails."""
    why = gpu_platform()
    if why is None:
        pytest.skip(NO_GPU_STACK)
    problems = missing(("tensorrt", *also))
    assert not problems, f"{why}, but: {problems}"


def _engine(name: str) -> Path:
    path = ENGINES / name
    assert path.is_file(), f"{path} missing: `make jetson-check` builds it (build_engines.py engines_tiny.yaml)"
    return path


# ------------------------------------------------------------------------------------------------------ vision
@pytest.mark.parametrize("backend", ["onnxruntime", "tensorrt"])
def test_bench_vision_encoder_per_frame(benchmark, tiny, tmp_path_factory, backend):
    from engines.loader import load_model

    if backend == "tensorrt":
        _require_tensorrt()
        model = load_model(_engine("vision/vision.engine.manifest.json"), fallback="error")
    else:
        from exporters.vision import export_vision

        onnx = export_vision(tiny["navila"], tmp_path_factory.mktemp("v")).onnx
        from engines.ort_runner import OrtModel

        model = OrtModel(onnx, threads=os.cpu_count() or 1)
    x = np.random.default_rng(0).standard_normal((1, 3, 384, 384)).astype(np.float32)
    benchmark.group = "vision encoder per frame"
    out = benchmark.pedantic(model.run, args=({"input": x},), rounds=20, warmup_rounds=2)
    assert out["encoder_output"].shape[:2] == (1, 196)


# ------------------------------------------------------------------------------------------------------ LLM
def _generator(tiny, backend):
    from engines.vlm.checkpoints import load_vlm_checkpoint

    ckpt = load_vlm_checkpoint(tiny["navila"])
    if backend == "tensorrt_llm":
        _require_tensorrt("tensorrt_llm")
        from engines.vlm.generator import TrtLlmGenerator

        return ckpt, TrtLlmGenerator(ENGINES / "llm" / "llm")
    from engines.vlm.generator import TransformersGenerator

    return ckpt, TransformersGenerator(ckpt.llm_dir)


@pytest.mark.parametrize("backend", ["transformers", "tensorrt_llm"])
@pytest.mark.parametrize("new_tokens", [1, 17])
def test_bench_llm_generate(benchmark, tiny, backend, new_tokens):
    """new_tokens 1 = prefill (8 frames × 196 rows + text); (17 − 1) more tokens give decode per token."""
    from engines.vlm.generator import IMAGE_TOKEN_INDEX, GenerationRequest

    ckpt, gen = _generator(tiny, backend)
    ids = [1] * 64 + [IMAGE_TOKEN_INDEX] * 8 + [2] * 64
    req = GenerationRequest(ids, np.zeros((8, ckpt.tokens_per_frame, gen.hidden_size), np.float32), (-1,), new_tokens)
    benchmark.group = f"LLM generate, {new_tokens} new token(s)"
    res = benchmark.pedantic(gen.generate, args=(req,), rounds=5, warmup_rounds=1)
    assert len(res.tokens) == new_tokens


# ------------------------------------------------------------------------------------------------------ policy
def _policy(backend: str) -> Policy:
    if backend == "tensorrt":
        _require_tensorrt()
        from engines.loader import load_model

        return Policy(CFG, model=load_model(_engine("policy/policy.engine.manifest.json"), fallback="error"))
    from engines.ort_runner import OrtModel

    return Policy(CFG, model=OrtModel(resolve_path(CFG.model)))


def _state():
    rng = np.random.default_rng(0)
    return robot_state(q=np.array(CFG.default_pose) + rng.normal(0, 0.05, 12), dq=rng.normal(0, 0.5, 12))


@pytest.mark.parametrize("backend", ["onnxruntime", "tensorrt"])
def test_bench_policy_step(benchmark, backend):
    policy = _policy(backend)
    benchmark.group = "policy step"
    cmd = benchmark(policy.step, _state(), np.array([0.5, 0.0, 0.0]))
    assert cmd.is_finite()


@pytest.fixture(scope="module")
def prefill_load(tiny):
    """A VLM prefilling in a loop in another process, as vlmd does on the robot."""
    engine = ENGINES / "llm" / "llm"
    args = [str(tiny["navila"])] + ([str(engine)] if gpu_platform() and (engine / "config.json").is_file() else [])
    proc = subprocess.Popen(
        [sys.executable, "-c", LOAD_SCRIPT, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", "prefill load did not start"
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("backend", ["onnxruntime", "tensorrt"])
def test_bench_policy_step_while_prefilling(benchmark, prefill_load, backend):
    """The placement measurement: the policy's p99 on each backend with a VLM prefill running."""
    policy = _policy(backend)
    s, cmd = _state(), np.array([0.5, 0.0, 0.0])
    t = np.empty(1000)
    for i in range(len(t)):
        t0 = time.perf_counter()
        policy.step(s, cmd)
        t[i] = time.perf_counter() - t0
    benchmark.extra_info.update(_percentiles(t))
    benchmark.group = "policy step while the VLM prefills"
    benchmark.pedantic(policy.step, args=(s, cmd), rounds=50)


def test_bench_loop_period_error_while_prefilling(benchmark, prefill_load):
    """The 50 Hz loop (Ratekeeper + policy on ONNX Runtime) for 3 s while the VLM prefills: period error p50 / p99."""
    policy = _policy("onnxruntime")
    s, cmd = _state(), np.array([0.5, 0.0, 0.0])

    def run_loop():
        rk = Ratekeeper(DT_CONTROL)
        periods = []
        for _ in range(150):
            tick = rk.wait()
            if tick.period_s:
                periods.append(tick.period_s)
            policy.step(s, cmd)
        return np.abs(np.array(periods) - DT_CONTROL), rk.missed

    benchmark.group = "50 Hz loop while the VLM prefills"
    err, missed = benchmark.pedantic(run_loop, rounds=1)
    benchmark.extra_info.update({**_percentiles(err), "missed": int(missed)})
    assert np.isfinite(err).all()
