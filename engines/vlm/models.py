"""Vision-language models behind one interface: frames + instruction in, one decoded answer out.

- NavilaVlm (docs/vln-models.md §1): 8 frames per query (7 sampled history + current, see `navila_sample`); per-frame
  vision features cached by content (a hash of the pixels, LRU), so a query normally encodes only its new frame(s).
- StreamVlnVlm (§2): one frame per call (one call per 4 low-level steps); windows of `window_calls` calls. A window
  starts from the full prompt (+ memory frames after the first window); later calls append the previous generated ids
  + the next turn, reusing the KV cache on the transformers backend (TransformersSession).
- FixedAnswerVlm: scripted answers for tests and dry runs.
Every model's episode state (instruction, caches, history, KV cache) belongs to one object; `new_session()` gives
another state over the same weights (one per robot on the remote server), and `infer_batch` answers several sessions
at once (NaVILA sessions decode as one batch when their generator has `generate_batch`).
The LLM runs through engines.vlm.generator (transformers or TensorRT-LLM); the vision encoder is the PyTorch module from
the checkpoint or any TensorModel (ONNX Runtime / TensorRT, `input` [B,3,384,384] → `encoder_output` [B,196,d]).
Heavy imports (torch, transformers) happen in the constructors, so FixedAnswerVlm / VlmFrame stay light.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
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
VISION_CHUNK = 8  # frames per vision call when the model has no batch limit (PyTorch, ONNX Runtime)


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

    def new_session(self) -> VisionLanguageModel:
        """A fresh episode state (no instruction, empty caches) sharing this model's weights, tokenizer, vision
        encoder and generator. Sessions are independent; calls into sessions of one model must not overlap."""
        ...


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


def content_key(rgb: np.ndarray) -> bytes:
    """Cache key of a frame: shape, dtype and a BLAKE2b-128 digest of all its pixels. Never the frame id: ids are
    the sender's claim (two robots, or a restarted camera, reuse them for other pixels)."""
    a = np.ascontiguousarray(rgb)
    h = hashlib.blake2b(f"{a.shape}{a.dtype.str}".encode(), digest_size=16)
    h.update(a.data.cast("B") if a.size else b"")
    return h.digest()


def _vision_fn(vision: Any) -> tuple[Callable[[np.ndarray], np.ndarray], int]:
    """([B,3,S,S] float32 → [B,196,d] float32, the largest B it accepts) for a TensorModel (`run`; a TensorRT engine
    has `max_batch` from its profile) or a PyTorch encoder module."""
    if hasattr(vision, "run"):
        dtype = vision.inputs[0].dtype if getattr(vision, "inputs", None) else np.float32
        limit = getattr(vision, "max_batch", None) or VISION_CHUNK
        return lambda x: np.asarray(vision.run({"input": x.astype(dtype)})["encoder_output"], np.float32), int(limit)
    import torch

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return vision(torch.from_numpy(x)).float().numpy()

    return run, VISION_CHUNK


def _streamvln_llm(ckpt: Any) -> Any:
    """The Qwen2 LLM of a StreamVLN (llava_qwen) checkpoint as a plain transformers model, weights in float32, copied
    tensor by tensor into the model (one float32 copy of the LLM at the peak, not two)."""
    import transformers

    from engines.vlm.checkpoints import LLM_PREFIXES

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
    targets = dict(model.named_parameters(remove_duplicate=False))
    done = ckpt.weights.copy_into(targets, LLM_PREFIXES)
    missing = sorted(set(targets) - done - ({"lm_head.weight"} if cfg.tie_word_embeddings else set()))
    if missing:
        raise ValueError(f"{ckpt.root}: LLM tensors missing from the checkpoint, e.g. {missing[:3]}")
    return model.eval()


def llm_for_transformers(ckpt: Any) -> Any:
    """What TransformersGenerator loads for this checkpoint: NaVILA's llm/ folder, or StreamVLN's LLM (its llava_qwen
    folder is not a transformers model type) as a model."""
    return ckpt.llm_dir if ckpt.family == "navila" else _streamvln_llm(ckpt)


