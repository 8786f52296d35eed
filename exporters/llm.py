"""LLM → TensorRT-LLM INT4 engine: a build plan (data: printed, tested, stored next to the engine) and its runner.

Targets TensorRT-LLM v0.12.0-jetson (the only Jetson build; JetPack 6, Python 3.10). Its own tools do the work:
- route int4_wo:  examples/{llama,qwen}/convert_checkpoint.py --use_weight_only --weight_only_precision int4
- route int4_awq: calibration text (exporters/awq_text.py) → examples/quantization/quantize.py --qformat int4_awq
                  (ModelOpt; needs a CUDA GPU holding the FP16 model — run it on an x86 host, copy the checkpoint)
- then trtllm-build with a prompt table (--max_multimodal_len) sized from the prompt contract.
Flags are those of 0.12 (no --max_output_len / --tp_size; --use_fused_mlp is an off-by-default store_true there and
is never passed: not with quantisation). The example scripts are not in the wheel: `trtllm_root` is a checkout of
the v0.12.0-jetson tag (env TRTLLM_ROOT).
"""

from __future__ import annotations

import json
import math
import os
import queue
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict

from engines.vlm.prompts import IMAGE, MEMORY, navila_prompt, streamvln_prompt

Family = Literal["navila", "streamvln"]
Route = Literal["int4_wo", "int4_awq"]
TRTLLM_VERSION = "0.12.0-jetson"
REPO_ROOT = Path(__file__).resolve().parents[1]

TOKENS_PER_FRAME = 196  # SigLIP-384 27×27 patches → 14×14 (2×2 merge / bilinear pool), both families
INSTRUCTION_TOKEN_CAP = 256  # longest instruction the VLM node accepts (≈190 English words; R2R averages ≈29)
CHARS_PER_TOKEN_EST = 3  # conservative: Llama-3 / Qwen2 BPE average ≥ 4 chars per token on English
ROUND_TO = 256  # max_input_len rounded up for headroom

# Head sizes TensorRT-LLM's masked multi-head attention kernels are instantiated for (0.12:
# cpp/tensorrt_llm/kernels/decoderMaskedMultiheadAttention.cu dispatch; any other size asserts at run time).
SUPPORTED_HEAD_SIZES = (32, 48, 64, 80, 96, 104, 112, 128, 144, 160, 192, 224, 256)
# The LLM config.json numbers of the released checkpoints (docs/vln-models.md §1.1, §2.1): the plan for a checkpoint
# not downloaded yet is derived from these.
REFERENCE_LLMS: dict[str, dict[str, Any]] = {
    "navila": {  # a8cheng/navila-llama3-8b-8f llm/config.json (Llama-3-8B, 3 added tokens)
        "model_type": "llama",
        "num_hidden_layers": 32,
        "hidden_size": 4096,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "intermediate_size": 14336,
        "vocab_size": 128259,
        "rope_theta": 500000.0,
        "max_position_embeddings": 8192,
    },
    "streamvln": {  # Qwen/Qwen2-7B-Instruct config.json (StreamVLN's LLM)
        "model_type": "qwen2",
        "num_hidden_layers": 28,
        "hidden_size": 3584,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "intermediate_size": 18944,
        "vocab_size": 152064,
        "rope_theta": 1000000.0,
        "max_position_embeddings": 32768,
    },
}
CHECKPOINT_SOURCES = {
    "navila": "huggingface a8cheng/navila-llama3-8b-8f (llm/, vision_tower/, mm_projector/)",
    "streamvln": "huggingface mengwei0427/StreamVLN_Video_qwen_1_5_r2r_rxr_envdrop_scalevln (one folder)",
}

FAMILIES: dict[str, dict[str, Any]] = {
    # frames: NaVILA 7 history + current. StreamVLN: the engine re-prefills whole windows (TRT-LLM's runner cannot
    # feed past_key_values back), so its last call carries 8 memory + 8 turn frames.
    "navila": dict(converter="llama", frames=8, end_id=128009, pad_id=128009, stop="<|eot_id|>"),
    "streamvln": dict(converter="qwen", frames=16, end_id=151645, pad_id=151643, stop="<|im_end|>"),
}


