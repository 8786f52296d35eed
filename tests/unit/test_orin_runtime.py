"""The GPU-side runtime fixes of issue 9, run here against typed fakes of TensorRT-LLM 0.12 / cuda-python
(tests/fakes/trtllm.py, signatures from the real sources) and real files: machine detection without a driver,
engine-folder hashing, the TensorRT version in the TensorRT-LLM gate, stop words, streaming, KV-block reuse, the
fallback when the TensorRT-LLM runtime does not import, the fallback's memory check, the vision engine's max batch,
the policy engine run as measured (CUDA graph)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from engines.cudart import detect_cuda
from engines.manifest import (
    EngineManifest,
    FileRef,
    MachineInfo,
    check,
    manifest_path_for,
    write_manifest,
)
from engines.vlm.generator import (
    IMAGE_TOKEN_INDEX,
    GenerationRequest,
    TrtLlmGenerator,
    check_kv_block_reuse,
    stop_words,
)
from tests.fakes import trtllm as fake

ORIN = MachineInfo(
    platform="Linux-aarch64",
    python="3.10.12",
    tensorrt="10.3.0",
    tensorrt_llm="0.12.0",
    cuda="12.6",
    gpu_name="Orin",
    compute_capability="8.7",
    l4t="36.4.3",
    jetpack="6.2",
)


# ---------------------------------------------------------------------------------------------- machine detection
@pytest.mark.parametrize("kind", ["no_driver_raises", "no_driver_codes"])
def test_cuda_python_without_a_driver_means_no_gpu_not_a_crash(kind):
    """cuda-python 12.6 raises RuntimeError without libcuda, 12.9 / 13 return error codes: both → no GPU (defect 7)."""
    assert detect_cuda(fake.FakeCudart(kind)) == {}


def test_cuda_version_is_the_drivers_not_the_bindings():
    got = detect_cuda(fake.FakeCudart("orin"))
    assert got == {"cuda": "12.6", "gpu_name": "Orin", "compute_capability": "8.7"}  # bindings' runtime says 12.9


# ---------------------------------------------------------------------------------------------- TensorRT-LLM gate
def _engine_dir(tmp_path: Path, hidden: int = 8, vocab: int = 100, table: int = 64) -> Path:
    d = tmp_path / "llm" / "llm"
    d.mkdir(parents=True)
    cfg = {
        "pretrained_config": {"vocab_size": vocab, "hidden_size": hidden, "dtype": "float32"},
        "build_config": {"max_prompt_embedding_table_size": table},
    }
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "rank0.engine").write_bytes(b"plan" * 100)
    return d


def _llm_manifest(engine: Path, built_on: MachineInfo = ORIN) -> Path:
    path = engine.parent / "llm.manifest.json"
    src = engine.parent / "source.txt"
    src.write_text("ckpt")
    m = EngineManifest(
        kind="llm",
        backend="tensorrt_llm",
        artifact=FileRef.of(engine, engine.parent),
        source=FileRef.of(src, engine.parent),
        exporter_version="0",
        built_on=built_on,
    )
    return write_manifest(m, path)


def test_half_written_or_edited_engine_folder_is_refused(tmp_path):
    """The engine folder is hashed (defect 12): a missing or changed file fails the gate."""
    engine = _engine_dir(tmp_path)
    mpath = _llm_manifest(engine)
    from engines.manifest import verify

    assert verify(mpath, ORIN)[1] == []
    (engine / "rank0.engine").write_bytes(b"plan" * 50)  # truncated, as by an interrupted build
    assert any("changed since the build" in r for r in verify(mpath, ORIN)[1])
    (engine / "rank0.engine").unlink()
    assert any("changed since the build" in r for r in verify(mpath, ORIN)[1])


def test_tensorrt_llm_engine_checks_the_tensorrt_version_too(tmp_path):
    engine = _engine_dir(tmp_path)
    from engines.manifest import read_manifest

    m = read_manifest(_llm_manifest(engine))
    other_trt = ORIN.model_copy(update={"tensorrt": "10.3.1"})
    assert check(m, other_trt, base_dir=engine.parent) == [
        "engine built with TensorRT 10.3.0, this machine has TensorRT 10.3.1"
    ]


# ---------------------------------------------------------------------------------------------- TrtLlmGenerator
def _request(stops=(90,), n=8, hidden=8):
    ids = [1, 2, IMAGE_TOKEN_INDEX, 3, IMAGE_TOKEN_INDEX, 4]
    return GenerationRequest(ids, np.ones((2, 3, hidden), np.float32), stops, n)


def _generator(tmp_path, **kw) -> TrtLlmGenerator:
    gen = TrtLlmGenerator(_engine_dir(tmp_path), **kw)
    gen.device = "cpu"  # no GPU here: the prompt table stays on the CPU
    return gen


def test_every_stop_id_reaches_the_engine(monkeypatch, tmp_path):
    """Only stop_ids[0] is the end_id; the others go in as stop words, so the engine stops there (defect 9)."""
    eng = fake.install(monkeypatch, script=[5, 6, 91, 7, 8, 9, 10, 11])
    res = _generator(tmp_path).generate(_request(stops=(90, 91), n=8))
    assert res.tokens == [5, 6] and res.stop_reason == "stop" and res.stop_id == 91  # the stop word that ended it
    call = eng.calls[-1]
    assert call["end_id"] == 90 and call["stop_words_list"] == [[[91]]]
    assert stop_words((90,)) is None and stop_words((1, 2, 2, 3)) == [[[2], [3]]]


def test_no_streaming_by_default_and_timings_say_so(monkeypatch, tmp_path):
    """Streaming gathers every token in the Python runner (defect 10): off unless asked."""
    eng = fake.install(monkeypatch, script=[5, 6, 7])
    res = _generator(tmp_path).generate(_request(n=3))
    assert eng.calls[-1]["streaming"] is False and res.first_token_timed is False and res.decode_s == 0.0
    assert res.tokens == [5, 6, 7] and res.stop_reason == "length" and res.stop_id is None
    res = _generator(tmp_path / "s", streaming=True).generate(_request(n=3))
    assert eng.calls[-1]["streaming"] is True and res.first_token_timed and res.tokens == [5, 6, 7]


def test_prompt_table_and_fake_ids_go_to_the_runner(monkeypatch, tmp_path):
    eng = fake.install(monkeypatch, script=[5])
    _generator(tmp_path, cpp=True, max_tokens_in_paged_kv_cache=160).generate(_request(n=1))
    assert eng.calls[-1]["prompt_tasks"] == "0"
    assert fake.ModelRunner.loaded[-1]["max_tokens_in_paged_kv_cache"] == 160


def test_kv_block_reuse_with_fake_prompt_ids_is_refused_before_0_13(monkeypatch, tmp_path):
    """Reuse keys on token ids; the fake image ids restart every request (defect 15)."""
    fake.install(monkeypatch, version="0.12.0")
    with pytest.raises(ValueError, match="unsafe on TensorRT-LLM 0.12.0"):
        TrtLlmGenerator(_engine_dir(tmp_path), cpp=True, kv_cache_enable_block_reuse=True)
    check_kv_block_reuse("0.13.0", True)
    check_kv_block_reuse("0.12.0", False)
    fake.install(monkeypatch, version="0.13.0")
    TrtLlmGenerator(_engine_dir(tmp_path / "b"), cpp=True, kv_cache_enable_block_reuse=True)
    assert fake.ModelRunner.loaded[-1]["kv_cache_enable_block_reuse"] is True


def test_runtime_that_does_not_import_falls_back_loudly(monkeypatch, tmp_path, caplog):
    """TensorRT-LLM 0.12 under cuda-python 13 fails at `from cuda import cudart`: the loader must fall back, not
    crash (defect 2)."""
    from engines.vlm.models import _trtllm_or_fallback

    engine = _engine_dir(tmp_path)
    _llm_manifest(engine)
    fake.install(monkeypatch, runtime_error="No module named 'cuda.cudart'")
    with caplog.at_level(logging.WARNING):
        assert _trtllm_or_fallback(engine, machine=ORIN) is None
    assert "TensorRT-LLM runtime failed to load the engine" in caplog.text and "FALLING BACK" in caplog.text
    fake.install(monkeypatch)
    assert isinstance(_trtllm_or_fallback(engine, machine=ORIN), TrtLlmGenerator)


# ---------------------------------------------------------------------------------------------- fallback memory
def test_transformers_fallback_refuses_what_does_not_fit(tiny):
    """An 8B LLM in float32 (≈ 32 GB) must not be loaded on a 16 GB Orin (defect 11)."""
    from engines.vlm.checkpoints import llm_parameter_count, load_vlm_checkpoint
    from engines.vlm.models import transformers_fallback_fits

    ckpt = load_vlm_checkpoint(tiny["navila"])
    n = llm_parameter_count(ckpt)
    assert n > 0
    assert transformers_fallback_fits(ckpt, available=10 * n * 4) is None
    why = transformers_fallback_fits(ckpt, available=n * 4)
    assert why is not None and "this machine has" in why
    svln = load_vlm_checkpoint(tiny["streamvln"])
    assert llm_parameter_count(svln) == n  # same tiny LLM: the tower and projector are not counted


def test_missing_checkpoint_is_called_missing(tmp_path):
    from engines.vlm.checkpoints import CheckpointError, load_vlm_checkpoint

    with pytest.raises(CheckpointError, match="checkpoint folder not found"):
        load_vlm_checkpoint(tmp_path / "navila-llama3-8b-8f")


# ---------------------------------------------------------------------------------------------- vision max batch
class _ProfileLimitedVision:
    """A TensorModel like a TensorRT engine built with max batch 3: larger batches are outside its profile."""

    backend = "tensorrt"
    max_batch = 3

    def __init__(self, hidden: int):
        from engines.runtime import TensorSpec

        self.hidden, self.batches = hidden, []
        self.inputs = (TensorSpec("input", ("batch", 3, 384, 384), np.dtype(np.float32)),)
        self.outputs = (TensorSpec("encoder_output", ("batch", 196, hidden), np.dtype(np.float32)),)

    def run(self, feeds):
        b = feeds["input"].shape[0]
        if b > self.max_batch:
            raise ValueError(f"input 'input' shape {feeds['input'].shape} is outside the engine's profile")
        self.batches.append(b)
        return {"encoder_output": np.zeros((b, 196, self.hidden), np.float32)}


def test_vision_chunks_follow_the_engines_max_batch(tiny):
    """Chunks of the engine's own max batch, not a fixed 8 (defect 6)."""
    from engines.vlm.checkpoints import load_vlm_checkpoint
    from engines.vlm.models import NavilaVlm, VlmFrame

    hidden = load_vlm_checkpoint(tiny["navila"]).llm.hidden_size
    vision = _ProfileLimitedVision(hidden)
    vlm = NavilaVlm(tiny["navila"], vision=vision, max_new_tokens=1)
    rng = np.random.default_rng(0)
    vlm.infer([VlmFrame(i, rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)) for i in range(8)])
    assert vision.batches == [3, 3, 2]


