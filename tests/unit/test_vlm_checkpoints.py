"""Checkpoint readers on the tiny checkpoints: the numbers downstream exporters need, and clear errors."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from engines.vlm.checkpoints import (
    CheckpointError,
    load_navila_checkpoint,
    load_streamvln_checkpoint,
    load_vlm_checkpoint,
)
from exporters.tiny import TINY_LLM, TINY_SIGLIP, write_tiny_checkpoints

pytest.importorskip("transformers")


@pytest.fixture
def navila(tiny, tmp_path) -> Path:
    """A private copy to break."""
    return Path(shutil.copytree(tiny["navila"], tmp_path / "navila"))


@pytest.fixture
def streamvln(tiny, tmp_path) -> Path:
    return Path(shutil.copytree(tiny["streamvln"], tmp_path / "streamvln"))


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def _resave(path: Path, edit) -> None:
    from safetensors.torch import load_file, save_file

    sd = load_file(str(path))
    edit(sd)
    save_file(sd, str(path), metadata={"format": "pt"})


# ---------------------------------------------------------------------------------------------------- happy path
def test_navila_numbers(tiny):
    ck = load_navila_checkpoint(tiny["navila"])
    llm, v = ck.llm, ck.vision
    assert (llm.family, llm.hidden_size, llm.num_layers, llm.num_heads, llm.num_kv_heads, llm.head_dim) == (
        "llama",
        TINY_LLM["hidden_size"],
        2,
        2,
        1,
        32,  # ≥ 32: TensorRT-LLM's attention kernels start at head size 32 (exporters.llm.SUPPORTED_HEAD_SIZES)
    )
    assert llm.vocab_size == max(llm.special_tokens.values()) + 1 and llm.rope_theta == 500000.0
    specials = llm.special_tokens
    for tok in ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"):
        assert tok in specials
    assert llm.end_token == "<|eot_id|>" and llm.end_id == specials["<|eot_id|>"]
    assert llm.end_id in llm.eos_ids and llm.bos_id == specials["<|begin_of_text|>"]
    assert (v.image_size, v.patch_size, v.hidden_size, v.grid, v.num_patches) == (384, 14, 32, 27, 729)
    assert (v.num_layers, v.stored_layers, v.select_layer) == (3, 3, -2)
    assert v.image_mean == (0.5, 0.5, 0.5) and v.resample == 3
    assert ck.projector_type == "mlp_downsample" and ck.tokens_per_frame == 196 and ck.num_video_frames == 8
    assert len({f for f, _, _ in ck.llm_weights.entries.values()}) == 2  # sharded llm/ read through the index
    assert sorted(ck.projector_state_dict()) == [f"layers.{i}.{p}" for i in (1, 2, 4) for p in ("bias", "weight")]
    assert not any(k.startswith("vision_model.") for k in ck.vision_state_dict())


def test_streamvln_numbers(tiny):
    ck = load_streamvln_checkpoint(tiny["streamvln"])
    llm, v = ck.llm, ck.vision
    assert (llm.family, llm.hidden_size, llm.num_layers, llm.num_kv_heads, llm.head_dim) == ("qwen2", 64, 2, 1, 32)
    assert llm.end_token == "<|im_end|>" and llm.end_id == llm.special_tokens["<|im_end|>"]
    assert "<|im_start|>" in llm.special_tokens and llm.end_id in llm.eos_ids
    # LLaVA-NeXT deleted the tower's last layer: features = last stored layer = layer −2 of the full tower
    assert (v.num_layers, v.stored_layers, v.select_layer) == (TINY_SIGLIP["num_hidden_layers"], 2, -1)
    assert (ck.pool_mode, ck.pool_stride, ck.tokens_per_frame) == ("bilinear", 2, 196)
    assert sorted(ck.projector_state_dict()) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    assert type(load_vlm_checkpoint(tiny["streamvln"])).__name__ == "StreamVlnCheckpoint"
    assert type(load_vlm_checkpoint(tiny["navila"])).__name__ == "NavilaCheckpoint"


def test_tokenizers_load_with_chat_templates(tiny):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny["navila"] / "llm")
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "go <image>\n left"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt.startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n")
    assert prompt.endswith("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    ids = tok("hello").input_ids
    assert ids[0] == tok.convert_tokens_to_ids("<|begin_of_text|>")  # BOS added, like Llama-3's tokenizer
    assert tok.decode(tok("turn left 30 degrees", add_special_tokens=False).input_ids) == "turn left 30 degrees"
    qwen = AutoTokenizer.from_pretrained(tiny["streamvln"])
    text = qwen.apply_chat_template(
        [{"role": "user", "content": "you can see <image>."}], tokenize=False, add_generation_prompt=True
    )
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nyou can see "
        "<image>.<|im_end|>\n<|im_start|>assistant\n"
    )
    assert qwen("<|im_end|>", add_special_tokens=False).input_ids == [qwen.convert_tokens_to_ids("<|im_end|>")]


def test_tiny_llms_load_in_transformers(tiny):
    from transformers import LlamaForCausalLM, Qwen2ForCausalLM

    llama = LlamaForCausalLM.from_pretrained(tiny["navila"] / "llm")
    assert llama.config.num_key_value_heads == 1
    qwen = Qwen2ForCausalLM.from_pretrained(tiny["streamvln"])
    assert qwen.config.vocab_size == load_streamvln_checkpoint(tiny["streamvln"]).llm.vocab_size


def test_generator_is_deterministic(tiny, tmp_path):
    again = write_tiny_checkpoints(tmp_path)

    def digest(folder: Path) -> dict[str, str]:
        return {
            str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.safetensors"))
        }

    for name in ("navila", "streamvln"):
        assert digest(again[name]) == digest(tiny[name])


def test_cli_writes_and_lists(tmp_path, capsys):
    from exporters.tiny import main

    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "navila/mm_projector/model.safetensors" in out and "streamvln/model.safetensors" in out
    assert (tmp_path / "navila" / "llm" / "model.safetensors.index.json").is_file()


# ---------------------------------------------------------------------------------------------------- errors
def test_missing_folders(navila, tmp_path):
    with pytest.raises(CheckpointError, match="nope: missing folder"):
        load_navila_checkpoint(tmp_path / "nope")
    shutil.rmtree(navila / "vision_tower")
    with pytest.raises(CheckpointError, match=r"vision_tower: missing folder \(expected the HF SiglipVisionModel"):
        load_navila_checkpoint(navila)


def test_missing_preprocessor_config(navila):
    (navila / "vision_tower" / "preprocessor_config.json").unlink()
    with pytest.raises(CheckpointError, match=r"vision_tower/preprocessor_config.json: missing"):
        load_navila_checkpoint(navila)


def test_missing_weights_file(navila):
    (navila / "mm_projector" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"mm_projector: no weights \(expected model.safetensors"):
        load_navila_checkpoint(navila)


def test_missing_shard(navila):
    (navila / "llm" / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"model-00002-of-00002.safetensors: missing \(listed in .*index.json\)"):
        load_navila_checkpoint(navila)


def test_truncated_safetensors(navila):
    f = navila / "vision_tower" / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=r"vision_tower/model.safetensors: truncated safetensors"):
        load_navila_checkpoint(navila)


def test_garbage_safetensors(navila):
    f = navila / "mm_projector" / "model.safetensors"
    f.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!" + b"\x00" * 64)
    with pytest.raises(CheckpointError, match=r"mm_projector/model.safetensors: corrupted safetensors"):
        load_navila_checkpoint(navila)
    f.write_bytes(b"\x01\x02")
    with pytest.raises(CheckpointError, match="shorter than the 8-byte header"):
        load_navila_checkpoint(navila)


def test_projector_in_features_must_be_4x_vision_hidden(navila):
    import torch

    def edit(sd):
        sd["layers.2.weight"] = torch.zeros(64, 3 * 32, dtype=torch.bfloat16)

    _resave(navila / "mm_projector" / "model.safetensors", edit)
    with pytest.raises(
        CheckpointError,
        match=r"mm_projector/model.safetensors: tensor 'layers.2.weight' has shape "
        r"\[64, 96\], expected \[64, 128\] \(LLM hidden 64, in_features = 4 × "
        r"vision hidden 32\)",
    ):
        load_navila_checkpoint(navila)


def test_wrong_projector_type(navila, streamvln):
    _edit_json(navila / "mm_projector" / "config.json", mm_projector_type="mlp2x_gelu")
    with pytest.raises(
        CheckpointError, match="mm_projector/config.json: mm_projector_type 'mlp2x_gelu', expected 'mlp_downsample'"
    ):
        load_navila_checkpoint(navila)
    _edit_json(streamvln / "config.json", mm_projector_type="mlp_downsample")
    with pytest.raises(CheckpointError, match="expected 'mlp2x_gelu'"):
        load_streamvln_checkpoint(streamvln)


def test_llm_layer_count_vs_config(navila):
    _edit_json(navila / "llm" / "config.json", num_hidden_layers=3)
    with pytest.raises(CheckpointError, match="2 decoder layers in the safetensors, config says num_hidden_layers 3"):
        load_navila_checkpoint(navila)


def test_vision_shape_vs_config(navila):
    _edit_json(navila / "vision_tower" / "config.json", hidden_size=48, num_attention_heads=4)
    with pytest.raises(
        CheckpointError,
        match=r"patch_embedding.weight' has shape \[32, 3, 14, 14\], expected "
        r"\[48, 3, 14, 14\]",
    ):
        load_navila_checkpoint(navila)


def test_bad_json(navila):
    (navila / "config.json").write_text("{ not json")
    with pytest.raises(CheckpointError, match=r"navila/config.json: not valid JSON"):
        load_navila_checkpoint(navila)


def test_tokenizer_without_stop_token(streamvln):
    data = json.loads((streamvln / "tokenizer.json").read_text())
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] != "<|im_end|>"]
    (streamvln / "tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=r"tokenizer.json: stop token '<\|im_end\|>' is not an added"):
        load_streamvln_checkpoint(streamvln)


def test_streamvln_tower_layer_count(streamvln):
    def edit(sd):
        for k in [k for k in sd if ".encoder.layers.1." in k]:
            del sd[k]

    _resave(streamvln / "model.safetensors", edit)
    with pytest.raises(
        CheckpointError,
        match="1 SigLIP layers under 'model.vision_tower.vision_tower.vision_model.', "
        r"expected 2 \(the 3-layer tower minus its last layer\)",
    ):
        load_streamvln_checkpoint(streamvln)


def test_streamvln_unsupported_pooling(streamvln):
    _edit_json(streamvln / "config.json", mm_spatial_pool_mode="average")
    with pytest.raises(CheckpointError, match="mm_spatial_pool_mode 'average', expected 'bilinear'"):
        load_streamvln_checkpoint(streamvln)
