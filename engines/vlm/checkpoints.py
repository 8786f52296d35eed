"""Typed, validating readers for the two VLM checkpoint layouts (no VILA / LLaVA-NeXT code needed).

NaVILA (VILA-1.5 multi-folder, `a8cheng/navila-llama3-8b-8f`):
    config.json      LlavaLlamaModel: llm_cfg / vision_tower_cfg / mm_projector_cfg, mm_vision_select_layer …
    llm/             HF Llama: config.json, [generation_config.json], safetensors (single or sharded), tokenizer
    vision_tower/    HF SiglipVisionModel: config.json, safetensors (`vision_model.*`), preprocessor_config.json
    mm_projector/    config.json (mm_projector_type mlp_downsample), safetensors (`layers.{1,2,4}.*`)
StreamVLN (LLaVA-Video-7B-Qwen2 style, one HF folder):
    config.json      Qwen2 fields + mm_vision_tower, mm_projector_type mlp2x_gelu, mm_spatial_pool_mode …
    safetensors      `model.*`/`lm_head.*` (Qwen2), `model.mm_projector.{0,2}.*`,
                     `model.vision_tower.vision_tower.vision_model.*` (SigLIP with its last layer deleted)
    tokenizer files  Qwen2 (<|im_start|>, <|im_end|>)

Only safetensors headers are read while validating (cheap for a 16 GB checkpoint); `*_state_dict()` loads tensors.
Every problem raises CheckpointError naming the file and what was expected.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NAVILA_END_TOKEN = "<|eot_id|>"
STREAMVLN_END_TOKEN = "<|im_end|>"
VISION_PREFIX = "vision_model."  # transformers 4.x SigLIP key prefix (5.x drops it)
STREAMVLN_VISION_PREFIX = "model.vision_tower.vision_tower."
STREAMVLN_PROJECTOR_PREFIX = "model.mm_projector."
# google/siglip-so400m-patch14-384: what LLaVA-NeXT builds when config.json only names the tower.
SO400M_384 = dict(
    hidden_size=1152,
    intermediate_size=4304,
    num_hidden_layers=27,
    num_attention_heads=16,
    image_size=384,
    patch_size=14,
    num_channels=3,
    layer_norm_eps=1e-6,
    hidden_act="gelu_pytorch_tanh",
)
SIGLIP_PREPROCESS = dict(image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5], rescale_factor=1 / 255, resample=3)
_DTYPES = {"F32", "F16", "BF16"}


class CheckpointError(ValueError):
    """A checkpoint file or folder is missing, corrupted or inconsistent. The message names the file."""


# ---------------------------------------------------------------------------------------------------- file helpers
def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (expected a JSON file)")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _need(cfg: dict, key: str, path: Path) -> Any:
    if cfg.get(key) is None:
        raise CheckpointError(f"{path}: missing field '{key}'")
    return cfg[key]


def _dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise CheckpointError(f"{path}: missing folder (expected {what})")
    return path


def safetensors_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """{tensor name: (dtype, shape)} from a .safetensors header; checks the file holds all the data it declares."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise CheckpointError(
                    f"{path}: corrupted safetensors (file is {size} bytes, shorter than the 8-byte header length)"
                )
            (n,) = struct.unpack("<Q", raw)
            if n > size - 8:
                raise CheckpointError(f"{path}: corrupted safetensors (header length {n} exceeds file size {size})")
            header = json.loads(f.read(n))
    except CheckpointError:
        raise
    except OSError as e:
        raise CheckpointError(f"{path}: unreadable ({e})") from None
    except (ValueError, UnicodeDecodeError):
        raise CheckpointError(f"{path}: corrupted safetensors (header is not valid JSON)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupted safetensors (header is not a JSON object)")
    header.pop("__metadata__", None)
    out, end = {}, 0
    for name, info in header.items():
        try:
            dtype, shape, (start, stop) = info["dtype"], tuple(int(s) for s in info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: corrupted safetensors (bad header entry for '{name}')") from None
        if dtype not in _DTYPES:
            raise CheckpointError(f"{path}: tensor '{name}' has dtype {dtype}, expected one of {sorted(_DTYPES)}")
        item = 4 if dtype == "F32" else 2
        if stop - start != item * math.prod(shape):
            raise CheckpointError(
                f"{path}: corrupted safetensors ('{name}' byte range does not match shape {list(shape)})"
            )
        out[name], end = (dtype, shape), max(end, stop)
    if size - 8 - n < end:
        raise CheckpointError(
            f"{path}: truncated safetensors (header declares {end} data bytes, file holds {size - 8 - n})"
        )
    return out


@dataclass(frozen=True)
class Weights:
    """Tensor name → (file, dtype, shape) over one folder's safetensors (single file or sharded with an index)."""

    folder: Path
    entries: dict[str, tuple[Path, str, tuple[int, ...]]]

    @classmethod
    def scan(cls, folder: Path) -> Weights:
        index = folder / "model.safetensors.index.json"
        if index.is_file():
            weight_map = _need(_json(index), "weight_map", index)
            files = sorted({folder / f for f in weight_map.values()})
            for f in files:
                if not f.is_file():
                    raise CheckpointError(f"{f}: missing (listed in {index})")
        else:
            files = sorted(folder.glob("*.safetensors"))
            if not files:
                bins = sorted(p.name for p in folder.glob("*.bin"))
                hint = f"; found {bins}: convert to safetensors" if bins else ""
                raise CheckpointError(
                    f"{folder}: no weights (expected model.safetensors or a sharded model.safetensors.index.json){hint}"
                )
        entries = {}
        for f in files:
            for name, (dtype, shape) in safetensors_header(f).items():
                entries[name] = (f, dtype, shape)
        if index.is_file():
            missing = sorted(set(weight_map) - set(entries))
            if missing:
                raise CheckpointError(f"{index}: lists tensors absent from their shard files, e.g. {missing[:3]}")
        return cls(folder, entries)

    def shape(self, name: str) -> tuple[int, ...]:
        if name not in self.entries:
            raise CheckpointError(f"{self.folder}: tensor '{name}' missing from the safetensors")
        return self.entries[name][2]

    def expect(self, name: str, shape: tuple[int, ...], why: str = "") -> None:
        got = self.shape(name)
        if tuple(got) != tuple(shape):
            raise CheckpointError(
                f"{self.entries[name][0]}: tensor '{name}' has shape {list(got)}, expected "
                f"{list(shape)}" + (f" ({why})" if why else "")
            )

    def layer_count(self, pattern: str) -> int:
        """Number of distinct layer indices matching `pattern` (a regex with one `(\\d+)` group)."""
        rx = re.compile(pattern)
        return len({int(m.group(1)) for n in self.entries if (m := rx.match(n))})

    def copy_into(self, targets: dict[str, Any], prefixes: tuple[str, ...] = ("",)) -> set[str]:
        """Copy every tensor whose name starts with one of `prefixes` into `targets[name]` (torch tensors, converted
        to their dtype) one at a time: peak memory = the targets + one tensor, not a second copy of the model.
        Returns the names copied; a name without a target raises CheckpointError."""
        from safetensors import safe_open

        by_file: dict[Path, list[str]] = {}
        for name, (f, _, _) in self.entries.items():
            if name.startswith(prefixes):
                by_file.setdefault(f, []).append(name)
        done = set()
        for f, names in by_file.items():
            try:
                with safe_open(str(f), framework="pt") as st:
                    for name in names:
                        if name not in targets:
                            raise CheckpointError(f"{f}: tensor '{name}' has no place in the model")
                        targets[name].data.copy_(st.get_tensor(name))
                        done.add(name)
            except CheckpointError:
                raise
            except Exception as e:  # noqa: BLE001 - any read failure means a corrupted file
                raise CheckpointError(f"{f}: could not read tensors ({type(e).__name__}: {e})") from None
        return done

    def load(self, prefix: str = "", strip: str = "") -> dict[str, Any]:
        """Tensors whose names start with `prefix`, as float32 torch tensors, with `strip` removed from the names."""
        from safetensors import safe_open

        out = {}
        by_file: dict[Path, list[str]] = {}
        for name, (f, _, _) in self.entries.items():
            if name.startswith(prefix):
                by_file.setdefault(f, []).append(name)
        for f, names in by_file.items():
            try:
                with safe_open(str(f), framework="pt") as st:
                    for name in names:
                        key = name[len(strip) :] if strip and name.startswith(strip) else name
                        out[key] = st.get_tensor(name).float()
            except Exception as e:  # noqa: BLE001 - any read failure means a corrupted file
                raise CheckpointError(f"{f}: could not read tensors ({type(e).__name__}: {e})") from None
        return out


# ---------------------------------------------------------------------------------------------------- LLM
@dataclass(frozen=True)
class LlmInfo:
    family: str  # "llama" | "qwen2"
    folder: Path  # where config.json and the tokenizer live
    hidden_size: int
    intermediate_size: int
    vocab_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    max_position_embeddings: int
    rope_theta: float
    tie_word_embeddings: bool
    bos_id: int | None
    eos_ids: tuple[int, ...]  # generation_config.json (else config.json) eos ids
    end_token: str  # the chat stop token: <|eot_id|> / <|im_end|>
    end_id: int  # its id in the tokenizer
    pad_id: int | None
    special_tokens: dict[str, int] = field(default_factory=dict)  # added / special tokens → id


def _rope_theta(cfg: dict) -> float:
    if "rope_theta" in cfg:
        return float(cfg["rope_theta"])
    return float((cfg.get("rope_parameters") or {}).get("rope_theta", 10000.0))  # transformers 5 style


def _as_ids(v: Any) -> tuple[int, ...]:
    return tuple(v) if isinstance(v, list) else (() if v is None else (int(v),))


def _tokenizer(folder: Path, end_token: str) -> tuple[dict[str, int], int]:
    """Special/added tokens of tokenizer.json, and the size of its id space."""
    tj = folder / "tokenizer.json"
    _json(folder / "tokenizer_config.json")
    data = _json(tj)
    added = {t["content"]: int(t["id"]) for t in data.get("added_tokens", [])}
    vocab = (data.get("model") or {}).get("vocab") or {}
    ids = list(added.values()) + (list(vocab.values()) if isinstance(vocab, dict) else list(range(len(vocab))))
    if end_token not in added:
        raise CheckpointError(f"{tj}: stop token {end_token!r} is not an added/special token")
    return added, (max(ids) + 1 if ids else 0)


def _llm_info(cfg: dict, cfg_path: Path, tok_folder: Path, gen_path: Path, family: str, end_token: str) -> LlmInfo:
    hidden, heads = int(_need(cfg, "hidden_size", cfg_path)), int(_need(cfg, "num_attention_heads", cfg_path))
    vocab = int(_need(cfg, "vocab_size", cfg_path))
    added, tok_size = _tokenizer(tok_folder, end_token)
    if tok_size > vocab:
        raise CheckpointError(
            f"{tok_folder / 'tokenizer.json'}: token ids reach {tok_size - 1}, but {cfg_path} has vocab_size {vocab}"
        )
    gen = _json(gen_path) if gen_path.is_file() else {}
    eos = _as_ids(gen.get("eos_token_id", cfg.get("eos_token_id")))
    return LlmInfo(
        family=family,
        folder=tok_folder,
        hidden_size=hidden,
        intermediate_size=int(_need(cfg, "intermediate_size", cfg_path)),
        vocab_size=vocab,
        num_layers=int(_need(cfg, "num_hidden_layers", cfg_path)),
        num_heads=heads,
        num_kv_heads=int(cfg.get("num_key_value_heads") or heads),
        head_dim=int(cfg.get("head_dim") or hidden // heads),
        max_position_embeddings=int(_need(cfg, "max_position_embeddings", cfg_path)),
        rope_theta=_rope_theta(cfg),
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        bos_id=gen.get("bos_token_id", cfg.get("bos_token_id")),
        eos_ids=eos,
        end_token=end_token,
        end_id=added[end_token],
        pad_id=gen.get("pad_token_id", cfg.get("pad_token_id")),
        special_tokens=added,
    )


def _check_llm_weights(w: Weights, llm: LlmInfo, prefix: str = "") -> None:
    h, hd = llm.hidden_size, llm.head_dim
    w.expect(f"{prefix}model.embed_tokens.weight", (llm.vocab_size, h), "vocab_size × hidden_size")
    w.expect(f"{prefix}model.norm.weight", (h,))
    if not llm.tie_word_embeddings:
        w.expect(f"{prefix}lm_head.weight", (llm.vocab_size, h), "vocab_size × hidden_size")
    n = w.layer_count(rf"{re.escape(prefix)}model\.layers\.(\d+)\.")
    if n != llm.num_layers:
        raise CheckpointError(
            f"{w.folder}: {n} decoder layers in the safetensors, config says num_hidden_layers {llm.num_layers}"
        )
    for i in (0, llm.num_layers - 1):
        a = f"{prefix}model.layers.{i}.self_attn."
        w.expect(a + "q_proj.weight", (llm.num_heads * hd, h), "num_attention_heads × head_dim, hidden_size")
        w.expect(a + "k_proj.weight", (llm.num_kv_heads * hd, h), "num_key_value_heads × head_dim, hidden_size")
        w.expect(a + "v_proj.weight", (llm.num_kv_heads * hd, h), "num_key_value_heads × head_dim, hidden_size")
        w.expect(a + "o_proj.weight", (h, llm.num_heads * hd))
        m = f"{prefix}model.layers.{i}.mlp."
        w.expect(m + "gate_proj.weight", (llm.intermediate_size, h), "intermediate_size × hidden_size")
        w.expect(m + "down_proj.weight", (h, llm.intermediate_size))


# ---------------------------------------------------------------------------------------------------- vision
@dataclass(frozen=True)
class VisionInfo:
    config: dict[str, Any]  # SiglipVisionConfig kwargs for the tower as stored
    image_size: int
    patch_size: int
    hidden_size: int
    num_layers: int  # layers in the original tower (27 for so400m)
    stored_layers: int  # layers present in the weights (StreamVLN deletes the last one)
    select_layer: int  # index into the STORED tower's hidden_states (-2; -1 on StreamVLN's truncated tower)
    image_mean: tuple[float, ...]
    image_std: tuple[float, ...]
    rescale_factor: float
    resample: int  # PIL resampling id (3 = bicubic)

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid**2


def _siglip_config(cfg: dict, path: Path) -> dict[str, Any]:
    keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "image_size", "patch_size")
    out: dict[str, Any] = {k: int(_need(cfg, k, path)) for k in keys}
    out.update(
        num_channels=int(cfg.get("num_channels", 3)),
        layer_norm_eps=float(cfg.get("layer_norm_eps", 1e-6)),
        hidden_act=cfg.get("hidden_act", "gelu_pytorch_tanh"),
    )
    if out["hidden_size"] % out["num_attention_heads"]:
        raise CheckpointError(
            f"{path}: hidden_size {out['hidden_size']} not divisible by num_attention_heads "
            f"{out['num_attention_heads']}"
        )
    return out


def _check_vision_weights(w: Weights, vc: dict, prefix: str, stored_layers: int) -> None:
    h, p, c = vc["hidden_size"], vc["patch_size"], vc["num_channels"]
    e = f"{prefix}embeddings."
    w.expect(e + "patch_embedding.weight", (h, c, p, p), "hidden_size, num_channels, patch_size, patch_size")
    w.expect(
        e + "position_embedding.weight", ((vc["image_size"] // p) ** 2, h), "(image_size/patch_size)² × hidden_size"
    )
    n = w.layer_count(rf"{re.escape(prefix)}encoder\.layers\.(\d+)\.")
    if n != stored_layers:
        raise CheckpointError(f"{w.folder}: {n} SigLIP encoder layers in the safetensors, expected {stored_layers}")
    for i in (0, stored_layers - 1):
        lp = f"{prefix}encoder.layers.{i}."
        w.expect(lp + "self_attn.q_proj.weight", (h, h))
        w.expect(lp + "mlp.fc1.weight", (vc["intermediate_size"], h), "intermediate_size × hidden_size")
        w.expect(lp + "mlp.fc2.weight", (h, vc["intermediate_size"]))


def _preprocess(pp: dict) -> dict[str, Any]:
    return dict(
        image_mean=tuple(float(x) for x in pp.get("image_mean", SIGLIP_PREPROCESS["image_mean"])),
        image_std=tuple(float(x) for x in pp.get("image_std", SIGLIP_PREPROCESS["image_std"])),
        rescale_factor=float(pp.get("rescale_factor", SIGLIP_PREPROCESS["rescale_factor"])),
        resample=int(pp.get("resample", SIGLIP_PREPROCESS["resample"])),
    )


# ---------------------------------------------------------------------------------------------------- NaVILA
@dataclass(frozen=True)
class NavilaCheckpoint:
    root: Path
    config: dict[str, Any]  # top-level config.json
    llm: LlmInfo
    vision: VisionInfo
    projector_type: str  # "mlp_downsample"
    num_video_frames: int
    llm_weights: Weights
    vision_weights: Weights
    projector_weights: Weights
    family: str = "navila"
    tokens_per_frame: int = 196

    @property
    def llm_dir(self) -> Path:
        return self.root / "llm"

    def vision_state_dict(self) -> dict[str, Any]:
        """SigLIP tensors (float32), names without the `vision_model.` prefix."""
        return self.vision_weights.load(strip=VISION_PREFIX)

    def projector_state_dict(self) -> dict[str, Any]:
        """Projector tensors (float32): `layers.1` LayerNorm, `layers.2` / `layers.4` Linear."""
        return self.projector_weights.load()


def load_navila_checkpoint(path: str | Path) -> NavilaCheckpoint:
    root = _dir(Path(path), "a NaVILA / VILA-1.5 checkpoint folder: config.json, llm/, vision_tower/, mm_projector/")
    top_path = root / "config.json"
    top = _json(top_path)
    llm_dir = _dir(root / "llm", "the HF Llama checkpoint + tokenizer")
    vt_dir = _dir(root / "vision_tower", "the HF SiglipVisionModel + preprocessor_config.json")
    mp_dir = _dir(root / "mm_projector", "config.json with mm_projector_type mlp_downsample + weights")

    feature = top.get("mm_vision_select_feature", "cls_patch")
    if feature != "cls_patch":
        raise CheckpointError(
            f"{top_path}: mm_vision_select_feature is {feature!r}, expected 'cls_patch' (SigLIP "
            "has no CLS token; all patches are kept)"
        )
    select = int(top.get("mm_vision_select_layer", -2))

    llm_cfg_path = llm_dir / "config.json"
    llm_cfg = _json(llm_cfg_path)
    if llm_cfg.get("model_type") not in ("llama", None):
        raise CheckpointError(f"{llm_cfg_path}: model_type {llm_cfg.get('model_type')!r}, expected 'llama'")
    llm = _llm_info(llm_cfg, llm_cfg_path, llm_dir, llm_dir / "generation_config.json", "llama", NAVILA_END_TOKEN)
    llm_w = Weights.scan(llm_dir)
    _check_llm_weights(llm_w, llm)

    vt_cfg_path = vt_dir / "config.json"
    vc = _siglip_config(_json(vt_cfg_path), vt_cfg_path)
    if not 0 < -select <= vc["num_hidden_layers"] + 1:
        raise CheckpointError(
            f"{top_path}: mm_vision_select_layer {select} out of range for {vc['num_hidden_layers']} SigLIP layers"
        )
    pp = _json(vt_dir / "preprocessor_config.json")
    vt_w = Weights.scan(vt_dir)
    vprefix = VISION_PREFIX if any(k.startswith(VISION_PREFIX) for k in vt_w.entries) else ""
    _check_vision_weights(vt_w, vc, vprefix, vc["num_hidden_layers"])
    vision = VisionInfo(
        config=vc,
        image_size=vc["image_size"],
        patch_size=vc["patch_size"],
        hidden_size=vc["hidden_size"],
        num_layers=vc["num_hidden_layers"],
        stored_layers=vc["num_hidden_layers"],
        select_layer=select,
        **_preprocess(pp),
    )

    mp_cfg_path = mp_dir / "config.json"
    ptype = _need(_json(mp_cfg_path), "mm_projector_type", mp_cfg_path)
    if ptype != "mlp_downsample":
        raise CheckpointError(f"{mp_cfg_path}: mm_projector_type {ptype!r}, expected 'mlp_downsample'")
    mm_hidden = int(top.get("mm_hidden_size", vision.hidden_size))
    if mm_hidden != vision.hidden_size:
        raise CheckpointError(f"{top_path}: mm_hidden_size {mm_hidden} ≠ vision_tower hidden_size {vision.hidden_size}")
    mp_w = Weights.scan(mp_dir)
    d_in, d = 4 * vision.hidden_size, llm.hidden_size
    why = f"in_features = 4 × vision hidden {vision.hidden_size}"
    mp_w.expect("layers.1.weight", (d_in,), f"LayerNorm over {why}")
    mp_w.expect("layers.1.bias", (d_in,), f"LayerNorm over {why}")
    mp_w.expect("layers.2.weight", (d, d_in), f"LLM hidden {d}, {why}")
    mp_w.expect("layers.2.bias", (d,))
    mp_w.expect("layers.4.weight", (d, d), f"LLM hidden {d}")
    mp_w.expect("layers.4.bias", (d,))
    if vision.grid != 27:
        # not fatal for the math, but the 196-token contract (and every engine size) assumes 27×27 → 14×14
        raise CheckpointError(f"{vt_cfg_path}: image_size/patch_size = {vision.grid}, expected 27 (384 / 14)")
    return NavilaCheckpoint(
        root=root,
        config=top,
        llm=llm,
        vision=vision,
        projector_type=ptype,
        num_video_frames=int(top.get("num_video_frames", 8)),
        llm_weights=llm_w,
        vision_weights=vt_w,
        projector_weights=mp_w,
    )


# ---------------------------------------------------------------------------------------------------- StreamVLN
@dataclass(frozen=True)
class StreamVlnCheckpoint:
    root: Path
    config: dict[str, Any]
    llm: LlmInfo
    vision: VisionInfo
    projector_type: str  # "mlp2x_gelu"
    pool_mode: str  # "bilinear"
    pool_stride: int  # 2 → ceil(27/2) = 14
    weights: Weights
    family: str = "streamvln"

    @property
    def llm_dir(self) -> Path:
        return self.root

    @property
    def tokens_per_frame(self) -> int:
        return math.ceil(self.vision.grid / self.pool_stride) ** 2

    def vision_state_dict(self) -> dict[str, Any]:
        """SigLIP tensors (float32) of the stored (truncated) tower, names without `…vision_model.`."""
        return self.weights.load(STREAMVLN_VISION_PREFIX, strip=STREAMVLN_VISION_PREFIX + VISION_PREFIX)

    def projector_state_dict(self) -> dict[str, Any]:
        """mlp2x_gelu tensors (float32): `0` Linear, `2` Linear."""
        return self.weights.load(STREAMVLN_PROJECTOR_PREFIX, strip=STREAMVLN_PROJECTOR_PREFIX)


def _streamvln_vision_config(cfg: dict, cfg_path: Path, root: Path) -> dict[str, Any]:
    """Tower config: `vision_config` in config.json, else a local mm_vision_tower folder, else so400m-384 by name."""
    if isinstance(cfg.get("vision_config"), dict):
        return _siglip_config(cfg["vision_config"], cfg_path)
    name = str(_need(cfg, "mm_vision_tower", cfg_path))
    local = (root / name) if not Path(name).is_absolute() else Path(name)
    if (local / "config.json").is_file():
        return _siglip_config(_json(local / "config.json"), local / "config.json")
    if "siglip-so400m-patch14-384" in name:
        return dict(SO400M_384)
    raise CheckpointError(
        f"{cfg_path}: mm_vision_tower {name!r} is neither google/siglip-so400m-patch14-384, a local "
        "folder with config.json, nor accompanied by a 'vision_config' object"
    )


def load_streamvln_checkpoint(path: str | Path) -> StreamVlnCheckpoint:
    root = _dir(Path(path), "a StreamVLN / LLaVA-Video-Qwen2 checkpoint folder (config.json, safetensors, tokenizer)")
    cfg_path = root / "config.json"
    cfg = _json(cfg_path)
    ptype = _need(cfg, "mm_projector_type", cfg_path)
    if ptype != "mlp2x_gelu":
        raise CheckpointError(f"{cfg_path}: mm_projector_type {ptype!r}, expected 'mlp2x_gelu'")
    select = int(cfg.get("mm_vision_select_layer", -2))
    if select != -2:
        raise CheckpointError(
            f"{cfg_path}: mm_vision_select_layer {select}, expected -2 (LLaVA-NeXT's SigLIP tower "
            "deletes the last layer and always uses the one before)"
        )
    pool_mode = cfg.get("mm_spatial_pool_mode", "bilinear")
    if pool_mode != "bilinear":
        raise CheckpointError(
            f"{cfg_path}: mm_spatial_pool_mode {pool_mode!r}, expected 'bilinear' (StreamVLN's 196-token pooling)"
        )
    llm = _llm_info(cfg, cfg_path, root, root / "generation_config.json", "qwen2", STREAMVLN_END_TOKEN)
    w = Weights.scan(root)
    _check_llm_weights(w, llm)

    vc = _streamvln_vision_config(cfg, cfg_path, root)
    full = vc["num_hidden_layers"]
    vprefix = STREAMVLN_VISION_PREFIX + VISION_PREFIX
    stored = w.layer_count(rf"{re.escape(vprefix)}encoder\.layers\.(\d+)\.")
    if stored not in (full - 1, full):  # LLaVA-NeXT stores full − 1; accept an untruncated tower too
        raise CheckpointError(
            f"{w.folder}: {stored} SigLIP layers under '{vprefix}', expected {full - 1} "
            f"(the {full}-layer tower minus its last layer)"
        )
    _check_vision_weights(w, vc, vprefix, stored)
    mm_hidden = int(cfg.get("mm_hidden_size", vc["hidden_size"]))
    if mm_hidden != vc["hidden_size"]:
        raise CheckpointError(f"{cfg_path}: mm_hidden_size {mm_hidden} ≠ SigLIP hidden_size {vc['hidden_size']}")
    d, why = llm.hidden_size, f"LLM hidden {llm.hidden_size}, vision hidden {vc['hidden_size']}"
    w.expect(STREAMVLN_PROJECTOR_PREFIX + "0.weight", (d, vc["hidden_size"]), why)
    w.expect(STREAMVLN_PROJECTOR_PREFIX + "0.bias", (d,))
    w.expect(STREAMVLN_PROJECTOR_PREFIX + "2.weight", (d, d), why)
    w.expect(STREAMVLN_PROJECTOR_PREFIX + "2.bias", (d,))
    pp = _json(root / "preprocessor_config.json") if (root / "preprocessor_config.json").is_file() else {}
    vision = VisionInfo(
        config=vc,
        image_size=vc["image_size"],
        patch_size=vc["patch_size"],
        hidden_size=vc["hidden_size"],
        num_layers=full,
        stored_layers=stored,
        select_layer=-1 if stored == full - 1 else -2,
        **_preprocess(pp),
    )
    if vision.grid != 27:
        raise CheckpointError(f"{cfg_path}: SigLIP image_size/patch_size = {vision.grid}, expected 27 (384 / 14)")
    return StreamVlnCheckpoint(
        root=root,
        config=cfg,
        llm=llm,
        vision=vision,
        projector_type=ptype,
        pool_mode=pool_mode,
        pool_stride=int(cfg.get("mm_spatial_pool_stride", 2)),
        weights=w,
    )


def load_vlm_checkpoint(path: str | Path) -> NavilaCheckpoint | StreamVlnCheckpoint:
    """Either layout: a folder with llm/ is NaVILA, otherwise StreamVLN. A missing folder is named as missing (not
    mistaken for a StreamVLN checkpoint without files)."""
    if not Path(path).is_dir():
        raise CheckpointError(
            f"{path}: checkpoint folder not found (NaVILA: a8cheng/navila-llama3-8b-8f with llm/, vision_tower/, "
            "mm_projector/; StreamVLN: one folder with config.json and safetensors) — docs/vln-models.md"
        )
    return load_navila_checkpoint(path) if (Path(path) / "llm").is_dir() else load_streamvln_checkpoint(path)


LLM_PREFIXES = ("model.embed_tokens.", "model.layers.", "model.norm.", "lm_head.")  # a plain Llama / Qwen2 LLM


def llm_weights(ckpt: NavilaCheckpoint | StreamVlnCheckpoint) -> tuple[Weights, tuple[str, ...]]:
    """The weights holding the LLM and the name prefixes that are LLM tensors (StreamVLN shares its one folder with
    the tower and projector)."""
    if isinstance(ckpt, NavilaCheckpoint):
        return ckpt.llm_weights, ("",)
    return ckpt.weights, LLM_PREFIXES


def llm_parameter_count(ckpt: NavilaCheckpoint | StreamVlnCheckpoint) -> int:
    """Number of LLM parameters, from the safetensors headers (nothing loaded)."""
    w, prefixes = llm_weights(ckpt)
    return sum(math.prod(shape) for name, (_, _, shape) in w.entries.items() if name.startswith(prefixes))
