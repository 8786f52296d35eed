"""engines/: the tensor-model interface on ONNX Runtime and PyTorch, input validation, backend selection."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from edge.common.config import resolve_path
from edge.controls.locomotion import Policy, load_policy_config
from engines.loader import load_tensor_model
from engines.manifest import EngineMismatchError
from engines.ort_runner import OrtModel
from engines.runtime import BACKENDS, TensorSpec, check_feeds, feed_errors
from tests.fakes.robot import robot_state

torch = pytest.importorskip("torch")
from engines.torch_runner import TorchModel
from exporters.policy import export_policy_onnx, write_tiny_policy_checkpoints

CFG = load_policy_config("configs/policies/go2_robot_lab.yaml")
REAL = resolve_path(CFG.model)
OBS = np.random.default_rng(0).standard_normal((1, 45)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    paths = write_tiny_policy_checkpoints(d)
    paths["onnx"] = export_policy_onnx(paths["torchscript"], d / "policy.onnx").onnx
    return paths


def test_ort_model_reports_named_io_of_the_real_policy():
    m = load_tensor_model(REAL)
    assert isinstance(m, OrtModel) and m.backend == "onnxruntime"
    assert m.inputs == (TensorSpec("obs", (1, 45), np.dtype(np.float32)),)
    assert m.outputs == (TensorSpec("actions", (1, 12), np.dtype(np.float32)),)
    out = m.run({"obs": OBS})
    assert out["actions"].shape == (1, 12) and np.isfinite(out["actions"]).all()


def test_wrong_feeds_raise_errors_naming_file_and_expectation():
    m = OrtModel(REAL)
    with pytest.raises(ValueError, match=r"policy\.onnx: input 'obs': expected shape \[1, 45\], got \[1, 48\]"):
        m.run({"obs": np.zeros((1, 48), np.float32)})
    with pytest.raises(ValueError, match=r"missing input 'obs': expected float32\[1, 45\]"):
        m.run({"observation": OBS})
    with pytest.raises(ValueError, match="expected dtype float32, got float64"):
        m.run({"obs": OBS.astype(np.float64)})


def test_feed_errors_accept_dynamic_dims():
    specs = (TensorSpec("x", ("batch", 3), np.dtype(np.float32)),)
    assert feed_errors("m", specs, {"x": np.zeros((5, 3), np.float32)}) == []
    assert feed_errors("m", specs, {"x": np.zeros((5, 4), np.float32)}) == [
        "m: input 'x': expected shape ['batch', 3], got [5, 4]"
    ]
    check_feeds("m", specs, {"x": np.zeros((1, 3), np.float32)})


def test_missing_and_corrupted_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.onnx"):
        load_tensor_model(tmp_path / "nothere.onnx")
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match="broken.onnx: ONNX Runtime cannot load"):
        load_tensor_model(bad)
    badjit = tmp_path / "broken.jit"
    badjit.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="broken.jit: not a TorchScript file"):
        load_tensor_model(badjit, "torch")
    with pytest.raises(FileNotFoundError, match="gone.jit"):
        TorchModel(tmp_path / "gone.jit")


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown backend 'tflite'.*onnxruntime, tensorrt, torch"):
        load_tensor_model(REAL, "tflite")
    assert BACKENDS == ("onnxruntime", "tensorrt", "torch")


def test_torchscript_backend_matches_onnxruntime(tiny):
    ts = load_tensor_model(tiny["torchscript"], "torch")
    assert ts.backend == "torch"
    assert ts.inputs[0].name == "obs" and ts.inputs[0].shape == ("batch", 45)
    assert ts.outputs[0].shape == ("batch", 12)
    ort_out = OrtModel(tiny["onnx"]).run({"obs": OBS})["actions"]
    np.testing.assert_allclose(ts.run({"obs": OBS})["actions"], ort_out, atol=1e-6)
    with pytest.raises(ValueError, match=r"expected shape \['batch', 45\], got \[1, 44\]"):
        ts.run({"obs": OBS[:, :44]})


def test_torch_backend_accepts_an_nn_module():
    m = TorchModel(torch.nn.Sequential(torch.nn.Linear(45, 12)))
    assert m.run({"obs": OBS})["actions"].shape == (1, 12)


def test_tensorrt_backend_without_engine_falls_back_loudly_or_refuses(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        m = load_tensor_model(REAL, "tensorrt")
    assert m.backend == "onnxruntime"
    assert any("ENGINE REFUSED" in r.message and "policy.engine.manifest.json" in r.message for r in caplog.records)
    assert any("FALLING BACK to ONNX Runtime" in r.message for r in caplog.records)
    with pytest.raises(EngineMismatchError, match="no TensorRT engine manifest"):
        load_tensor_model(REAL, "tensorrt", fallback="error")
    engine = tmp_path / "policy.engine"
    engine.write_bytes(b"plan")
    with pytest.raises(FileNotFoundError, match="policy.engine: engine has no manifest policy.engine.manifest.json"):
        load_tensor_model(engine, "tensorrt")


def test_control_loop_policy_runs_through_a_manifest(tiny):
    """PolicyConfig.model may name a manifest: Policy → load_tensor_model → manifest gate → ONNX Runtime."""
    manifest = Path(str(tiny["onnx"]) + ".manifest.json")
    p = Policy(CFG.model_copy(update={"model": str(manifest)}))
    assert p.model.backend == "onnxruntime"
    s = robot_state(q=CFG.default_pose)
    assert p.step(s, np.array([0.5, 0, 0])).is_finite()
