"""Tiny random-weight checkpoints in the real layouts, for smoke tests of the export toolchain (minutes, not 16 GB).

    python -m exporters.tiny OUT_DIR

writes OUT_DIR/navila (VILA-1.5 multi-folder, Llama-3 tokens), OUT_DIR/streamvln (LLaVA-Video-Qwen2 single folder, Qwen
tokens) and, when exporters.policy provides it, OUT_DIR/policy. Deterministic: same seed → byte-identical weights.
Shapes are tiny (LLM hidden 64 with 2 heads of 32 and 1 KV head, SigLIP hidden 32) but every structural number the
exporters depend on is real, and the LLM's head size is one TensorRT-LLM's attention kernels support (≥ 32, see
exporters.llm.SUPPORTED_HEAD_SIZES), so the GPU tests can build and run it:
SigLIP 384 px / patch 14 → 27×27 = 729 patches → 196 tokens per frame; select layer −2; projector in 4 × vision
hidden; the real special tokens and chat templates; sharded llm/ weights; bf16 tensors.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SEED = 0
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
QWEN2_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Meta-Llama-3-8B-Instruct's template; Qwen2-7B-Instruct's template.
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
QWEN2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CORPUS = [
    "Imagine you are a robot programmed for navigation tasks. You have been given a video of historical observations",
    "and current observation. Your assigned task is: walk forward and turn left at the door, then stop.",
    "Analyze this series of images to decide your next action, which could be turning left or right by a specific "
    "degree, moving forward a certain distance, or stop if the task is completed.",
    "The next action is move forward 75 cm. The next action is turn left 30 degrees. The next action is stop.",
    "You are an autonomous navigation assistant. Devise an action sequence to follow the instruction using the four "
    "actions: TURN LEFT (←) or TURN RIGHT (→) by 15 degrees, MOVE FORWARD (↑) by 25 centimeters, or STOP.",
    "you can see <image>. in front of you is <image>. These are your historical observations <memory>.",
    "↑↑←← →→ STOP ↑←→",
    "You are a helpful language and vision assistant. system user assistant",
]
# Tiny SigLIP with the real geometry (so400m: hidden 1152, 27 layers, 16 heads, FFN 4304).
TINY_SIGLIP = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=3,
    num_attention_heads=4,
    image_size=384,
    patch_size=14,
    num_channels=3,
    layer_norm_eps=1e-6,
    hidden_act="gelu_pytorch_tanh",
    attention_dropout=0.0,
)
TINY_LLM = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=2,  # head size 64 / 2 = 32: the smallest TensorRT-LLM 0.12's masked-MHA kernels dispatch
    num_key_value_heads=1,  # GQA 2:1, as Llama-3-8B's 32:8 and Qwen2-7B's 28:4 group queries
    max_position_embeddings=8192,  # Llama-3-8B's context; StreamVLN's 16-frame window needs > 4096
)
SIGLIP_PREPROCESSOR = {
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_processor_type": "SiglipImageProcessor",
    "image_std": [0.5, 0.5, 0.5],
    "processor_class": "SiglipProcessor",
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"height": 384, "width": 384},
}


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _save(tensors: dict[str, Any], path: Path) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.detach().to("cpu").contiguous() for k, v in sorted(tensors.items())}, str(path), metadata={"format": "pt"}
    )


def _bf16(sd: dict[str, Any]) -> dict[str, Any]:
    return {k: v.bfloat16() for k, v in sd.items()}  # the released checkpoints are bf16


# ---------------------------------------------------------------------------------------------------- tokenizers
def _write_tokenizer(
    folder: Path,
    specials: list[str],
    extra_cfg: dict,
    special_map: dict,
    template: str,
    corpus: list[str] = CORPUS,
    bpe_size: int = 400,
) -> int:
    """A real byte-level BPE `tokenizers` tokenizer trained on `corpus` (bpe_size tokens) plus the family's special
    tokens. Returns its size. Like Llama-3's tokenizer.json, a BOS token (if any) is prepended by the post-processor."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=bpe_size, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    tok.add_special_tokens(specials)
    bos = special_map.get("bos_token")
    if bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1", special_tokens=[(bos, tok.token_to_id(bos))]
        )
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    decoder = {
        str(tok.token_to_id(s)): {
            "content": s,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for s in specials
    }
    _write_json(
        folder / "tokenizer_config.json",
        {
            "added_tokens_decoder": decoder,
            "chat_template": template,
            "clean_up_tokenization_spaces": False,
            "model_max_length": 4096,
            "tokenizer_class": "PreTrainedTokenizerFast",
            **extra_cfg,
            **special_map,
        },
    )
    _write_json(
        folder / "special_tokens_map.json",
        {
            k: {"content": v, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
            for k, v in special_map.items()
            if v is not None
        },
    )
    return tok.get_vocab_size()


def write_llama3_tokenizer(folder: Path, corpus: list[str] = CORPUS, bpe_size: int = 400) -> int:
    """The Llama-3 family's tokenizer files (special tokens, BOS by the post-processor, chat template) with a BPE
    vocabulary trained on `corpus`; NaVILA's LLM folder layout. Returns the vocabulary size."""
    return _write_tokenizer(
        folder,
        LLAMA3_SPECIALS,
        {"model_input_names": ["input_ids", "attention_mask"]},
        {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "pad_token": None},
        LLAMA3_TEMPLATE,
        corpus,
        bpe_size,
    )


def _ids(folder: Path) -> dict[str, int]:
    data = json.loads((folder / "tokenizer.json").read_text())
    return {t["content"]: t["id"] for t in data["added_tokens"]}


# ---------------------------------------------------------------------------------------------------- SigLIP
def _siglip_state_dict(num_layers: int, with_head: bool, siglip: dict | None = None) -> dict[str, Any]:
    """A seeded tiny SigLIP, keys in the transformers 4.x layout (`vision_model.*`), as the released checkpoints."""
    import torch
    from transformers import SiglipVisionConfig, SiglipVisionModel

    siglip = siglip or TINY_SIGLIP
    torch.manual_seed(SEED + 1)
    model = SiglipVisionModel(SiglipVisionConfig(**siglip))
    sd = {k: v for k, v in model.state_dict().items() if not k.endswith("position_ids")}
    sd = {(k if k.startswith("vision_model.") else "vision_model." + k): v for k, v in sd.items()}
    # deterministic, non-trivial LayerNorms (random init leaves them at 1/0)
    g = torch.Generator().manual_seed(SEED + 2)
    for k, v in sd.items():
        if "norm" in k:
            sd[k] = (1.0 if k.endswith("weight") else 0.0) + 0.1 * torch.randn(v.shape, generator=g)
    dropped = [f"encoder.layers.{i}." for i in range(num_layers, siglip["num_hidden_layers"])]
    return {k: v for k, v in sd.items() if not any(p in k for p in dropped) and (with_head or ".head." not in k)}


def _siglip_config_json(siglip: dict | None = None) -> dict:
    return {
        "architectures": ["SiglipVisionModel"],
        "model_type": "siglip_vision_model",
        "torch_dtype": "bfloat16",
        "transformers_version": "4.36.2",
        **(siglip or TINY_SIGLIP),
    }


def _mlp(shapes: dict[str, tuple[int, ...]], seed: int, norms: tuple[str, ...] = ()) -> dict[str, Any]:
    """Seeded weights: Linear ~ N(0, 1/fan_in), biases small, LayerNorm (names in `norms`) ≈ 1 / ≈ 0."""
    import torch

    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in shapes.items():
        noise = torch.randn(shape, generator=g)
        if k.rsplit(".", 1)[0] in norms:
            out[k] = (1.0 if k.endswith("weight") else 0.0) + 0.1 * noise
        elif k.endswith("bias"):
            out[k] = 0.02 * noise
        else:
            out[k] = noise / shape[-1] ** 0.5
    return out


def _llm_state_dict(cls_name: str, cfg: dict) -> dict[str, Any]:
    import torch
    import transformers

    config_cls = getattr(transformers, cls_name.replace("ForCausalLM", "Config"))
    model_cls = getattr(transformers, cls_name)
    torch.manual_seed(SEED + 3)
    config = config_cls(**{k: v for k, v in cfg.items() if k not in ("architectures", "model_type")})
    return dict(model_cls(config).state_dict())


# ---------------------------------------------------------------------------------------------------- NaVILA
def write_tiny_navila(out: Path, siglip: dict | None = None, llm: dict | None = None) -> Path:
    """A NaVILA multi-folder checkpoint with the tiny shapes, or the given SigLIP / LLM shapes (real-scale smoke)."""
    SIGLIP_, LLM_ = siglip or TINY_SIGLIP, llm or TINY_LLM
    llm_dir, vt_dir, mp_dir = out / "llm", out / "vision_tower", out / "mm_projector"
    n_tok = write_llama3_tokenizer(llm_dir)
    ids = _ids(llm_dir)
    llm_cfg = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": ids["<|begin_of_text|>"],
        "eos_token_id": ids["<|end_of_text|>"],
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "mlp_bias": False,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-5,
        "rope_scaling": None,
        "rope_theta": 500000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "vocab_size": n_tok,
        "model_max_length": 4096,
        "tokenizer_model_max_length": 4096,
        "tokenizer_padding_side": "right",
        "transformers_version": "4.36.2",
        **LLM_,
    }
    _write_json(llm_dir / "config.json", {"_name_or_path": "./llm", **llm_cfg})
    _write_json(
        llm_dir / "generation_config.json",
        {
            "bos_token_id": ids["<|begin_of_text|>"],
            "eos_token_id": [ids["<|end_of_text|>"], ids["<|eot_id|>"]],
            "transformers_version": "4.36.2",
        },
    )
    sd = _bf16(_llm_state_dict("LlamaForCausalLM", llm_cfg))
    # sharded like the real llm/ (model-0000k-of-0000n.safetensors + index)
    names = sorted(sd)
    half = {
        n: ("model-00001-of-00002.safetensors" if i < len(names) // 2 else "model-00002-of-00002.safetensors")
        for i, n in enumerate(names)
    }
    for shard in sorted(set(half.values())):
        _save({n: sd[n] for n in names if half[n] == shard}, llm_dir / shard)
    total = sum(v.numel() * v.element_size() for v in sd.values())
    _write_json(llm_dir / "model.safetensors.index.json", {"metadata": {"total_size": total}, "weight_map": half})

    _write_json(vt_dir / "config.json", {"_name_or_path": "./vision_tower", **_siglip_config_json(SIGLIP_)})
    _write_json(vt_dir / "preprocessor_config.json", SIGLIP_PREPROCESSOR)
    _save(
        _bf16(_siglip_state_dict(SIGLIP_["num_hidden_layers"], with_head=True, siglip=SIGLIP_)),
        vt_dir / "model.safetensors",
    )

    vh, d = SIGLIP_["hidden_size"], LLM_["hidden_size"]
    mp_cfg = {
        "architectures": ["MultimodalProjector"],
        "mm_projector_type": "mlp_downsample",
        "model_type": "v2l_projector",
        "torch_dtype": "bfloat16",
        "transformers_version": "4.36.2",
    }
    _write_json(mp_dir / "config.json", {"_name_or_path": "./mm_projector", **mp_cfg})
    _save(
        _bf16(
            _mlp(
                {
                    "layers.1.weight": (4 * vh,),
                    "layers.1.bias": (4 * vh,),
                    "layers.2.weight": (d, 4 * vh),
                    "layers.2.bias": (d,),
                    "layers.4.weight": (d, d),
                    "layers.4.bias": (d,),
                },
                SEED + 4,
                norms=("layers.1",),
            )
        ),
        mp_dir / "model.safetensors",
    )

    _write_json(
        out / "config.json",
        {
            "_name_or_path": "tiny-navila",
            "architectures": ["LlavaLlamaModel"],
            "model_type": "llava_llama",
            "drop_path_rate": 0.0,
            "hidden_size": d,
            "image_aspect_ratio": "resize",
            "interpolate_mode": "linear",
            "llm_cfg": {"_name_or_path": "./llm", **llm_cfg},
            "mm_hidden_size": vh,
            "mm_projector_cfg": {"_name_or_path": "./mm_projector", **mp_cfg},
            "mm_projector_lr": None,
            "mm_use_im_patch_token": False,
            "mm_use_im_start_end": False,
            "mm_vision_select_feature": "cls_patch",
            "mm_vision_select_layer": -2,
            "model_dtype": "torch.bfloat16",
            "num_video_frames": 8,
            "resume_path": "./vlm",
            "s2": False,
            "s2_max_split_size": 336,
            "s2_scales": "336,672,1008",
            "transformers_version": "4.36.2",
            "tune_language_model": True,
            "tune_mm_projector": True,
            "tune_vision_tower": True,
            "vision_resolution": -1,
            "vision_tower_cfg": {"_name_or_path": "./vision_tower", **_siglip_config_json(SIGLIP_)},
        },
    )
    return out


# ---------------------------------------------------------------------------------------------------- StreamVLN
def write_tiny_streamvln(out: Path) -> Path:
    import torch

    n_tok = _write_tokenizer(
        out,
        QWEN2_SPECIALS,
        {"errors": "replace", "split_special_tokens": False},
        {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
        QWEN2_TEMPLATE,
    )
    ids = _ids(out)
    vh, d = TINY_SIGLIP["hidden_size"], TINY_LLM["hidden_size"]
    cfg = {
        "architectures": ["StreamVLNForCausalLM"],
        "model_type": "llava_qwen",
        "attention_dropout": 0.0,
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "max_window_layers": 2,
        "rms_norm_eps": 1e-6,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "use_sliding_window": False,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "vocab_size": n_tok,
        **TINY_LLM,
        # LLaVA-NeXT / StreamVLN multimodal fields
        "mm_vision_tower": "tiny-siglip-patch14-384",
        "vision_config": _siglip_config_json(),
        "mm_hidden_size": vh,
        "mm_projector_type": "mlp2x_gelu",
        "mm_vision_select_layer": -2,
        "mm_vision_select_feature": "patch",
        "mm_spatial_pool_mode": "bilinear",
        "mm_spatial_pool_stride": 2,
        "mm_patch_merge_type": "spatial_unpad",
        "mm_newline_position": "grid",
        "image_aspect_ratio": "anyres_max_9",
        "mm_use_im_start_end": False,
        "mm_use_im_patch_token": False,
        "add_faster_video": False,
        "num_history": 8,
        "tokenizer_model_max_length": 4096,
        "tokenizer_padding_side": "right",
        "transformers_version": "4.45.1",
    }
    _write_json(out / "config.json", cfg)
    _write_json(
        out / "generation_config.json",
        {
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]],
            "pad_token_id": ids["<|endoftext|>"],
            "transformers_version": "4.45.1",
        },
    )
    sd = _llm_state_dict("Qwen2ForCausalLM", cfg)
    # LLaVA-NeXT's tower: last encoder layer deleted, head replaced by Identity (so neither is saved)
    tower = _siglip_state_dict(TINY_SIGLIP["num_hidden_layers"] - 1, with_head=False)
    sd.update({"model.vision_tower.vision_tower." + k: v for k, v in tower.items()})
    sd.update(
        {
            "model.mm_projector." + k: v
            for k, v in _mlp(
                {"0.weight": (d, vh), "0.bias": (d,), "2.weight": (d, d), "2.bias": (d,)}, SEED + 5
            ).items()
        }
    )
    sd["model.image_newline"] = torch.randn(d, generator=torch.Generator().manual_seed(SEED + 6))
    _save(_bf16(sd), out / "model.safetensors")
    return out


# ---------------------------------------------------------------------------------------------------- entry points
def write_tiny_checkpoints(out_dir: str | Path) -> dict[str, Path]:
    """Write navila/, streamvln/ (and policy/ when available) under out_dir; returns {name: folder}."""
    out = Path(out_dir)
    written = {"navila": write_tiny_navila(out / "navila"), "streamvln": write_tiny_streamvln(out / "streamvln")}
    try:
        from exporters.policy import write_tiny_policy_checkpoints
    except ImportError:
        print(
            "note: exporters.policy.write_tiny_policy_checkpoints not available; policy checkpoints skipped",
            file=sys.stderr,
        )
    else:
        write_tiny_policy_checkpoints(out / "policy")
        written["policy"] = out / "policy"
    return written


def _tree(folder: Path) -> list[str]:
    return [
        f"  {p.relative_to(folder.parent)}  {p.stat().st_size:,} B" for p in sorted(folder.rglob("*")) if p.is_file()
    ]


# Real-scale smoke (make smoke-real): the real SigLIP so400m-patch14-384 tower and VILA projector sizes, a 2-layer LLM
# at Llama-3-8B's real width (hidden 4096, 32 heads / 8 KV heads, FFN 14336, vocab 128259), random weights.
REAL_SIGLIP = dict(TINY_SIGLIP, hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16)
REAL_WIDTH_LLM = dict(
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=2,
    num_attention_heads=32,
    num_key_value_heads=8,
    max_position_embeddings=8192,
    vocab_size=128259,
)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--real-scale"] and len(argv) == 2:
        folder = write_tiny_navila(Path(argv[1]) / "navila", siglip=REAL_SIGLIP, llm=REAL_WIDTH_LLM)
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        print(f"navila (real vision sizes, 2-layer LLM at real width): {folder}  ({size / 2**30:.2f} GiB)")
        return 0
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    for name, folder in write_tiny_checkpoints(argv[0]).items():
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        print(f"{name}: {folder}  ({size / 1024:.0f} KiB)")
        print("\n".join(_tree(folder)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
