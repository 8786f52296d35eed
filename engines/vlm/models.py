"""Vision-language models behind one interface: frames + instruction in, one decoded answer out.

- NavilaVlm (docs/vln-models.md §1): 8 frames per query (7 sampled history + current, see `navila_sample`); per-frame
  vision features cached by frame id (LRU), so a query normally encodes only its new frame(s).
- StreamVlnVlm (§2): one frame per call (one call per 4 low-level steps); windows of `window_calls` calls. A window
  starts from the full prompt (+ memory frames after the first window); later calls append the previous generated ids
  + the next turn, reusing the KV cache on the transformers backend (TransformersSession).
- FixedAnswerVlm: scripted answers for tests and dry runs.
The LLM runs through engines.vlm.generator (transformers or TensorRT-LLM); the vision encoder is the PyTorch module from
the checkpoint or any TensorModel (ONNX Runtime / TensorRT, `input` [B,3,384,384] → `encoder_output` [B,196,d]).
Heavy imports (torch, transformers) happen in the constructors, so FixedAnswerVlm / VlmFrame stay light.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Protocol, Sequence

import numpy as np

from engines.vlm.generator import IMAGE_TOKEN_INDEX, GenerationRequest, GenerationResult
from engines.vlm.prompts import IMAGE, MEMORY, navila_prompt, streamvln_prompt

log = logging.getLogger(__name__)

INSTRUCTION_TOKEN_CAP = 256  # the LLM build plan's instruction budget (exporters.llm.INSTRUCTION_TOKEN_CAP)
NAVILA_FRAMES = 8  # 7 history + current
VISION_MAX_BATCH = 8  # the vision engine's largest profile batch (build_vision_engine max_batch)
BLACK = "black"  # cache key shared by all black padding frames


@dataclass(frozen=True)
class VlmFrame:
    frame_id: int  # camera frame id; -1 for black padding
    rgb: np.ndarray  # H×W×3 uint8 RGB (any size; preprocessing squashes to 384)


@dataclass(frozen=True)
class VlmTimings:
    vision_s: float
    prefill_s: float
    decode_s: float
    total_s: float


@dataclass(frozen=True)
class VlmAnswer:
    text: str  # decoded, special tokens skipped, stripped, trailing stop string removed
    frame_ids: tuple[int, ...]  # the frames the model saw, in prompt order
    timings: VlmTimings
    vision_calls: int  # frames encoded by the vision model in this query
    cache_hits: int  # frames whose features came from the cache
    new_tokens: int


class VisionLanguageModel(Protocol):
    family: str  # "navila" | "streamvln" | "fixed"

    def reset(self, instruction: str) -> None: ...

    def infer(self, frames: Sequence[VlmFrame]) -> VlmAnswer: ...


# ---------------------------------------------------------------------------------------------------- helpers
def navila_sample(history: Sequence[VlmFrame], current: VlmFrame) -> list[VlmFrame]:
    """§1.4: all past frames + current, black-padded at the front to 8; 7 at floor(i·(N−1)/7), then the current."""
    frames = list(history) + [current]
    if len(frames) < NAVILA_FRAMES:
        black = VlmFrame(-1, np.zeros_like(current.rgb))
        frames = [black] * (NAVILA_FRAMES - len(frames)) + frames
    n = len(frames)
    return [frames[i * (n - 1) // (NAVILA_FRAMES - 1)] for i in range(NAVILA_FRAMES - 1)] + [frames[-1]]


def streamvln_memory_steps(t0: int, n: int = 8) -> list[int]:
    """Step ids of the memory frames at a window start: `slice(0, t0, t0 // n)` over the episode's steps (§2.2).
    The stride is clamped to 1 for t0 < n (the reference would fail there; it never starts a window that early)."""
    return list(range(t0))[slice(0, t0, max(1, t0 // n))]


def tokenize_with_images(tokenizer: Any, prompt: str) -> list[int]:
    """VILA/LLaVA `tokenizer_image_token`: tokenise the text between `<image>` markers (special tokens added as the
    tokenizer does), IMAGE_TOKEN_INDEX between chunks; if the first chunk starts with BOS, every later chunk loses its
    first token. NaVILA's prompt text begins with <|begin_of_text|> and the Llama-3 tokenizer adds BOS too, so the ids
    start with BOS twice — exactly what the reference feeds the model (§1.5), reproduced on purpose."""
    chunks = [tokenizer(chunk).input_ids for chunk in prompt.split(IMAGE)]
    bos = tokenizer.bos_token_id
    strip = 1 if bos is not None and chunks[0][:1] == [bos] else 0
    ids = list(chunks[0])
    for chunk in chunks[1:]:
        ids.append(IMAGE_TOKEN_INDEX)
        ids.extend(chunk[strip:])
    return ids


def cap_instruction(tokenizer: Any, instruction: str, cap: int = INSTRUCTION_TOKEN_CAP) -> str:
    """The instruction cut to `cap` tokens (logged), as the LLM engine's max_input_len assumes."""
    ids = tokenizer(instruction, add_special_tokens=False).input_ids
    if len(ids) <= cap:
        return instruction
    log.warning("instruction has %d tokens; truncated to the first %d", len(ids), cap)
    return tokenizer.decode(ids[:cap])


