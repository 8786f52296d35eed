"""TensorRT-LLM build plans checked field by field against TensorRT-LLM v0.12.0-jetson's own flow
(`NVIDIA/TensorRT-LLM` branch v0.12.0-jetson: README4Jetson.md, examples/multimodal/README.md, trtllm-build flags)."""

from __future__ import annotations

import json
import sys

import pytest

from exporters.awq_text import INSTRUCTIONS, calibration_texts
from exporters.awq_text import main as calib_main
from exporters.llm import REFERENCE_LLMS, LlmBuildPlan, PlanError, PlanStep, plan_for, run_plan

ROOT = "/opt/TensorRT-LLM"
# The real NaVILA llm/config.json numbers (Llama-3-8B, vocab 128259) and Qwen2-7B-Instruct (exporters.llm keeps them
# for plans made before the download).
NAVILA_LLM = {"architectures": ["LlamaForCausalLM"], **REFERENCE_LLMS["navila"]}
QWEN2_7B = {"architectures": ["Qwen2ForCausalLM"], **REFERENCE_LLMS["streamvln"]}


@pytest.fixture
def navila_ckpt(tmp_path):
    (tmp_path / "navila" / "llm").mkdir(parents=True)
    (tmp_path / "navila" / "llm" / "config.json").write_text(json.dumps(NAVILA_LLM))
    return tmp_path / "navila"


@pytest.fixture
def streamvln_ckpt(tmp_path):
    (tmp_path / "streamvln").mkdir()
    (tmp_path / "streamvln" / "config.json").write_text(json.dumps(QWEN2_7B))
    return tmp_path / "streamvln"


def test_navila_plan_matches_tensorrt_md(navila_ckpt, tmp_path):
    plan = plan_for(
        navila_ckpt, "navila", "int4_wo", frames=8, max_new_tokens=32, trtllm_root=ROOT, out_dir=tmp_path / "out"
    )
    s = plan.sizes
    assert (s.max_batch_size, s.frames, s.tokens_per_frame) == (1, 8, 196)
    assert s.max_multimodal_len == 1568  # 1 × 8 × 196
    assert s.max_input_len == 2048  # ≈2048
    assert s.max_seq_len == 2080  # ≈2080 (output ≤ 32)
    assert s.max_num_tokens == 2048
    assert s.text_budget == s.template_tokens + s.instruction_token_cap and s.max_input_len >= 1568 + s.text_budget
    assert "estimate" in s.template_count  # no tokenizer.json in this folder
    assert (plan.end_id, plan.pad_id) == (128009, 128009)  # <|eot_id|>
    assert plan.llm.vocab_size == 128259 and plan.llm.num_kv_heads == 8 and plan.llm.head_dim == 128
    assert plan.llm.rope_theta == 5e5 and plan.llm.max_position_embeddings == 8192
    # KV cache: 32 × 2 × 8 × 128 × 2 B = 128 KiB per token (§7)
    assert plan.kv_cache.bytes_per_token == 131072 and plan.kv_cache.kib_per_token == 128
    assert plan.kv_cache.bytes_at_max_seq_len == 131072 * 2080
    assert plan.kv_cache.runtime_max_tokens == 2080

    convert, build = plan.steps
    assert convert.name == "convert_checkpoint"
    assert convert.argv[1] == f"{ROOT}/examples/llama/convert_checkpoint.py"
    assert convert.argv[2:] == (
        "--model_dir",
        str(navila_ckpt / "llm"),
        "--output_dir",
        plan.checkpoint_dir,
        "--dtype",
        "float16",
        "--use_weight_only",
        "--weight_only_precision",
        "int4",
    )
    assert build.argv[0] == "trtllm-build"
    args = plan.build_args()
    assert args["--checkpoint_dir"] == plan.checkpoint_dir and args["--output_dir"] == plan.engine_dir
    assert args["--max_batch_size"] == "1"
    assert args["--max_input_len"] == "2048" and args["--max_seq_len"] == "2080"
    assert args["--max_multimodal_len"] == "1568"
    assert args["--gemm_plugin"] == "float16" and args["--gpt_attention_plugin"] == "float16"
    assert args["--remove_input_padding"] == "enable" and args["--paged_kv_cache"] == "enable"
    assert args["--input_timing_cache"] == args["--output_timing_cache"] == plan.timing_cache
    assert "--use_fused_mlp" not in build.argv  # never with quantisation (§5.3)
    assert "--max_output_len" not in build.argv and "--tp_size" not in build.argv  # removed in 0.12