# ---------------------------------------------------------------------------------------------- policy engine
def test_policy_engine_runs_as_measured_with_its_cuda_graph(tmp_path, monkeypatch):
    """The manifest's latency was measured with a CUDA graph: the loader must run it with one (defect 5)."""
    import engines.loader as loader
    import engines.trt_runner as trt_runner

    made = []

    class RecordingTrtModel:
        backend = "tensorrt"

        def __init__(self, path, cuda_graph: bool = False):
            made.append(cuda_graph)

    monkeypatch.setattr(trt_runner, "TrtModel", RecordingTrtModel)
    engine, src = tmp_path / "policy.engine", tmp_path / "policy.onnx"
    engine.write_bytes(b"plan")
    src.write_bytes(b"onnx")
    for graph in (True, False):
        m = EngineManifest(
            backend="tensorrt",
            artifact=FileRef.of(engine, tmp_path),
            source=FileRef.of(src, tmp_path),
            onnx=FileRef.of(src, tmp_path),
            exporter_version="0",
            built_on=ORIN,
            build_flags={"cuda_graph": graph},
        )
        loader.load_model(write_manifest(m, manifest_path_for(engine)), machine=ORIN, fallback="error")
    loader.load_model(manifest_path_for(engine), machine=ORIN, fallback="error", cuda_graph=True)
    assert made == [True, False, True]