class PlanError(RuntimeError):
    """A plan step cannot run (missing tool / script) or failed; the message names the step."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LlmConfigSummary(_Frozen):
    """The numbers of the HF LLM config that the plan uses."""

    model_type: str
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    rope_theta: float

    @classmethod
    def from_dir(cls, llm_dir: str | Path) -> LlmConfigSummary:
        path = Path(llm_dir) / "config.json"
        if not path.is_file():
            raise FileNotFoundError(f"LLM config not found: {path}")
        return cls.from_config(json.loads(path.read_text()))

    @classmethod
    def from_config(cls, c: dict[str, Any]) -> LlmConfigSummary:
        c = c.get("text_config") or c
        heads = c["num_attention_heads"]
        return cls(
            model_type=c.get("model_type", "?"),
            num_layers=c["num_hidden_layers"],
            hidden_size=c["hidden_size"],
            num_heads=heads,
            num_kv_heads=c.get("num_key_value_heads", heads),
            head_dim=c.get("head_dim") or c["hidden_size"] // heads,
            intermediate_size=c["intermediate_size"],
            vocab_size=c["vocab_size"],
            max_position_embeddings=c["max_position_embeddings"],
            rope_theta=c.get("rope_theta", 10000.0),
        )


class KvCacheEstimate(_Frozen):
    dtype_bytes: int
    bytes_per_token: int
    kib_per_token: float
    bytes_at_max_seq_len: int  # one sequence of max_seq_len (batch 1)
    formula: str
    paged: bool = True  # trtllm-build --paged_kv_cache enable (0.12 default), 64 tokens per block
    tokens_per_block: int = 64
    runtime_max_tokens: int  # ModelRunnerCpp max_tokens_in_paged_kv_cache: cap KV at what one request needs


class SizeDerivation(_Frozen):
    """Every engine size with the arithmetic that produced it."""

    max_batch_size: int
    frames: int
    tokens_per_frame: int
    max_multimodal_len: int
    template_tokens: int  # prompt template without images and instruction
    template_count: str  # how template_tokens was counted
    instruction_token_cap: int
    text_budget: int
    max_input_len: int
    max_new_tokens: int
    max_seq_len: int
    max_num_tokens: int
    arithmetic: tuple[str, ...]


class PlanStep(_Frozen):
    name: str
    argv: tuple[str, ...]
    cwd: str | None = None
    env: dict[str, str] = {}
    produces: str

    def shell(self) -> str:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        cmd = (env + " " if env else "") + shlex.join(self.argv)
        return f"(cd {shlex.quote(self.cwd)} && {cmd})" if self.cwd else cmd


class LlmBuildPlan(_Frozen):
    family: Family
    route: Route
    trtllm_version: str = TRTLLM_VERSION
    trtllm_root: str
    source_checkpoint: str
    llm_dir: str
    out_dir: str
    checkpoint_dir: str  # TensorRT-LLM checkpoint (convert / quantize output; portable, copy this to the Orin)
    checkpoint_prebuilt: bool = False  # made elsewhere (vlm.tllm_checkpoint): only trtllm-build runs
    engine_dir: str  # trtllm-build output (tied to the GPU + TensorRT it was built on)
    timing_cache: str
    llm: LlmConfigSummary
    sizes: SizeDerivation
    end_id: int
    pad_id: int
    dtype: str = "float16"
    kv_cache: KvCacheEstimate
    steps: tuple[PlanStep, ...]
    notes: tuple[str, ...] = ()

    def build_args(self) -> dict[str, str]:
        """The trtllm-build flags as {flag: value}."""
        argv = next(s.argv for s in self.steps if s.name == "trtllm-build")
        return {a: argv[i + 1] for i, a in enumerate(argv) if a.startswith("--") and i + 1 < len(argv)}

    def render(self) -> str:
        s, kv, m = self.sizes, self.kv_cache, self.llm
        lines = (
            [
                f"LLM build plan: {self.family} / {self.route} → TensorRT-LLM {self.trtllm_version}",
                f"  source   {self.source_checkpoint}  (LLM: {self.llm_dir})",
                f"  LLM      {m.model_type}: {m.num_layers} layers, hidden {m.hidden_size}, {m.num_heads} heads / "
                f"{m.num_kv_heads} KV heads (head_dim {m.head_dim}), FFN {m.intermediate_size}, "
                f"vocab {m.vocab_size}, rope θ {m.rope_theta:g}, max_pos {m.max_position_embeddings}",
                f"  tokens   end_id {self.end_id}, pad_id {self.pad_id}, dtype {self.dtype}",
                "  sizes",
            ]
            + [f"    {a}" for a in s.arithmetic]
            + [
                f"  KV cache {kv.formula}",
                f"           {kv.bytes_at_max_seq_len / 2**20:.1f} MiB at max_seq_len {s.max_seq_len}; paged, "
                f"{kv.tokens_per_block} tokens/block; runtime cap max_tokens_in_paged_kv_cache="
                f"{kv.runtime_max_tokens}",
                f"  outputs  checkpoint {self.checkpoint_dir}",
                f"           engine     {self.engine_dir}",
                "  steps",
            ]
        )
        for i, st in enumerate(self.steps, 1):
            lines += [f"    {i}. {st.name} → {st.produces}", f"       {st.shell()}"]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)


# --- derivations ------------------------------------------------------------------------------------------------------


def kv_cache_estimate(
    llm: LlmConfigSummary, max_seq_len: int, max_batch_size: int = 1, dtype_bytes: int = 2
) -> KvCacheEstimate:
    per_token = llm.num_layers * 2 * llm.num_kv_heads * llm.head_dim * dtype_bytes
    return KvCacheEstimate(
        dtype_bytes=dtype_bytes,
        bytes_per_token=per_token,
        kib_per_token=per_token / 1024,
        bytes_at_max_seq_len=per_token * max_seq_len * max_batch_size,
        formula=(
            f"{llm.num_layers} layers × 2 (K,V) × {llm.num_kv_heads} KV heads × {llm.head_dim} × "
            f"{dtype_bytes} B = {per_token} B = {per_token / 1024:g} KiB per token"
        ),
        runtime_max_tokens=max_seq_len * max_batch_size,
    )


def template_text(family: str) -> str:
    """The prompt without images and with an empty instruction: what the text budget counts besides the instruction."""
    prompt = navila_prompt("") if family == "navila" else streamvln_prompt("", memory=True)
    return prompt.replace(IMAGE, "").replace(MEMORY, "")


def runtime_template_prompt(family: str) -> str:
    """The longest prompt the runtime builds, with an empty instruction: NaVILA's 8-frame query; StreamVLN's window
    start with its 8 memory frames (engines.vlm.models)."""
    if family == "navila":
        return navila_prompt("")
    return streamvln_prompt("", memory=True).replace(MEMORY, IMAGE * 8)


def count_template_tokens(family: str, llm_dir: str | Path) -> tuple[int, str]:
    """Exact with the checkpoint's tokenizer: the text ids the runtime itself builds (engines.vlm.models.
    tokenize_with_images: one tokenizer call per chunk between images, BOS handling included) with an empty
    instruction. Without a tokenizer.json, a conservative estimate: 1 per special token + ceil(other chars /
    CHARS_PER_TOKEN_EST) + 1 per chunk for a possible BOS."""
    text = template_text(family)
    tok_path = Path(llm_dir) / "tokenizer.json"
    if tok_path.is_file():
        from transformers import PreTrainedTokenizerFast

        from engines.vlm.generator import IMAGE_TOKEN_INDEX
        from engines.vlm.models import tokenize_with_images

        tok = PreTrainedTokenizerFast.from_pretrained(str(Path(llm_dir)))
        ids = tokenize_with_images(tok, runtime_template_prompt(family))
        n = sum(1 for t in ids if t != IMAGE_TOKEN_INDEX)
        return n, f"runtime tokenisation with {tok_path}"
    chunks = runtime_template_prompt(family).count(IMAGE) + 1
    specials = re.findall(r"<\|[a-z_]+\|>", text)
    rest = len(re.sub(r"<\|[a-z_]+\|>", "", text))
    n = len(specials) + math.ceil(rest / CHARS_PER_TOKEN_EST) + chunks
    return n, (
        f"estimate (no tokenizer.json): {len(specials)} special + ceil({rest} chars / {CHARS_PER_TOKEN_EST}) "
        f"+ {chunks} possible BOS (one per chunk) = {n}"
    )


STREAMVLN_WINDOW_CALLS = 8  # engines.vlm.models.StreamVlnVlm window
STREAMVLN_TURN_TOKENS = 16  # "<|im_end|>\n<|im_start|>user\nyou can see <image>.<|im_end|>\n<|im_start|>assistant\n…"


def derive_sizes(
    family: str,
    llm_dir: str | Path,
    frames: int,
    max_new_tokens: int,
    max_batch_size: int = 1,
    max_position_embeddings: int | None = None,
) -> SizeDerivation:
    """The engine sizes with their arithmetic. Raises PlanError naming the field, its value and the bound when a
    size is not positive or the sequence exceeds the LLM's context (max_position_embeddings)."""
    for name, value in (("frames", frames), ("max_new_tokens", max_new_tokens), ("max_batch_size", max_batch_size)):
        if not isinstance(value, int) or value < 1:
            raise PlanError(f"{name} = {value!r}: must be an integer ≥ 1")
    visual = frames * TOKENS_PER_FRAME
    mm = max_batch_size * visual
    tmpl, how = count_template_tokens(family, llm_dir)
    text = tmpl + INSTRUCTION_TOKEN_CAP
    turns = ""
    if family == "streamvln":  # a window's later turns: previous answer ids + the turn's template text
        later = STREAMVLN_WINDOW_CALLS - 1
        text += later * (max_new_tokens + STREAMVLN_TURN_TOKENS)
        turns = f" + {later} later turns × ({max_new_tokens} answer + {STREAMVLN_TURN_TOKENS} template)"
    raw = visual + text
    max_input = math.ceil(raw / ROUND_TO) * ROUND_TO
    max_seq = max_input + max_new_tokens
    if max_position_embeddings is not None and max_seq > max_position_embeddings:
        raise PlanError(
            f"max_seq_len = {max_seq} (frames {frames} × {TOKENS_PER_FRAME} + text {text} → max_input_len {max_input}, "
            f"+ max_new_tokens {max_new_tokens}) exceeds the LLM's context max_position_embeddings = "
            f"{max_position_embeddings}: lower frames or max_new_tokens"
        )
    return SizeDerivation(
        max_batch_size=max_batch_size,
        frames=frames,
        tokens_per_frame=TOKENS_PER_FRAME,
        max_multimodal_len=mm,
        template_tokens=tmpl,
        template_count=how,
        instruction_token_cap=INSTRUCTION_TOKEN_CAP,
        text_budget=text,
        max_input_len=max_input,
        max_new_tokens=max_new_tokens,
        max_seq_len=max_seq,
        max_num_tokens=max_batch_size * max_input,
        arithmetic=(
            f"max_multimodal_len = max_batch_size × frames × {TOKENS_PER_FRAME} = {max_batch_size} × {frames} × "
            f"{TOKENS_PER_FRAME} = {mm}",
            f"template tokens = {tmpl} ({how})",
            f"text budget = template {tmpl} + instruction cap {INSTRUCTION_TOKEN_CAP}{turns} = {text}",
            f"max_input_len = ceil((visual {visual} + text {text}) / {ROUND_TO}) × {ROUND_TO} = "
            f"ceil({raw} / {ROUND_TO}) × {ROUND_TO} = {max_input}",
            f"max_seq_len = max_input_len + max_new_tokens = {max_input} + {max_new_tokens} = {max_seq}",
            f"max_num_tokens = max_batch_size × max_input_len = {max_batch_size * max_input} (no chunked context)",
        ),
    )