def test_streamvln_plan(streamvln_ckpt, tmp_path):
    plan = plan_for(streamvln_ckpt, "streamvln", "int4_wo", trtllm_root=ROOT, out_dir=tmp_path / "out")
    assert plan.sizes.frames == 16 and plan.sizes.max_multimodal_len == 3136  # 8 memory + 8 turns, whole window
    assert plan.build_args()["--max_multimodal_len"] == "3136"
    assert plan.sizes.max_input_len == 4096  # the StreamVLN window fits 4096 (docs/vln-models.md §2.2)
    assert plan.steps[0].argv[1] == f"{ROOT}/examples/qwen/convert_checkpoint.py"
    assert (plan.end_id, plan.pad_id) == (151645, 151643)  # <|im_end|>, <|endoftext|>
    assert plan.kv_cache.bytes_per_token == 57344 and plan.kv_cache.kib_per_token == 56
    assert plan.sizes.max_seq_len == plan.sizes.max_input_len + 32
    assert plan.sizes.max_input_len >= 3136 + plan.sizes.text_budget


def test_awq_route_argv(navila_ckpt, tmp_path):
    plan = plan_for(navila_ckpt, "navila", "int4_awq", trtllm_root=ROOT, out_dir=tmp_path / "out")
    calib, quant, build = plan.steps
    calib_dir = str(tmp_path / "out" / "calib_navigation")
    assert calib.argv[1:] == ("-m", "exporters.awq_text", "--out", calib_dir, "--n", "32", "--family", "navila")
    assert quant.argv[1] == f"{ROOT}/examples/quantization/quantize.py"
    assert quant.argv[2:] == (
        "--model_dir",
        str(navila_ckpt / "llm"),
        "--output_dir",
        plan.checkpoint_dir,
        "--dtype",
        "float16",
        "--qformat",
        "int4_awq",
        "--awq_block_size",
        "128",
        "--calib_size",
        "32",
        "--calib_dataset",
        calib_dir,
        "--batch_size",
        "1",
        "--calib_max_seq_length",
        "512",
    )
    assert build.argv[build.argv.index("--checkpoint_dir") + 1] == plan.checkpoint_dir
    assert "--use_fused_mlp" not in build.argv


def test_plan_render_and_json(navila_ckpt, tmp_path, capsys):
    plan = plan_for(navila_ckpt, "navila", "int4_awq", trtllm_root=ROOT, out_dir=tmp_path / "out")
    text = plan.render()
    print(text)
    for needle in (
        "1 × 8 × 196 = 1568",
        "ceil(2032 / 256) × 256 = 2048",
        "2048 + 32 = 2080",
        "128 KiB per token",
        "quantize.py",
        "trtllm-build",
        "--max_multimodal_len 1568",
        "end_id 128009",
    ):
        assert needle in text, needle
    assert "1568" in capsys.readouterr().out
    again = LlmBuildPlan.model_validate_json(plan.to_json())
    assert again == plan
    with pytest.raises(Exception):
        plan.route = "int4_wo"  # frozen


def test_template_counted_with_tokenizer(tmp_path):
    from exporters.tiny import write_tiny_navila

    ckpt = write_tiny_navila(tmp_path / "navila")
    plan = plan_for(ckpt, "navila", "int4_wo", trtllm_root=ROOT, out_dir=tmp_path / "out")
    assert plan.sizes.template_count.startswith("runtime tokenisation with ")
    assert 0 < plan.sizes.template_tokens
    # a checkpoint object from engines.vlm.checkpoints: ids come from its tokenizer
    from engines.vlm.checkpoints import load_vlm_checkpoint

    info = load_vlm_checkpoint(ckpt)
    plan2 = plan_for(info, "navila", "int4_wo", trtllm_root=ROOT, out_dir=tmp_path / "out")
    assert plan2.llm_dir == str(ckpt / "llm") and plan2.source_checkpoint == str(ckpt)
    assert plan2.end_id == info.llm.end_id


def test_streamvln_llava_folder_gets_extract_step(tmp_path):
    from exporters.llm import extract_plain_llm
    from exporters.tiny import write_tiny_streamvln

    ckpt = write_tiny_streamvln(tmp_path / "svln")
    plan = plan_for(ckpt, "streamvln", "int4_wo", trtllm_root=ROOT, out_dir=tmp_path / "out")
    assert [s.name for s in plan.steps] == ["extract_llm", "convert_checkpoint", "trtllm-build"]
    assert (
        plan.steps[1].argv[plan.steps[1].argv.index("--model_dir") + 1]
        == plan.llm_dir
        == str(tmp_path / "out" / "llm_hf")
    )
    plain = extract_plain_llm(ckpt, tmp_path / "plain")
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(str(plain))
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert (plain / "tokenizer.json").is_file()