def transformers_fallback_fits(ckpt: Any, bytes_per_param: int = 4, available: int | None = None) -> str | None:
    """None when the transformers fallback (the LLM in float32 on the CPU: 4 B per parameter) fits in MemAvailable
    with 20 % headroom; else why not. An 8B LLM needs ≈ 32 GB: on a 16 / 32 GB Orin loading it would kill the
    process it was meant to save. The fallback is for development, not for navigating (docs/deployment.md)."""
    from drivers.jetson import meminfo
    from engines.vlm.checkpoints import llm_parameter_count

    n = llm_parameter_count(ckpt)
    need = n * bytes_per_param
    have = meminfo().get("MemAvailable") if available is None else available
    if have is None or need * 1.2 <= have:
        return None
    return (
        f"the transformers fallback needs ≈ {need / 2**30:.1f} GiB for the LLM ({n / 1e9:.2f} B parameters × "
        f"{bytes_per_param} B) and this machine has {have / 2**30:.1f} GiB available"
    )


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
        self.encode_batch, self.vision_max_batch = _vision_fn(
            vision if vision is not None else load_vision_encoder(self.ckpt)
        )
        if generator is None:
            too_big = transformers_fallback_fits(self.ckpt)
            if too_big:
                raise MemoryError(f"{self.ckpt.root}: {too_big}; build the TensorRT-LLM engine (build_engines.py)")
            generator = TransformersGenerator(llm_for_transformers(self.ckpt))
        self.generator = generator
        self.max_new_tokens = max_new_tokens
        self.instruction = ""
        self.last_generation: GenerationResult | None = None  # the last query's raw generator result

    def encode(self, rgbs: list[np.ndarray]) -> np.ndarray:
        """RGB frames → [n, 196, d] features, in chunks the vision model accepts (a TensorRT engine: its profile's
        max batch; otherwise VISION_CHUNK)."""
        from engines.vlm.vision import preprocess_frames

        v = self.ckpt.vision
        x = preprocess_frames(rgbs, size=v.image_size, mean=v.image_mean, std=v.image_std, rescale=v.rescale_factor)
        step = self.vision_max_batch
        return np.concatenate([self.encode_batch(x[i : i + step]) for i in range(0, len(x), step)])

    def request(self, prompt_ids: list[int], feats: np.ndarray) -> GenerationRequest:
        # the chat stop (<|eot_id|> / <|im_end|>) and any end-of-sequence id of the checkpoint, as generate() does
        stops = tuple(dict.fromkeys((self.llm.end_id, *(self.llm.eos_ids or ()))))
        return GenerationRequest(prompt_ids, feats, stops, self.max_new_tokens)

    def generate(self, prompt_ids: list[int], feats: np.ndarray, backend: Any = None) -> GenerationResult:
        self.last_generation = (backend or self.generator).generate(self.request(prompt_ids, feats))
        return self.last_generation

    def decode(self, tokens: list[int]) -> str:
        text = self.tokenizer.decode(tokens, skip_special_tokens=True).strip()
        return text[: -len(self.llm.end_token)].rstrip() if text.endswith(self.llm.end_token) else text


# ---------------------------------------------------------------------------------------------------- NaVILA
class NavilaVlm(_CheckpointVlm):
    """NaVILA: `infer` takes exactly 8 frames (navila_sample's output). Features are cached per frame content
    (`content_key`, LRU, `cache_size`; cleared on reset), so identical frames (all black padding frames, a frame seen
    again) are encoded once. vision_calls counts the distinct frames encoded in the query, cache_hits the rest
    (vision_calls + cache_hits = 8)."""

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
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self.reset("")

    def new_session(self) -> NavilaVlm:
        s = copy.copy(self)  # shares tokenizer, vision encoder, generator; own instruction, prompt ids and cache
        s._cache = OrderedDict()
        s.last_generation = None
        s.reset("")
        return s

    def reset(self, instruction: str) -> None:
        self.instruction = cap_instruction(self.tokenizer, instruction)
        self.prompt_ids = tokenize_with_images(self.tokenizer, navila_prompt(self.instruction, NAVILA_FRAMES - 1))
        self._cache.clear()

    def lookup(
        self, frames: Sequence[VlmFrame]
    ) -> tuple[list[bytes], dict[bytes, np.ndarray], dict[bytes, np.ndarray]]:
        """(key per frame, cached features found, frames to encode by key — each distinct content once)."""
        keys = [content_key(f.rgb) for f in frames]
        found: dict[bytes, np.ndarray] = {}
        todo: dict[bytes, np.ndarray] = {}
        for key, f in zip(keys, frames):
            if key in found or key in todo:
                continue
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                found[key] = hit
            else:
                todo[key] = f.rgb
        return keys, found, todo

    def store(self, found: dict[bytes, np.ndarray], todo: Sequence[bytes], feats: np.ndarray) -> None:
        """Cache freshly encoded features (in `todo` order) and add them to `found`; LRU-trim the cache."""
        for key, feat in zip(todo, feats):
            found[key] = self._cache[key] = feat
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def check_frames(self, frames: Sequence[VlmFrame]) -> None:
        if len(frames) != NAVILA_FRAMES:
            raise ValueError(
                f"NaVILA takes {NAVILA_FRAMES} frames (7 history + current, see navila_sample), got {len(frames)}"
            )

    def _features(self, frames: Sequence[VlmFrame]) -> tuple[np.ndarray, int]:
        keys, found, todo = self.lookup(frames)
        if todo:
            self.store(found, list(todo), self.encode(list(todo.values())))
        return np.stack([found[k] for k in keys]), len(todo)

    def infer(self, frames: Sequence[VlmFrame]) -> VlmAnswer:
        self.check_frames(frames)
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
    append the previous generated ids + the stop id that ended them and the short later-turn prompt; the transformers
    backend prefills only those new tokens (TransformersSession), other backends re-prefill the whole window (same
    tokens).
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

    def new_session(self) -> StreamVlnVlm:
        from engines.vlm.generator import TransformersSession

        s = copy.copy(self)  # shares weights; own history, window ids, features and KV cache
        s.session = None if self.session is None else TransformersSession(self.generator)
        s.last_generation = None
        s.reset("")
        return s

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
        # the next turn follows the generated ids + the stop id that ended them (HF `sequences`: <|im_end|> or an
        # end-of-sequence id; nothing when max_new_tokens cut the answer), docs/vln-models.md §2.3
        self._ids += res.tokens + ([] if res.stop_id is None else [res.stop_id])
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

    def new_session(self) -> FixedAnswerVlm:
        return FixedAnswerVlm(self.answers, self.latency_s)

    def infer(self, frames: Sequence[VlmFrame]) -> VlmAnswer:
        t0 = time.perf_counter()
        if self.latency_s > 0:
            time.sleep(self.latency_s)
        text = self.answers[self.queries % len(self.answers)]
        self.queries += 1
        return VlmAnswer(
            text, tuple(f.frame_id for f in frames), VlmTimings(0.0, 0.0, 0.0, time.perf_counter() - t0), 0, 0, 0
        )