def _fingerprint(rgb: np.ndarray) -> tuple:
    """Cheap content check so a reused frame id with different pixels is not served a stale feature."""
    a = np.asarray(rgb)
    return a.shape, hash(a[::16, ::16].tobytes())


def _vision_fn(vision: Any) -> Callable[[np.ndarray], np.ndarray]:
    """[B,3,S,S] float32 → [B,196,d] float32 for a TensorModel (`run`) or a PyTorch encoder module."""
    if hasattr(vision, "run"):
        dtype = vision.inputs[0].dtype if getattr(vision, "inputs", None) else np.float32
        return lambda x: np.asarray(vision.run({"input": x.astype(dtype)})["encoder_output"], np.float32)
    import torch

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return vision(torch.from_numpy(x)).float().numpy()

    return run


def _streamvln_llm(ckpt: Any) -> Any:
    """The Qwen2 LLM of a StreamVLN (llava_qwen) checkpoint as a plain transformers model, weights in float32."""
    import transformers

    keys = (
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "max_position_embeddings",
        "rope_theta",
        "rms_norm_eps",
        "hidden_act",
        "tie_word_embeddings",
        "attention_dropout",
        "use_sliding_window",
        "sliding_window",
        "max_window_layers",
    )
    cfg = transformers.Qwen2Config(**{k: ckpt.config[k] for k in keys if k in ckpt.config})
    model = transformers.Qwen2ForCausalLM(cfg)
    sd = {}
    for prefix in ("model.embed_tokens.", "model.layers.", "model.norm.", "lm_head."):
        sd.update(ckpt.weights.load(prefix))
    model.load_state_dict(sd, strict=not cfg.tie_word_embeddings)
    return model


class _CheckpointVlm:
    """Shared by NaVILA / StreamVLN: checkpoint, tokenizer, vision encoder, generator, answer decoding."""

    family = ""

    def __init__(self, checkpoint: Any, generator: Any, vision: Any, max_new_tokens: int):
        from transformers import PreTrainedTokenizerFast

        from engines.vlm.checkpoints import load_vlm_checkpoint
        from engines.vlm.generator import TransformersGenerator
        from engines.vlm.vision import load_vision_encoder

        self.ckpt = checkpoint if hasattr(checkpoint, "llm") else load_vlm_checkpoint(checkpoint)
        if self.ckpt.family != self.family:
            raise ValueError(f"{self.ckpt.root}: a {self.ckpt.family} checkpoint, not {self.family}")
        self.llm = self.ckpt.llm
        self.tokenizer = PreTrainedTokenizerFast.from_pretrained(str(self.llm.folder))
        self.encode_batch = _vision_fn(vision if vision is not None else load_vision_encoder(self.ckpt))
        if generator is None:
            llm = self.ckpt.llm_dir if self.family == "navila" else _streamvln_llm(self.ckpt)
            generator = TransformersGenerator(llm)
        self.generator = generator
        self.max_new_tokens = max_new_tokens
        self.instruction = ""
        self.last_generation: GenerationResult | None = None  # the last query's raw generator result

    def encode(self, rgbs: list[np.ndarray]) -> np.ndarray:
        """RGB frames → [n, 196, d] features, in chunks the vision engine's profile accepts."""
        from engines.vlm.vision import preprocess_frames

        v = self.ckpt.vision
        x = preprocess_frames(rgbs, size=v.image_size, mean=v.image_mean, std=v.image_std, rescale=v.rescale_factor)
        step = VISION_MAX_BATCH
        return np.concatenate([self.encode_batch(x[i : i + step]) for i in range(0, len(x), step)])

    def generate(self, prompt_ids: list[int], feats: np.ndarray, backend: Any = None) -> GenerationResult:
        # the chat stop (<|eot_id|> / <|im_end|>) and any end-of-sequence id of the checkpoint, as generate() does
        stops = tuple(dict.fromkeys((self.llm.end_id, *(self.llm.eos_ids or ()))))
        req = GenerationRequest(prompt_ids, feats, stops, self.max_new_tokens)
        self.last_generation = (backend or self.generator).generate(req)
        return self.last_generation

    def decode(self, tokens: list[int]) -> str:
        text = self.tokenizer.decode(tokens, skip_special_tokens=True).strip()
        return text[: -len(self.llm.end_token)].rstrip() if text.endswith(self.llm.end_token) else text