def resolve_llm_dir(checkpoint_info: Any) -> tuple[Path, Path]:
    """(source checkpoint, HF LLM folder). Accepts a path (NaVILA multi-folder: `<ckpt>/llm`; else the folder itself)
    or a checkpoint object with `.llm_dir` and `.root` (engines.vlm.checkpoints' Navila/StreamVln checkpoints)."""
    if hasattr(checkpoint_info, "llm_dir"):
        llm = Path(checkpoint_info.llm_dir)
        return Path(getattr(checkpoint_info, "root", llm)), llm
    root = Path(checkpoint_info)
    return root, (root / "llm" if (root / "llm" / "config.json").is_file() else root)


_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "generation_config.json",
)


def extract_plain_llm(
    src: str | Path, dst: str | Path, model_type: str = "qwen2", architecture: str = "Qwen2ForCausalLM"
) -> Path:
    """A LLaVA-style single-folder VLM (StreamVLN: model_type llava_qwen) → a plain HF LLM folder that TensorRT-LLM's
    converters / quantize.py load with AutoModelForCausalLM: LLM tensors only — a whitelist of the plain LLM's
    prefixes, so tower, projector, image_newline and LLaVA-NeXT's `model.faster_token` all stay out — same shards,
    config with the plain model_type, tokenizer files copied."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from engines.vlm.checkpoints import LLM_PREFIXES

    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    cfg = json.loads((src / "config.json").read_text())
    (dst / "config.json").write_text(
        json.dumps({**cfg, "model_type": model_type, "architectures": [architecture]}, indent=2)
    )
    weight_map = {}
    for f in sorted(src.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            keep = {k: st.get_tensor(k) for k in st.keys() if k.startswith(LLM_PREFIXES)}
        if keep:
            save_file(keep, str(dst / f.name), metadata={"format": "pt"})
            weight_map.update({k: f.name for k in keep})
    if not weight_map:
        raise FileNotFoundError(f"{src}: no LLM tensors in *.safetensors")
    if len({*weight_map.values()}) > 1:
        (dst / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    for name in _TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
    return dst


# --- plan -------------------------------------------------------------------------------------------------------------


def check_tllm_checkpoint(path: str | Path, route: Route) -> list[str]:
    """What is wrong with a TensorRT-LLM checkpoint made elsewhere (convert_checkpoint.py / quantize.py of the same
    TensorRT-LLM version: config.json + rank0.safetensors) for `route`; empty = usable. Its `quantization.quant_algo`
    must be W4A16 (int4_wo) or W4A16_AWQ (int4_awq), the names of 0.12's QuantAlgo (docs/jetson.md §4.3)."""
    p = Path(path)
    cfg_path = p / "config.json"
    if not cfg_path.is_file():
        return [f"{cfg_path} missing (expected a TensorRT-LLM checkpoint: config.json + rank0.safetensors)"]
    problems = []
    if not (p / "rank0.safetensors").is_file():
        problems.append(f"{p / 'rank0.safetensors'} missing")
    try:
        cfg = json.loads(cfg_path.read_text())
    except ValueError as e:
        return problems + [f"{cfg_path}: not valid JSON ({e})"]
    algo = (cfg.get("quantization") or {}).get("quant_algo")
    want = {"int4_wo": "W4A16", "int4_awq": "W4A16_AWQ"}[route]
    if algo != want:
        problems.append(f"{cfg_path}: quantization.quant_algo is {algo!r}, route {route} needs {want!r}")
    return problems