# ---------------------------------------------------------------------------------------------------- batches
def batchable(model: Any) -> bool:
    """Whether `infer_batch` answers several sessions of `model` with one batched model call (NaVILA on a generator
    with `generate_batch`); otherwise they run one after the other."""
    return isinstance(model, NavilaVlm) and hasattr(model.generator, "generate_batch")


def infer_batch(jobs: Sequence[tuple[VisionLanguageModel, Sequence[VlmFrame]]]) -> list[VlmAnswer | Exception]:
    """Answer several sessions' queries (at most one per session), each result or exception in job order.

    NaVILA sessions of one model whose generator has `generate_batch` share one vision call for their new frames
    and one batched decode (same tokens as one by one; their timings are the batch's). Everything else — StreamVLN
    (per-robot KV caches of different lengths), fixed answers, other backends — runs one by one, in order.
    A failure answers only its own job, except a failure inside a shared batched call, which answers its whole group."""
    results: list[VlmAnswer | Exception | None] = [None] * len(jobs)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (m, _) in enumerate(jobs):
        if isinstance(m, NavilaVlm) and batchable(m):
            groups.setdefault((id(m.generator), id(m.encode_batch)), []).append(i)
        else:
            results[i] = _infer_one(m, jobs[i][1])
    for idx in groups.values():
        if len(idx) == 1:
            results[idx[0]] = _infer_one(*jobs[idx[0]])
        else:
            for i, r in zip(idx, _navila_batch([jobs[i] for i in idx])):  # type: ignore[misc]
                results[i] = r
    return results  # type: ignore[return-value]


def _infer_one(model: VisionLanguageModel, frames: Sequence[VlmFrame]) -> VlmAnswer | Exception:
    try:
        return model.infer(frames)
    except Exception as e:
        return e


def _navila_batch(jobs: Sequence[tuple[NavilaVlm, Sequence[VlmFrame]]]) -> list[VlmAnswer | Exception]:
    t0 = time.perf_counter()
    out: list[VlmAnswer | Exception | None] = [None] * len(jobs)
    ready = []  # (job index, keys, found, todo keys)
    rgbs: list[np.ndarray] = []
    for i, (m, frames) in enumerate(jobs):
        try:
            m.check_frames(frames)
            keys, found, new = m.lookup(frames)
        except Exception as e:
            out[i] = e
            continue
        ready.append((i, keys, found, list(new)))
        rgbs.extend(new.values())
    try:
        feats = jobs[ready[0][0]][0].encode(rgbs) if rgbs else np.empty(0)
        at = 0
        reqs = []
        for i, keys, found, todo in ready:
            m = jobs[i][0]
            m.store(found, todo, feats[at : at + len(todo)])
            at += len(todo)
            reqs.append(m.request(m.prompt_ids, np.stack([found[k] for k in keys])))
        t1 = time.perf_counter()
        gens = jobs[ready[0][0]][0].generator.generate_batch(reqs) if reqs else []
    except Exception as e:
        for i, *_ in ready:
            out[i] = e
        return out  # type: ignore[return-value]
    total = time.perf_counter() - t0
    for (i, keys, _, todo), res in zip(ready, gens):
        m, frames = jobs[i]
        m.last_generation = res
        timings = VlmTimings(t1 - t0, res.prefill_s, res.decode_s, total)
        ids = tuple(f.frame_id for f in frames)
        out[i] = VlmAnswer(m.decode(res.tokens), ids, timings, len(todo), len(frames) - len(todo), len(res.tokens))
    return out  # type: ignore[return-value]


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
    return load_model(path, threads=os.cpu_count() or 1)  # an ONNX Runtime encoder (fallback) on every core