# ---------------------------------------------------------------------------------------------------- NaVILA
class NavilaVlm(_CheckpointVlm):
    """NaVILA: `infer` takes exactly 8 frames (navila_sample's output). Features are cached per frame id (LRU,
    `cache_size`; cleared on reset); all black padding frames (id −1) share one feature. vision_calls counts the
    distinct frames encoded in the query, cache_hits the rest (vision_calls + cache_hits = 8)."""

    family = "navila"

    def __init__(
        self,
        checkpoint: Any,
        *,
        generator: Any = None,
        vision: Any = None,
        cache_size: int = 64,
        max_new_tokens: int = 32,
    ):
        super().__init__(checkpoint, generator, vision, max_new_tokens)
        self.cache_size = cache_size
        self._cache: OrderedDict[Any, tuple[tuple | None, np.ndarray]] = OrderedDict()
        self.reset("")

    def reset(self, instruction: str) -> None:
        self.instruction = cap_instruction(self.tokenizer, instruction)
        self.prompt_ids = tokenize_with_images(self.tokenizer, navila_prompt(self.instruction, NAVILA_FRAMES - 1))
        self._cache.clear()

    def _features(self, frames: Sequence[VlmFrame]) -> tuple[np.ndarray, int]:
        keys = [BLACK if f.frame_id == -1 else f.frame_id for f in frames]
        found: dict[Any, np.ndarray] = {}
        todo: dict[Any, np.ndarray] = {}  # key → rgb to encode (dict: each key once)
        for key, f in zip(keys, frames):
            fp = _fingerprint(f.rgb) if key != BLACK else None
            hit = self._cache.get(key)
            if hit is not None and hit[0] == fp:
                self._cache.move_to_end(key)
                found[key] = hit[1]
            elif key not in found:
                if hit is not None:
                    log.warning("frame id %s reused with different pixels; re-encoding", key)
                todo[key] = np.zeros((384, 384, 3), np.uint8) if key == BLACK else f.rgb
        if todo:
            for key, feat in zip(todo, self.encode(list(todo.values()))):
                found[key] = feat
                fp = None if key == BLACK else _fingerprint(frames[keys.index(key)].rgb)
                self._cache[key] = (fp, feat)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return np.stack([found[k] for k in keys]), len(todo)

    def infer(self, frames: Sequence[VlmFrame]) -> VlmAnswer:
        if len(frames) != NAVILA_FRAMES:
            raise ValueError(
                f"NaVILA takes {NAVILA_FRAMES} frames (7 history + current, see navila_sample), got {len(frames)}"
            )
        t0 = time.perf_counter()
        feats, calls = self._features(frames)
        t1 = time.perf_counter()
        res = self.generate(self.prompt_ids, feats)
        text = self.decode(res.tokens)
        timings = VlmTimings(t1 - t0, res.prefill_s, res.decode_s, time.perf_counter() - t0)
        return VlmAnswer(text, tuple(f.frame_id for f in frames), timings, calls, len(frames) - calls, len(res.tokens))