def plan_for(
    checkpoint_info: Any,
    family: Family = "navila",
    route: Route = "int4_wo",
    frames: int | None = None,
    max_new_tokens: int = 32,
    trtllm_root: str | Path | None = None,
    out_dir: str | Path | None = None,
    python: str | None = None,
    calib_size: int = 32,
    awq_block_size: int = 128,
    tllm_checkpoint: str | Path | None = None,
    reference_if_missing: bool = False,
) -> LlmBuildPlan:
    """The build plan. `python`: the interpreter the steps run with (default: this one, sys.executable — the venv
    that has TensorRT-LLM, never whatever `python3` is first on PATH). `tllm_checkpoint`: a TensorRT-LLM checkpoint
    quantised elsewhere (an x86 GPU host for AWQ) — the plan is then trtllm-build only. `reference_if_missing`: a
    checkpoint folder that does not exist yet is planned from the family's reference config (REFERENCE_LLMS)."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {family!r}")
    if route not in ("int4_wo", "int4_awq"):
        raise ValueError(f"route must be int4_wo or int4_awq, got {route!r}")
    python = python or sys.executable
    fam = FAMILIES[family]
    frames = fam["frames"] if frames is None else frames
    source, llm_dir = resolve_llm_dir(checkpoint_info)
    missing = reference_if_missing and not (Path(llm_dir) / "config.json").is_file()
    if missing and family == "navila":
        llm_dir = source / "llm"  # where the multi-folder checkpoint keeps its LLM once downloaded
    llm = LlmConfigSummary.from_config(REFERENCE_LLMS[family]) if missing else LlmConfigSummary.from_dir(llm_dir)
    if llm.head_dim not in SUPPORTED_HEAD_SIZES:
        raise PlanError(
            f"{llm_dir}: head size {llm.head_dim} (hidden {llm.hidden_size} / {llm.num_heads} heads) is not one "
            f"TensorRT-LLM's attention kernels support {SUPPORTED_HEAD_SIZES}"
        )
    root = Path(trtllm_root or os.environ.get("TRTLLM_ROOT") or "/opt/TensorRT-LLM").expanduser().absolute()
    out = Path(out_dir or source.parent / f"{source.name}-trtllm-{route}").expanduser().absolute()
    ckpt, engine, cache = out / f"tllm_checkpoint_{route}", out / "llm", out / "timing.cache"
    if tllm_checkpoint is not None:
        ckpt = Path(tllm_checkpoint).expanduser().absolute()
    sizes = derive_sizes(family, llm_dir, frames, max_new_tokens, max_position_embeddings=llm.max_position_embeddings)
    info = getattr(checkpoint_info, "llm", None)  # engines.vlm.checkpoints.LlmInfo: ids read from the tokenizer
    end_id = fam["end_id"] if getattr(info, "end_id", None) is None else info.end_id
    pad_id = getattr(info, "pad_id", None)
    if pad_id is None:  # no pad token in the checkpoint: pad with the stop id, as the reference decodes
        pad_id = end_id if info is not None else fam["pad_id"]

    steps = []
    if tllm_checkpoint is not None:
        pass  # quantised elsewhere: only trtllm-build runs here
    elif family == "streamvln" and llm.model_type != "qwen2":
        plain = out / "llm_hf"  # the converters load AutoModelForCausalLM: strip tower + projector first
        steps.append(
            PlanStep(
                name="extract_llm",
                cwd=str(REPO_ROOT),
                produces=str(plain),
                argv=(python, "-m", "exporters.llm", "extract", str(llm_dir), str(plain)),
            )
        )
        llm_dir = plain
    if tllm_checkpoint is not None:
        pass
    elif route == "int4_wo":
        conv = root / "examples" / fam["converter"]
        steps.append(
            PlanStep(
                name="convert_checkpoint",
                cwd=str(conv),
                produces=str(ckpt),
                argv=(
                    python,
                    str(conv / "convert_checkpoint.py"),
                    "--model_dir",
                    str(llm_dir),
                    "--output_dir",
                    str(ckpt),
                    "--dtype",
                    "float16",
                    "--use_weight_only",
                    "--weight_only_precision",
                    "int4",
                ),
            )
        )
    else:
        calib = out / "calib_navigation"
        steps.append(
            PlanStep(
                name="calibration_text",
                cwd=str(REPO_ROOT),
                produces=str(calib / "train.jsonl"),
                argv=(
                    python,
                    "-m",
                    "exporters.awq_text",
                    "--out",
                    str(calib),
                    "--n",
                    str(calib_size),
                    "--family",
                    family,
                ),
            )
        )
        qdir = root / "examples" / "quantization"
        steps.append(
            PlanStep(
                name="quantize_awq",
                cwd=str(qdir),
                produces=str(ckpt),
                argv=(
                    python,
                    str(qdir / "quantize.py"),
                    "--model_dir",
                    str(llm_dir),
                    "--output_dir",
                    str(ckpt),
                    "--dtype",
                    "float16",
                    "--qformat",
                    "int4_awq",
                    "--awq_block_size",
                    str(awq_block_size),
                    "--calib_size",
                    str(calib_size),
                    "--calib_dataset",
                    str(calib),
                    "--batch_size",
                    "1",
                    "--calib_max_seq_length",
                    "512",
                ),
            )
        )
    steps.append(
        PlanStep(
            name="trtllm-build",
            produces=str(engine),
            argv=(
                "trtllm-build",
                "--checkpoint_dir",
                str(ckpt),
                "--output_dir",
                str(engine),
                "--max_batch_size",
                str(sizes.max_batch_size),
                "--max_input_len",
                str(sizes.max_input_len),
                "--max_seq_len",
                str(sizes.max_seq_len),
                "--max_num_tokens",
                str(sizes.max_num_tokens),
                "--max_multimodal_len",
                str(sizes.max_multimodal_len),
                "--max_beam_width",
                "1",
                "--gemm_plugin",
                "float16",
                "--gpt_attention_plugin",
                "float16",
                "--remove_input_padding",
                "enable",
                "--context_fmha",
                "enable",
                "--paged_kv_cache",
                "enable",
                "--input_timing_cache",
                str(cache),
                "--output_timing_cache",
                str(cache),
            ),
        )
    )

    notes = [
        "INT4 runs as W4A16 on Orin (weights dequantised in the GEMM plugin): the gain is memory bandwidth.",
        "Build the engine on the Orin itself (engines are not portable across GPU / TensorRT / JetPack); the "
        "checkpoint is portable.",
        f"Runtime: Python ModelRunner (0.12 VILA path) or ModelRunnerCpp with max_tokens_in_paged_kv_cache="
        f"{sizes.max_seq_len}; never the default kv_cache_free_gpu_memory_fraction 0.9 of unified memory.",
        f"Instructions longer than {INSTRUCTION_TOKEN_CAP} tokens must be truncated before the LLM.",
    ]
    if missing:
        notes.insert(
            0,
            f"checkpoint not downloaded yet: planned from the reference {family} config; put the checkpoint at "
            f"{source} ({CHECKPOINT_SOURCES[family]})",
        )
    if tllm_checkpoint is not None:
        notes.append(f"TensorRT-LLM checkpoint {ckpt} made elsewhere (same TensorRT-LLM version): trtllm-build only")
    elif route == "int4_awq":
        notes.append(
            "AWQ calibration loads the FP16 LLM on a CUDA GPU (≈16 GB for 8B): run the calibration and quantize "
            "steps on an x86 GPU host (`python -m exporters.llm plan CKPT --route int4_awq --until checkpoint --run`), "
            "copy the checkpoint folder to the Orin and set vlm.tllm_checkpoint."
        )
    if family == "streamvln":
        notes.append(
            f"StreamVLN: sized for the last call of a window re-prefilled whole ({frames} frames = 8 memory "
            "+ 8 turns): TRT-LLM's ModelRunner cannot feed past_key_values back (transformers reuses them)."
        )
    return LlmBuildPlan(
        family=family,
        route=route,
        trtllm_root=str(root),
        source_checkpoint=str(source),
        llm_dir=str(llm_dir),
        out_dir=str(out),
        checkpoint_dir=str(ckpt),
        checkpoint_prebuilt=tllm_checkpoint is not None,
        engine_dir=str(engine),
        timing_cache=str(cache),
        llm=llm,
        sizes=sizes,
        end_id=end_id,
        pad_id=pad_id,
        kv_cache=kv_cache_estimate(llm, sizes.max_seq_len, sizes.max_batch_size),
        steps=tuple(steps),
        notes=tuple(notes),
    )


# --- running ----------------------------------------------------------------------------------------------------------


def missing_tools(step: PlanStep) -> list[str]:
    """What this step needs and cannot find: the executable, and a script file given as argv[1]."""
    missing = []
    exe = step.argv[0]
    if not (Path(exe).is_file() if os.sep in exe else shutil.which(exe)):
        hint = " (install the TensorRT-LLM v0.12.0-jetson wheel)" if exe == "trtllm-build" else ""
        missing.append(f"executable {exe!r} not found{hint}")
    if len(step.argv) > 1 and step.argv[1].endswith(".py") and not Path(step.argv[1]).is_file():
        missing.append(
            f"script {step.argv[1]} not found (set TRTLLM_ROOT / trtllm_root to a checkout of "
            f"NVIDIA/TensorRT-LLM tag v0.12.0-jetson)"
        )
    if step.cwd and not Path(step.cwd).is_dir():
        missing.append(f"working directory {step.cwd} not found")
    return missing


def _run_step(step: PlanStep, log: Callable[[str], None], heartbeat_s: float) -> float:
    t0 = time.monotonic()
    proc = subprocess.Popen(
        step.argv,
        cwd=step.cwd,
        env={**os.environ, **step.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump():
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    tail: list[str] = []
    while True:
        try:
            line = lines.get(timeout=heartbeat_s)
        except queue.Empty:
            log(f"[{step.name} {time.monotonic() - t0:7.1f}s] … still running")
            continue
        if line is None:
            break
        tail = (tail + [line])[-20:]
        log(f"[{step.name} {time.monotonic() - t0:7.1f}s] {line}")
    rc = proc.wait()
    elapsed = time.monotonic() - t0
    if rc != 0:
        raise PlanError(
            f"step {step.name!r} failed with exit code {rc} after {elapsed:.1f}s:\n  {step.shell()}\n"
            + "\n".join(f"  | {t}" for t in tail)
        )
    return elapsed


def run_plan(
    plan: LlmBuildPlan,
    dry_run: bool = False,
    log: Callable[[str], None] = print,
    heartbeat_s: float = 30.0,
    until: Literal["engine", "checkpoint"] = "engine",
) -> dict[str, float]:
    """Run every step as a subprocess, streaming its output with elapsed time; returns seconds per step.
    Checks all tools first and fails before running anything if one is missing. Writes build_plan.json next to the
    engine. dry_run: print the plan and the missing tools, run nothing. until="checkpoint": stop before trtllm-build
    (on an x86 GPU host: quantise there, copy the checkpoint to the Orin)."""
    log(plan.render())
    steps = [s for s in plan.steps if until == "engine" or s.name != "trtllm-build"]
    problems = [f"step {s.name!r}: {m}" for s in steps for m in missing_tools(s)]
    if plan.checkpoint_prebuilt:
        problems += [f"checkpoint: {m}" for m in check_tllm_checkpoint(plan.checkpoint_dir, plan.route)]
    if dry_run:
        for p in problems:
            log(f"dry run: {p}")
        return {}
    if problems:
        raise PlanError("cannot run the LLM build plan:\n  " + "\n  ".join(problems))
    Path(plan.out_dir).mkdir(parents=True, exist_ok=True)
    times = {}
    for i, step in enumerate(steps, 1):
        log(f"== step {i}/{len(steps)}: {step.name}")
        times[step.name] = _run_step(step, log, heartbeat_s)
        log(f"== {step.name} done in {times[step.name]:.1f}s → {step.produces}")
    engine = Path(plan.engine_dir)
    if engine.is_dir():
        (engine / "build_plan.json").write_text(plan.to_json())
    return times


def main(argv: list[str] | None = None) -> int:
    """python -m exporters.llm plan CKPT --family navila --route int4_wo [--run | --dry-run]
    python -m exporters.llm extract SRC DST        (StreamVLN → plain Qwen2 folder)"""
    import argparse

    p = argparse.ArgumentParser(prog="python -m exporters.llm", description=main.__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("plan")
    pp.add_argument("checkpoint")
    pp.add_argument("--family", choices=sorted(FAMILIES), default="navila")
    pp.add_argument("--route", choices=("int4_wo", "int4_awq"), default="int4_wo")
    pp.add_argument("--frames", type=int)
    pp.add_argument("--max-new-tokens", type=int, default=32)
    pp.add_argument("--trtllm-root")
    pp.add_argument("--out-dir")
    pp.add_argument("--json", action="store_true", help="print the plan as JSON")
    pp.add_argument("--tllm-checkpoint", help="a TensorRT-LLM checkpoint quantised elsewhere: trtllm-build only")
    pp.add_argument(
        "--until",
        choices=("engine", "checkpoint"),
        default="engine",
        help="checkpoint: stop before trtllm-build (quantise on an x86 GPU host, copy the checkpoint to the Orin)",
    )
    mode = pp.add_mutually_exclusive_group()
    mode.add_argument("--run", action="store_true")
    mode.add_argument("--dry-run", action="store_true")
    pe = sub.add_parser("extract")
    pe.add_argument("src")
    pe.add_argument("dst")
    a = p.parse_args(argv)
    if a.cmd == "extract":
        print(f"wrote {extract_plain_llm(a.src, a.dst)}")
        return 0
    plan = plan_for(
        a.checkpoint,
        a.family,
        a.route,
        a.frames,
        a.max_new_tokens,
        a.trtllm_root,
        a.out_dir,
        tllm_checkpoint=a.tllm_checkpoint,
    )
    if a.run or a.dry_run:
        run_plan(plan, dry_run=a.dry_run, until=a.until)
    else:
        print(plan.to_json() if a.json else plan.render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