def _trtllm_or_fallback(engine_dir: Path, machine: Any = None, runner: str = "python"):
    """The TensorRT-LLM generator if the engine's manifest (build_engines: `<out>/llm/llm.manifest.json`, engine in
    `<out>/llm/llm/`) matches this machine and the runtime loads; otherwise, loudly, None (= transformers on the
    checkpoint's LLM, if it fits). A runtime that does not import (e.g. cuda-python 13 has no `cuda.cudart`, which
    TensorRT-LLM 0.12 imports) or an engine that does not load counts as a mismatch."""
    from engines.manifest import MachineInfo, ManifestError, verify, warn_fallback

    manifest = engine_dir.parent / "llm.manifest.json"
    try:
        m, reasons = verify(manifest, machine)
        if m.backend != "tensorrt_llm":
            reasons = [f"{manifest} describes a {m.backend} artifact, not a TensorRT-LLM engine", *reasons]
    except (OSError, ManifestError) as e:
        reasons = [f"no readable manifest {manifest}: {e}"]
    if reasons:
        warn_fallback(manifest, reasons, "transformers")
        return None
    from engines.vlm.generator import TrtLlmGenerator

    kw: dict[str, Any] = {}
    if runner == "cpp":  # KV capped at what one request needs (the plan's), the engine mapped instead of read (Jetson)
        plan = m.build_flags.get("plan", {})
        kw = {"cpp": True, "max_tokens_in_paged_kv_cache": plan.get("kv_cache", {}).get("runtime_max_tokens")}
        if (machine or MachineInfo.detect()).l4t:
            kw["use_mmap"] = True  # ModelRunnerCpp of v0.12.0-jetson only
    try:
        return TrtLlmGenerator(engine_dir, **kw)
    except (ImportError, RuntimeError, OSError, ValueError, KeyError) as e:
        warn_fallback(
            manifest, [f"TensorRT-LLM runtime failed to load the engine: {type(e).__name__}: {e}"], "transformers"
        )
        return None


def load_vlm(
    checkpoint: Any,
    *,
    vision_manifest: str | None = None,
    generator_backend: Literal["transformers", "tensorrt_llm"] = "transformers",
    engine_dir: str | Path | None = None,
    trtllm_runner: str = "python",
    progress: Callable[[str, float], None] | None = None,
) -> VisionLanguageModel:
    """NavilaVlm or StreamVlnVlm for a checkpoint folder (the family is read from its layout).
    vision_manifest: a build_engines vision manifest (else the PyTorch encoder). generator_backend "tensorrt_llm"
    needs `engine_dir` (trtllm-build output); "transformers" runs the checkpoint's LLM on CPU in float32.
    progress(stage, fraction): called before each loading stage (the VLM process reports it as its health)."""
    from engines.vlm.checkpoints import load_vlm_checkpoint

    report = progress or (lambda stage, fraction: None)
    report("checkpoint", 0.1)
    ckpt = checkpoint if hasattr(checkpoint, "llm") else load_vlm_checkpoint(checkpoint)
    if vision_manifest:
        report("vision engine", 0.4)
    vision = _load_vision_manifest(vision_manifest, ckpt) if vision_manifest else None
    if generator_backend == "transformers":
        generator = None
    elif generator_backend == "tensorrt_llm":
        if engine_dir is None:
            raise ValueError("generator_backend='tensorrt_llm' needs engine_dir (the trtllm-build output folder)")
        report("TensorRT-LLM engine", 0.6)
        generator = _trtllm_or_fallback(Path(engine_dir), runner=trtllm_runner)
    else:
        raise ValueError(f"unknown generator_backend {generator_backend!r} (transformers, tensorrt_llm)")
    report("model", 0.8)
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
    "batchable",
    "cap_instruction",
    "content_key",
    "infer_batch",
    "load_vlm",
    "navila_sample",
    "streamvln_memory_steps",
    "tokenize_with_images",
]
