"""Vision encoder cost per frame (batch 1), tiny NaVILA / StreamVLN encoders: PyTorch vs ONNX Runtime (run: make bench).
Tiny weights: this measures the toolchain / graph overhead (SigLIP-so400m on the Orin is a TensorRT job)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from engines.ort_runner import OrtModel
from engines.vlm.vision import load_vision_encoder
from exporters.tiny import write_tiny_checkpoints
from exporters.vision import export_vision_onnx

FAMILIES = ["navila", "streamvln"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_vision")
    tiny = write_tiny_checkpoints(out)
    res = {}
    for name in FAMILIES:
        enc = load_vision_encoder(tiny[name])
        res[name] = (enc, export_vision_onnx(enc, out / f"{name}.onnx"))
    return res


@pytest.fixture(scope="module")
def frame():
    return np.random.default_rng(0).standard_normal((1, 3, 384, 384)).astype(np.float32)


@pytest.mark.parametrize("name", FAMILIES)
def test_bench_vision_torch(benchmark, built, frame, name):
    enc = built[name][0]
    x = torch.from_numpy(frame)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # same as the ONNX Runtime session below
    try:
        with torch.inference_mode():
            out = benchmark(enc, x)
    finally:
        torch.set_num_threads(threads)
    assert out.shape == (1, 196, 64)


@pytest.mark.parametrize("name", FAMILIES)
def test_bench_vision_onnxruntime(benchmark, built, frame, name):
    model = OrtModel(built[name][1], threads=1)
    out = benchmark(model.run, {"input": frame})["encoder_output"]
    assert out.shape == (1, 196, 64)