def test_run_plan_streams_and_fails_clearly(navila_ckpt, tmp_path):
    plan = plan_for(navila_ckpt, "navila", "int4_wo", trtllm_root=tmp_path / "no-trtllm", out_dir=tmp_path / "o")
    with pytest.raises(PlanError, match="trtllm-build|convert_checkpoint.py not found"):
        run_plan(plan, log=lambda s: None)
    logged = []
    assert run_plan(plan, dry_run=True, log=logged.append) == {}
    assert any("v0.12.0-jetson" in line for line in logged)

    ok = plan.model_copy(
        update={
            "steps": (PlanStep(name="hello", argv=(sys.executable, "-c", "print('one'); print('two')"), produces="-"),)
        }
    )
    logged = []
    times = run_plan(ok, log=logged.append)
    assert set(times) == {"hello"}
    assert any(line.startswith("[hello") and line.endswith("two") for line in logged)
    bad = plan.model_copy(
        update={
            "steps": (
                PlanStep(
                    name="boom", argv=(sys.executable, "-c", "import sys; print('bad'); sys.exit(3)"), produces="-"
                ),
            )
        }
    )
    with pytest.raises(PlanError, match="'boom' failed with exit code 3"):
        run_plan(bad, log=lambda s: None)


def test_calibration_texts_and_cli(tmp_path):
    assert len(INSTRUCTIONS) >= 60 and len(set(INSTRUCTIONS)) == len(INSTRUCTIONS)
    texts = calibration_texts(32, "navila")
    assert len(texts) == 32 and len(set(texts)) == 32
    t = texts[0]
    assert t.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n")
    assert "<image>" not in t and "historical observations \n\n\n\n\n\n\n, and current observation \n." in t
    assert "<|start_header_id|>assistant<|end_header_id|>\n\nThe next action is " in t and t.endswith("<|eot_id|>")
    s = calibration_texts(4, "streamvln")
    assert all(x.startswith("<|im_start|>system\n") and x.endswith("<|im_end|>") for x in s)
    assert calib_main(["--out", str(tmp_path / "calib.jsonl"), "--n", "5"]) == 0
    rows = [json.loads(x) for x in (tmp_path / "calib.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and set(rows[0]) == {"text"}
    assert (tmp_path / "calib" / "train.jsonl").read_text() == (tmp_path / "calib.jsonl").read_text()


# ---------------------------------------------------------------------------------------------------- issue 9
def test_unsupported_head_size_is_refused_at_plan_time(tmp_path):
    """Head size 16 (the old tiny LLM) cannot run on TensorRT-LLM's attention kernels, on any GPU."""
    ck = tmp_path / "n" / "llm"
    ck.mkdir(parents=True)
    (ck / "config.json").write_text(
        json.dumps({**NAVILA_LLM, "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2})
    )
    with pytest.raises(PlanError, match=r"head size 16 .* is not one TensorRT-LLM's attention kernels support"):
        plan_for(tmp_path / "n", "navila", trtllm_root=ROOT, out_dir=tmp_path / "o")


def test_plan_steps_run_with_this_interpreter(navila_ckpt, tmp_path):
    plan = plan_for(navila_ckpt, "navila", "int4_wo", trtllm_root=ROOT, out_dir=tmp_path / "o")
    assert plan.steps[0].argv[0] == sys.executable  # the venv with TensorRT-LLM, not `python3` on PATH


def test_checkpoint_quantised_elsewhere_builds_only(navila_ckpt, tmp_path):
    """AWQ on an x86 GPU host, trtllm-build on the Orin (defect 8)."""
    from exporters.llm import check_tllm_checkpoint

    ck = tmp_path / "awq"
    plan = plan_for(navila_ckpt, "navila", "int4_awq", trtllm_root=ROOT, out_dir=tmp_path / "o", tllm_checkpoint=ck)
    assert [s.name for s in plan.steps] == ["trtllm-build"] and plan.checkpoint_prebuilt
    assert plan.build_args()["--checkpoint_dir"] == str(ck)
    assert "config.json missing" in check_tllm_checkpoint(ck, "int4_awq")[0]
    ck.mkdir()
    (ck / "rank0.safetensors").write_bytes(b"")
    (ck / "config.json").write_text(json.dumps({"quantization": {"quant_algo": "W4A16"}}))
    assert check_tllm_checkpoint(ck, "int4_awq") == [
        f"{ck / 'config.json'}: quantization.quant_algo is 'W4A16', route int4_awq needs 'W4A16_AWQ'"
    ]
    with pytest.raises(PlanError, match="route int4_awq needs 'W4A16_AWQ'"):
        run_plan(plan, log=lambda *_: None)
    (ck / "config.json").write_text(json.dumps({"quantization": {"quant_algo": "W4A16_AWQ"}}))
    assert check_tllm_checkpoint(ck, "int4_awq") == []


def test_template_count_equals_what_the_runtime_builds(tiny):
    """Defect 21: the plan counted 122 template tokens where the runtime built 129."""
    from engines.vlm.generator import IMAGE_TOKEN_INDEX
    from engines.vlm.models import NavilaVlm

    plan = plan_for(tiny["navila"], "navila", "int4_wo", trtllm_root=ROOT, out_dir="/tmp/unused")
    vlm = NavilaVlm(tiny["navila"], max_new_tokens=1)
    vlm.reset("")
    assert plan.sizes.template_tokens == sum(1 for t in vlm.prompt_ids if t != IMAGE_TOKEN_INDEX)