# ---------------------------------------------------------------------------------------------------- StreamVLN
class StreamVlnVlm(_CheckpointVlm):
    """StreamVLN: `infer` takes the current frame (one call per `steps_per_call` = 4 low-level steps).

    Call k of the episode is step t0 = 4k. A window = `window_calls` calls. At a window start the KV cache and ids are
    dropped and the prompt is rebuilt: system + instruction [+ memory clause] + current frame; the memory (windows
    after the first) is the frames at steps `slice(0, t0, t0 // memory_frames)` — step s shows call s // 4's frame,
    as in the reference real-robot server that feeds each image to 4 steps — re-encoded, not cached. Later calls
    append the previous generated ids + <|im_end|> and the short later-turn prompt; the transformers backend prefills
    only those new tokens (TransformersSession), other backends re-prefill the whole window (same tokens).
    Memory clause and conjunction: the real-robot agent's (" You have visited these areas <memory>.", "you can see ").
    frame_ids = the frames of this call's prompt (memory + current); earlier turns are in the cache.
    """

    family = "streamvln"
    steps_per_call = 4
    memory_clause: Literal["eval", "train", "real"] = "real"

    def __init__(
        self,
        checkpoint: Any,
        *,
        generator: Any = None,
        vision: Any = None,
        max_new_tokens: int = 16,
        window_calls: int = 8,
        memory_frames: int = 8,
    ):
        from engines.vlm.generator import TransformersGenerator, TransformersSession

        super().__init__(checkpoint, generator, vision, max_new_tokens)
        self.window_calls, self.memory_frames = window_calls, memory_frames
        reuse = isinstance(self.generator, TransformersGenerator)
        self.session = TransformersSession(self.generator) if reuse else None
        self.reset("")

    def reset(self, instruction: str) -> None:
        self.instruction = cap_instruction(self.tokenizer, instruction)
        self.history: list[VlmFrame] = []  # the current frame of every call this episode
        self._ids: list[int] = []  # this window's conversation so far
        self._feats: list[np.ndarray] = []
        if self.session is not None:
            self.session.reset()

    def infer(self, frames: Sequence[VlmFrame]) -> VlmAnswer:
        if len(frames) != 1:
            raise ValueError(f"StreamVLN takes the current frame only (it keeps its own memory), got {len(frames)}")
        t_start = time.perf_counter()
        k = len(self.history)
        memory: list[VlmFrame] = []
        if k % self.window_calls == 0:  # window start: drop ids / KV, full prompt
            if k > 0:
                t0 = k * self.steps_per_call
                memory = [
                    self.history[s // self.steps_per_call] for s in streamvln_memory_steps(t0, self.memory_frames)
                ]
            text = streamvln_prompt(self.instruction, memory=bool(memory), memory_clause=self.memory_clause)
            text = text.replace(MEMORY, IMAGE * len(memory))
            self._ids, self._feats = [], []
            if self.session is not None:
                self.session.reset()
        else:
            text = streamvln_prompt()
        seen = memory + [frames[0]]
        self.history.append(frames[0])
        self._feats.append(self.encode([f.rgb for f in seen]))
        t_vision = time.perf_counter() - t_start
        self._ids += tokenize_with_images(self.tokenizer, text)
        res = self.generate(list(self._ids), np.concatenate(self._feats), self.session)
        self._ids += res.tokens + [self.llm.end_id]  # the next turn follows the generated ids incl. <|im_end|>
        timings = VlmTimings(t_vision, res.prefill_s, res.decode_s, time.perf_counter() - t_start)
        return VlmAnswer(
            self.decode(res.tokens), tuple(f.frame_id for f in seen), timings, len(seen), 0, len(res.tokens)
        )


# ---------------------------------------------------------------------------------------------------- fixed
class FixedAnswerVlm:
    """Scripted answers, cycled in order (restarting at each reset); sleeps `latency_s` per query to stand in for
    inference time. Timings are measured: vision / prefill / decode 0, total = the real time spent."""

    family = "fixed"

    def __init__(self, answers: Sequence[str], latency_s: float = 0.0):
        if not answers:
            raise ValueError("FixedAnswerVlm needs at least one answer")
        self.answers, self.latency_s = list(answers), float(latency_s)
        self.instruction, self.queries = "", 0

    def reset(self, instruction: str) -> None:
        self.instruction, self.queries = instruction, 0

    def infer(self, frames: Sequence[VlmFrame]) -> VlmAnswer:
        t0 = time.perf_counter()
        if self.latency_s > 0:
            time.sleep(self.latency_s)
        text = self.answers[self.queries % len(self.answers)]
        self.queries += 1
        return VlmAnswer(
            text, tuple(f.frame_id for f in frames), VlmTimings(0.0, 0.0, 0.0, time.perf_counter() - t0), 0, 0, 0
        )


# ---------------------------------------------------------------------------------------------------- loading
def _load_vision_manifest(path: str | Path, ckpt: Any) -> Any:
    """The vision TensorModel of a build_engines manifest (TensorRT, or ONNX Runtime / fallback), checked against
    the checkpoint's family and LLM width."""
    from engines.loader import load_model
    from engines.manifest import read_manifest

    meta = read_manifest(path).metadata
    family, hidden = meta.get("edge.family"), meta.get("edge.hidden_size")
    if family is not None and family != ckpt.family:
        raise ValueError(f"{path}: vision engine for {family}, checkpoint is {ckpt.family}")
    if hidden is not None and int(hidden) != ckpt.llm.hidden_size:
        raise ValueError(f"{path}: vision output width {hidden} != LLM hidden size {ckpt.llm.hidden_size}")
    return load_model(path)


def _trtllm_or_fallback(engine_dir: Path):
    """The TensorRT-LLM generator if the engine's manifest (build_engines: `<out>/llm/llm.manifest.json`, engine in
    `<out>/llm/llm/`) matches this machine; otherwise, loudly, None (= transformers on the checkpoint's LLM)."""
    from engines.manifest import ManifestError, verify, warn_fallback

    manifest = engine_dir.parent / "llm.manifest.json"
    try:
        m, reasons = verify(manifest)
        if m.backend != "tensorrt_llm":
            reasons = [f"{manifest} describes a {m.backend} artifact, not a TensorRT-LLM engine", *reasons]
    except (OSError, ManifestError) as e:
        reasons = [f"no readable manifest {manifest}: {e}"]
    if reasons:
        warn_fallback(manifest, reasons, "transformers")
        return None
    from engines.vlm.generator import TrtLlmGenerator

    return TrtLlmGenerator(engine_dir)


def load_vlm(
    checkpoint: Any,
    *,
    vision_manifest: str | None = None,
    generator_backend: Literal["transformers", "tensorrt_llm"] = "transformers",
    engine_dir: str | Path | None = None,
) -> VisionLanguageModel:
    """NavilaVlm or StreamVlnVlm for a checkpoint folder (the family is read from its layout).
    vision_manifest: a build_engines vision manifest (else the PyTorch encoder). generator_backend "tensorrt_llm"
    needs `engine_dir` (trtllm-build output); "transformers" runs the checkpoint's LLM on CPU in float32."""
    from engines.vlm.checkpoints import load_vlm_checkpoint

    ckpt = checkpoint if hasattr(checkpoint, "llm") else load_vlm_checkpoint(checkpoint)
    vision = _load_vision_manifest(vision_manifest, ckpt) if vision_manifest else None
    if generator_backend == "transformers":
        generator = None
    elif generator_backend == "tensorrt_llm":
        if engine_dir is None:
            raise ValueError("generator_backend='tensorrt_llm' needs engine_dir (the trtllm-build output folder)")
        generator = _trtllm_or_fallback(Path(engine_dir))
    else:
        raise ValueError(f"unknown generator_backend {generator_backend!r} (transformers, tensorrt_llm)")
    cls = NavilaVlm if ckpt.family == "navila" else StreamVlnVlm
    return cls(ckpt, generator=generator, vision=vision)


__all__ = [
    "FixedAnswerVlm",
    "NavilaVlm",
    "StreamVlnVlm",
    "VisionLanguageModel",
    "VlmAnswer",
    "VlmFrame",
    "VlmTimings",
    "cap_instruction",
    "load_vlm",
    "navila_sample",
    "streamvln_memory_steps",
    "tokenize_with_images",
]
