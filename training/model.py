"""The small navigation VLM in NaVILA's checkpoint layout, its tokenizer, and the training-time module.

Layout written by `save_checkpoint` (read by engines.vlm.checkpoints.load_navila_checkpoint, run by
engines.vlm.models.NavilaVlm):
    config.json            LlavaLlamaModel (mm_vision_select_layer −2, cls_patch, mlp_downsample, 8 frames, resize)
    llm/                   LlamaForCausalLM (config, generation_config, safetensors) + a byte-level BPE tokenizer
                           trained on the prompt / instruction / answer language, with the Llama-3 special tokens
                           and template
    vision_tower/          SiglipVisionModel 384 px / patch 14 (27×27 patches) + preprocessor_config.json (SigLIP)
    mm_projector/          mlp_downsample: DownSampleBlock (exact 2×2 fold) → LayerNorm → Linear → GELU → Linear

Sizes (VISION, LLM below): SigLIP hidden 32, 3 layers (the 2nd-last is read, as NaVILA reads layer 26 of 27),
LLM hidden 128, 3 layers, 4 heads of 32 with 2 KV heads (GQA like Llama-3), rope θ 5e5.
The tower's position embeddings are zero and frozen: a patch feature says what is there, not where; where a thing is
in the frame, and which frame is the current one, reaches the LLM only through token order (the fold's
column-major order, frame order) and its rotary positions — so those parts of the contract matter to the model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engines.vlm.vision import DownSampleBlock
from exporters.tiny import LLAMA3_SPECIALS, SIGLIP_PREPROCESSOR, write_llama3_tokenizer

VISION = dict(
    hidden_size=32,
    intermediate_size=128,
    num_hidden_layers=3,
    num_attention_heads=2,
    image_size=384,
    patch_size=14,
    num_channels=3,
    layer_norm_eps=1e-6,
    hidden_act="gelu_pytorch_tanh",
    attention_dropout=0.0,
)
VISION_USED_LAYERS = VISION["num_hidden_layers"] - 1  # hidden_states[−2] = output of layer n−1
LLM = dict(
    hidden_size=128,
    intermediate_size=384,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=4096,
    rope_theta=500000.0,
    rms_norm_eps=1e-5,
)
VOCAB_SIZE = 640
TRANSFORMERS_VERSION = "4.36.2"  # what the released NaVILA configs carry


# ---------------------------------------------------------------------------------------------------- tokenizer
def train_tokenizer(corpus: list[str], folder: Path, vocab_size: int = VOCAB_SIZE):
    """Byte-level BPE on `corpus` + the Llama-3 special tokens (BOS added by the post-processor, as Llama-3's
    tokenizer.json does) and chat template; saved to `folder`; returns the PreTrainedTokenizerFast."""
    from transformers import PreTrainedTokenizerFast

    write_llama3_tokenizer(folder, corpus, vocab_size - len(LLAMA3_SPECIALS))
    return PreTrainedTokenizerFast.from_pretrained(str(folder))


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------------------------------------------- modules
def make_tower(layers: int = VISION["num_hidden_layers"]) -> nn.Module:
    """SiglipVisionModel with `layers` encoder layers, zero frozen position embeddings, eager attention."""
    from transformers import SiglipVisionConfig, SiglipVisionModel

    cfg = SiglipVisionConfig(**{**VISION, "num_hidden_layers": layers})
    cfg._attn_implementation = "sdpa"
    tower = SiglipVisionModel(cfg)
    pe = _vision_module(tower).embeddings.position_embedding.weight
    with torch.no_grad():
        pe.zero_()
    pe.requires_grad_(False)
    return tower


def _vision_module(tower: nn.Module) -> nn.Module:
    return getattr(tower, "vision_model", tower)  # transformers 4.x nests it, 5.x does not


def tower_features(tower: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """[B, 3, 384, 384] normalised → [B, 729, 32]: the output of encoder layer VISION_USED_LAYERS (= NaVILA's
    hidden_states[−2] of the full tower), computed without running the unused last layer."""
    vm = _vision_module(tower)
    h = vm.embeddings(x)
    for layer in vm.encoder.layers[:VISION_USED_LAYERS]:
        out = layer(h, None)
        h = out[0] if isinstance(out, tuple) else out
    return h


def make_projector(vision_hidden: int = VISION["hidden_size"], d: int = LLM["hidden_size"]) -> nn.Sequential:
    return nn.Sequential(
        DownSampleBlock(), nn.LayerNorm(4 * vision_hidden), nn.Linear(4 * vision_hidden, d), nn.GELU(), nn.Linear(d, d)
    )


def make_llm(vocab_size: int, bos_id: int, eos_id: int) -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=vocab_size,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
        hidden_act="silu",
        **LLM,
    )
    cfg._attn_implementation = "sdpa"
    return LlamaForCausalLM(cfg)


# ---------------------------------------------------------------------------------------------------- checkpoint
def _save(tensors: dict[str, torch.Tensor], path: Path, dtype: torch.dtype) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.detach().to("cpu", dtype).contiguous() for k, v in sorted(tensors.items())},
        str(path),
        metadata={"format": "pt"},
    )


def save_checkpoint(
    out: Path,
    tokenizer_dir: Path,
    tower: nn.Module,
    projector: nn.Module,
    llm: nn.Module,
    dtype: torch.dtype = torch.bfloat16,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the NaVILA multi-folder checkpoint. `tower` must have all VISION["num_hidden_layers"] layers."""
    import shutil

    out = Path(out)
    llm_dir, vt_dir, mp_dir = out / "llm", out / "vision_tower", out / "mm_projector"
    llm_dir.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(tokenizer_dir / name, llm_dir / name)
    lc = llm.config
    dtype_name = str(dtype).removeprefix("torch.")
    llm_cfg = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": lc.bos_token_id,
        "eos_token_id": lc.eos_token_id,
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "mlp_bias": False,
        "pretraining_tp": 1,
        "rope_scaling": None,
        "tie_word_embeddings": False,
        "torch_dtype": dtype_name,
        "use_cache": True,
        "vocab_size": lc.vocab_size,
        "model_max_length": 4096,
        "tokenizer_model_max_length": 4096,
        "tokenizer_padding_side": "right",
        "transformers_version": TRANSFORMERS_VERSION,
        **LLM,
    }
    _write_json(llm_dir / "config.json", {"_name_or_path": "./llm", **llm_cfg})
    eot = lc.eos_token_id
    _write_json(
        llm_dir / "generation_config.json",
        {"bos_token_id": lc.bos_token_id, "eos_token_id": [eot], "transformers_version": TRANSFORMERS_VERSION},
    )
    _save(dict(llm.state_dict()), llm_dir / "model.safetensors", dtype)

    vision_cfg = {
        "architectures": ["SiglipVisionModel"],
        "model_type": "siglip_vision_model",
        "torch_dtype": dtype_name,
        "transformers_version": TRANSFORMERS_VERSION,
        **VISION,
    }
    _write_json(vt_dir / "config.json", {"_name_or_path": "./vision_tower", **vision_cfg})
    _write_json(vt_dir / "preprocessor_config.json", SIGLIP_PREPROCESSOR)
    sd = {k: v for k, v in tower.state_dict().items() if not k.endswith("position_ids")}
    _save(
        {(k if k.startswith("vision_model.") else "vision_model." + k): v for k, v in sd.items()},
        vt_dir / "model.safetensors",
        dtype,
    )

    vh, d = VISION["hidden_size"], LLM["hidden_size"]
    mp_cfg = {
        "architectures": ["MultimodalProjector"],
        "mm_projector_type": "mlp_downsample",
        "model_type": "v2l_projector",
        "torch_dtype": dtype_name,
        "transformers_version": TRANSFORMERS_VERSION,
    }
    _write_json(mp_dir / "config.json", {"_name_or_path": "./mm_projector", **mp_cfg})
    _save({f"layers.{k}": v for k, v in projector.state_dict().items()}, mp_dir / "model.safetensors", dtype)

    _write_json(
        out / "config.json",
        {
            "_name_or_path": "edge-vln-nav10",
            "architectures": ["LlavaLlamaModel"],
            "model_type": "llava_llama",
            "hidden_size": d,
            "image_aspect_ratio": "resize",
            "llm_cfg": {"_name_or_path": "./llm", **llm_cfg},
            "mm_hidden_size": vh,
            "mm_projector_cfg": {"_name_or_path": "./mm_projector", **mp_cfg},
            "mm_use_im_patch_token": False,
            "mm_use_im_start_end": False,
            "mm_vision_select_feature": "cls_patch",
            "mm_vision_select_layer": -2,
            "model_dtype": f"torch.{dtype_name}",
            "num_video_frames": 8,
            "transformers_version": TRANSFORMERS_VERSION,
            "vision_tower_cfg": {"_name_or_path": "./vision_tower", **vision_cfg},
            **({"edge_training": extra} if extra else {}),
        },
    )
    return out
