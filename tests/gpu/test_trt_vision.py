"""Tiny vision encoders → TensorRT FP16 engine (dynamic batch 1..4) vs ONNX Runtime fp32. GPU host or Jetson only."""

from __future__ import annotations

import numpy as np
import pytest
from gpu_required import require

trt = require("transformers")

from engines.manifest import read_manifest
from engines.ort_runner import OrtModel
from exporters.tiny import write_tiny_checkpoints
from exporters.vision import build_vision_engine, export_vision

pytestmark = pytest.mark.tensorrt
FP16_TOLERANCE = 2e-2  # tiny encoder outputs are O(1); fp16 engine vs fp32 ONNX Runtime


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_checkpoints(tmp_path_factory.mktemp("tiny_trt"))


@pytest.mark.parametrize("name", ["navila", "streamvln"])
def test_engine_matches_onnxruntime(tiny, tmp_path, name):
    from engines.trt_runner import TrtModel

    onnx_path = export_vision(tiny[name], tmp_path, name=name).onnx
    engine = build_vision_engine(onnx_path, tmp_path / f"{name}.engine", max_batch=4, fp16=True)
    m = read_manifest(engine.with_name(engine.name + ".manifest.json"))
    assert m.kind == "vision" and m.build_flags["max_batch"] == 4
    trt_model, ort_model = TrtModel(engine), OrtModel(onnx_path)
    rng = np.random.default_rng(0)
    for batch in (1, 3, 4):
        x = rng.standard_normal((batch, 3, 384, 384)).astype(np.float32)
        got = trt_model.run({"input": x})["encoder_output"]
        ref = ort_model.run({"input": x})["encoder_output"]
        assert got.shape == ref.shape == (batch, 196, 64)
        diff = float(np.abs(got.astype(np.float64) - ref).max())
        print(f"{name} batch {batch}: TensorRT {m.precision} vs ONNX Runtime max |diff| {diff:.3g}")
        assert diff < (FP16_TOLERANCE if m.precision == "fp16" else 1e-4)
    with pytest.raises(ValueError, match="outside the engine's profile"):
        trt_model.run({"input": np.zeros((5, 3, 384, 384), np.float32)})