def test_tensorrt_older_than_10_is_refused_with_the_fix():
    """JetPack 6.0 ships TensorRT 8.6, where create_network(0) is implicit batch (defect 13)."""
    from engines.trt_runner import check_tensorrt_version

    with pytest.raises(RuntimeError, match="JetPack 6.0 .TensorRT 8.6. is not supported"):
        check_tensorrt_version("8.6.2.3")
    check_tensorrt_version("10.3.0.30")


def test_prefill_projects_only_the_last_position(tiny):
    """The LM head sees one position per step, not the whole prompt (defect 19)."""
    from engines.vlm.generator import TransformersGenerator

    gen = TransformersGenerator(Path(tiny["navila"]) / "llm")
    seen: list[tuple] = []
    hook = gen.model.get_output_embeddings().register_forward_hook(
        lambda m, args, out: seen.append(tuple(args[0].shape))
    )
    try:
        gen.generate(_request(hidden=gen.hidden_size, n=3))
    finally:
        hook.remove()
    assert len(seen) == 3 and all(s[1] == 1 for s in seen)  # prefill + 2 decode steps, one position each


def test_cpp_runner_gets_the_plans_kv_cap_and_mmap_on_a_jetson(monkeypatch, tmp_path):
    """The memory plan's route for a 16 GB Orin: ModelRunnerCpp, KV capped at one request, the engine mapped."""
    from engines.vlm.models import _trtllm_or_fallback

    engine = _engine_dir(tmp_path)
    mpath = _llm_manifest(engine)
    from engines.manifest import read_manifest

    m = read_manifest(mpath)
    write_manifest(m.model_copy(update={"build_flags": {"plan": {"kv_cache": {"runtime_max_tokens": 2080}}}}), mpath)
    fake.install(monkeypatch)
    assert isinstance(_trtllm_or_fallback(engine, machine=ORIN, runner="cpp"), TrtLlmGenerator)
    assert fake.ModelRunner.loaded[-1] == {
        "engine_dir": str(engine),
        "rank": 0,
        "max_tokens_in_paged_kv_cache": 2080,
        "kv_cache_enable_block_reuse": False,
        "use_mmap": True,
    }
