"""TensorRT policy engines: build, name-based I/O, CUDA graph, parity vs ONNX Runtime, manifest gate.

Runs only where TensorRT, cuda-python and a GPU exist (the Orin, or a GPU host): `pytest -m tensorrt tests/tensorrt`.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from gpu_required import require

trt = require("torch")

from edge.common.config import resolve_path
from edge.controls.locomotion import Policy, load_policy_config
from engines.loader import (
    load_model,
    load_tensor_model,
)
from engines.manifest import MachineInfo, read_manifest
from engines.ort_runner import OrtModel
from engines.trt_runner import TrtModel, build_engine_from_onnx
from exporters.parity import check_parity
from exporters.policy import (
    ENGINE_TOLERANCE,
    export_policy,
    export_policy_onnx,
    write_tiny_policy_checkpoints,
)

pytestmark = pytest.mark.tensorrt
if MachineInfo.detect().compute_capability is None:  # the stack imports but sees no GPU: that is a fault here
    pytest.fail("TensorRT and cuda-python import but no CUDA GPU is visible (edge doctor)", pytrace=False)

CFG_PATH = "configs/policies/go2_robot_lab.yaml"
CFG = load_policy_config(CFG_PATH)


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    d = tmp_path_factory.mktemp("trt")
    ckpt = write_tiny_policy_checkpoints(d)["rsl_rl"]
    return export_policy_onnx(ckpt, d / "policy.onnx", contract=CFG).onnx


@pytest.mark.parametrize("fp16", [False, True])
def test_engine_matches_onnxruntime(tiny_onnx, tmp_path, fp16):
    built = build_engine_from_onnx(tiny_onnx, fp16=fp16, timing_cache=tmp_path / "trt.cache")
    assert (tmp_path / "trt.cache").stat().st_size > 0
    assert built.precision == ("fp16" if fp16 and hasattr(trt.BuilderFlag, "FP16") else "fp32")
    engine = tmp_path / "policy.engine"
    engine.write_bytes(built.plan)
    m = TrtModel(engine)
    assert [s.name for s in m.inputs] == ["obs"] and m.inputs[0].shape == (1, 45)
    assert m.outputs[0].shape == (1, 12) and m.outputs[0].dtype == np.float32
    rep = check_parity(OrtModel(tiny_onnx), m, n_random=128, tolerance=ENGINE_TOLERANCE)
    print(f"\n{built.precision}: {rep}")
    assert rep.passed, rep
    with pytest.raises(ValueError, match=r"expected shape \[1, 45\]"):
        m.run({"obs": np.zeros((1, 44), np.float32)})


def test_cuda_graph_replay_equals_plain_enqueue(tiny_onnx, tmp_path):
    engine = tmp_path / "policy.engine"
    engine.write_bytes(build_engine_from_onnx(tiny_onnx, fp16=False).plan)
    plain, graph = TrtModel(engine), TrtModel(engine, cuda_graph=True)
    assert graph.cuda_graph and not plain.cuda_graph
    rng = np.random.default_rng(0)
    for _ in range(20):  # new data in the same buffer each step
        obs = rng.standard_normal((1, 45)).astype(np.float32)
        np.testing.assert_array_equal(graph.run({"obs": obs})["actions"], plain.run({"obs": obs})["actions"])


def test_export_chain_writes_engine_manifest_and_loads_only_here(tiny_onnx, tmp_path, caplog):
    res = export_policy(tiny_onnx, tmp_path, contract=CFG, tensorrt="on")
    assert res.engine.is_file() and res.engine_parity.passed
    m = read_manifest(res.engine_manifest)
    here = MachineInfo.detect()
    assert m.backend == "tensorrt" and m.built_on.tensorrt == trt.__version__
    assert m.built_on.compute_capability == here.compute_capability and m.latency.median_us > 0
    assert m.onnx.path == "policy.onnx" and m.parity.candidate == "tensorrt"
    assert load_model(res.engine_manifest).backend == "tensorrt"
    assert load_tensor_model(res.onnx, "tensorrt").backend == "tensorrt"  # finds policy.engine.manifest.json
    other = here.model_copy(update={"compute_capability": "1.0", "gpu_name": "elsewhere"})
    with caplog.at_level(logging.WARNING):
        assert load_model(res.engine_manifest, machine=other).backend == "onnxruntime"
    assert any("compute capability 1.0" in r.message for r in caplog.records)


def test_real_policy_runs_on_tensorrt_through_the_control_path(tmp_path):
    res = export_policy(resolve_path(CFG.model), tmp_path, contract=CFG, tensorrt="on")
    print(f"\nreal policy engine: {res.engine_parity}")
    trt_policy = Policy(CFG.model_copy(update={"model": str(res.onnx)}), backend="tensorrt")
    assert trt_policy.model.backend == "tensorrt"
    ort = OrtModel(res.onnx)
    obs = np.random.default_rng(1).standard_normal((1, 45)).astype(np.float32)
    np.testing.assert_allclose(
        trt_policy.model.run({"obs": obs})["actions"], ort.run({"obs": obs})["actions"], atol=ENGINE_TOLERANCE
    )
