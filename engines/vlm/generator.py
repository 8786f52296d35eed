"""LLM generator with one contract across backends.

Request: prompt token ids with IMAGE_TOKEN_INDEX (-200) at each image position + image embeddings
[n_images, tokens_per_image, hidden]. Each placeholder expands, in order, to that image's tokens_per_image rows.
Result: greedy tokens until a stop id (not included; which one ended generation is `stop_id`) or max_new_tokens.

Backends:
- TransformersGenerator: splices the rows into `inputs_embeds`; greedy decode with KV cache (fallback and reference);
  `generate_batch` decodes independent requests as one left-padded batch (the remote server's micro-batching).
  TransformersSession on top of it keeps the KV cache between requests that extend each other (StreamVLN windows).
- TrtLlmGenerator: TensorRT-LLM v0.12 engine built with --max_multimodal_len; image rows go in as a prompt table
  (p-tuning embeddings) addressed by fake ids vocab_size.. as in the 0.12 examples/multimodal/run.py
  (`setup_fake_prompts_vila` mode 1 + `ptuning_setup`). tensorrt_llm is imported lazily. API facts (ModelRunner /
  ModelRunnerCpp of NVIDIA/TensorRT-LLM v0.12.0 and v0.12.0-jetson): docs/jetson.md §4.
"""

from __future__ import annotations

import inspect
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

IMAGE_TOKEN_INDEX = -200


@dataclass(frozen=True)
class GenerationRequest:
    prompt_ids: list[int]  # IMAGE_TOKEN_INDEX at each image position
    image_embeds: np.ndarray  # [n_images, tokens_per_image, hidden], float
    stop_ids: tuple[int, ...]
    max_new_tokens: int

    @property
    def n_prompt_tokens(self) -> int:
        """Prompt length as the LLM sees it: text tokens + every image's rows."""
        e = np.asarray(self.image_embeds)
        n_text = sum(1 for t in self.prompt_ids if t != IMAGE_TOKEN_INDEX)
        return n_text + (e.shape[0] * e.shape[1] if e.ndim == 3 else 0)


@dataclass(frozen=True)
class GenerationResult:
    tokens: list[int]  # generated ids, stop id excluded
    stop_reason: Literal["stop", "length"]
    prefill_s: float  # prompt forward up to the first token (see first_token_timed)
    decode_s: float  # the remaining tokens
    n_prompt_tokens: int  # incl. image tokens
    n_cached_tokens: int = 0  # prompt positions reused from a KV cache (TransformersSession), not prefilled
    first_token_timed: bool = True  # False: the backend gave no first-token time; prefill_s is the whole call and
    # decode_s 0 (TensorRT-LLM without streaming; `make jetson-check` measures the prefill / decode split)
    stop_id: int | None = None  # the stop id that ended generation (one of request.stop_ids); None on "length".
    # HF `generate` returns it as the last id of `sequences`; StreamVLN appends exactly that to the next turn.

    @property
    def n_prefilled(self) -> int:
        return self.n_prompt_tokens - self.n_cached_tokens


class Generator(Protocol):
    """The one seam between the VLMs and an LLM runtime. A backend that can decode several independent requests at
    once also has `generate_batch(list[GenerationRequest]) -> list[GenerationResult]` (same tokens as one by one);
    the remote VLM server uses it to answer concurrent robots in one call (docs/serving.md)."""

    backend: str
    hidden_size: int

    def generate(self, request: GenerationRequest) -> GenerationResult: ...


def validate_request(req: GenerationRequest, hidden_size: int | None = None) -> None:
    """Raise ValueError naming what is wrong with `req` (placeholder count, embedding shape, stops, lengths)."""
    e = np.asarray(req.image_embeds)
    if e.ndim != 3:
        raise ValueError(f"image_embeds must be [n_images, tokens_per_image, hidden], got shape {list(e.shape)}")
    if not np.issubdtype(e.dtype, np.floating):
        raise ValueError(f"image_embeds must be float, got {e.dtype}")
    n_placeholders = sum(1 for t in req.prompt_ids if t == IMAGE_TOKEN_INDEX)
    if n_placeholders != e.shape[0]:
        raise ValueError(
            f"prompt has {n_placeholders} image placeholders ({IMAGE_TOKEN_INDEX}) "
            f"but image_embeds holds {e.shape[0]} images"
        )
    if hidden_size is not None and e.shape[2] != hidden_size:
        raise ValueError(f"image_embeds hidden size {e.shape[2]} != model hidden size {hidden_size}")
    bad = [t for t in req.prompt_ids if t < 0 and t != IMAGE_TOKEN_INDEX]
    if bad:
        raise ValueError(f"negative token ids other than {IMAGE_TOKEN_INDEX} in prompt: {sorted(set(bad))}")
    if not req.stop_ids:
        raise ValueError("stop_ids is empty")
    if req.max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {req.max_new_tokens}")


def splice_layout(prompt_ids: list[int], tokens_per_image: int) -> tuple[np.ndarray, np.ndarray]:
    """Expand placeholders. Returns (ids, rows), one entry per LLM input position:
    ids = text token id (-1 at image rows); rows = row of the flattened image table (-1 at text tokens).
    The k-th placeholder becomes rows k·T … k·T + T − 1, in prompt order."""
    ids: list[int] = []
    rows: list[int] = []
    k = 0
    for t in prompt_ids:
        if t == IMAGE_TOKEN_INDEX:
            ids.extend([-1] * tokens_per_image)
            rows.extend(range(k * tokens_per_image, (k + 1) * tokens_per_image))
            k += 1
        else:
            ids.append(t)
            rows.append(-1)
    return np.asarray(ids, dtype=np.int64), np.asarray(rows, dtype=np.int64)


def fake_prompt_ids(req: GenerationRequest, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """TensorRT-LLM multimodal inputs: (input_ids int32 [L], prompt_table [1, N, hidden]).

    Image rows get fake ids vocab_size … vocab_size + N − 1 (N = n_images · tokens_per_image), consecutive per
    placeholder in order, and the table is the embeddings flattened in the same order — what the 0.12
    MultimodalModelRunner builds for VILA (`setup_fake_prompts_vila`, batch 1) before `ptuning_setup` /
    `torch.stack([table])`. The engine looks ids >= vocab_size up in the table (task 0)."""
    validate_request(req)
    e = np.asarray(req.image_embeds)
    ids, rows = splice_layout(req.prompt_ids, e.shape[1])
    input_ids = np.where(rows >= 0, vocab_size + rows, ids).astype(np.int32)
    return input_ids, e.reshape(1, e.shape[0] * e.shape[1], e.shape[2])


def _first_stop(tokens: list[int], stop_ids: tuple[int, ...]) -> int | None:
    return next((i for i, t in enumerate(tokens) if t in stop_ids), None)


# --- transformers -----------------------------------------------------------------------------------------------------


def _torch_dtype(dtype: Any):
    import torch

    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


class TransformersGenerator:
    """Reference / fallback backend: any HF causal LM (Llama, Qwen2, ...) from a folder or an already built model."""

    backend = "transformers"

    def __init__(self, model: str | Path | Any, dtype: Any = "float32", device: str = "cpu"):
        import torch
        import transformers

        if device == "auto":  # a CUDA torch (the Jetson wheel): the GPU in float16; else the CPU in float32
            device = "cuda" if torch.cuda.is_available() else "cpu"
            dtype = "float16" if device == "cuda" else dtype
        td = _torch_dtype(dtype)
        if isinstance(model, (str, Path)):
            # transformers >= 4.56 calls it `dtype`, older releases `torch_dtype`.
            major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
            key = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
            model = transformers.AutoModelForCausalLM.from_pretrained(str(model), **{key: td})
        self.model = model.to(device=device, dtype=td).eval()
        self.device = torch.device(device)
        self.embed = self.model.get_input_embeddings()
        self.hidden_size = int(self.embed.embedding_dim)
        self.decoder, self.lm_head = self.model.get_decoder(), self.model.get_output_embeddings()
        self.dtype_name = str(td).removeprefix("torch.")
        params = inspect.signature(self.model.forward).parameters  # logits_to_keep: transformers ≥ 4.50 (4.45: num_)
        self._keep = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None)

    def _step(self, past: Any, **inputs: Any) -> tuple[int, Any]:
        """One forward; the LM head only at the last position (a full-vocabulary projection of every prompt position
        costs ≈ prompt × vocab × 4 B and most of the prefill time). Returns (argmax, cache). Where the model cannot
        trim its logits (transformers < 4.45, e.g. TensorRT-LLM 0.12's pin 4.42.4) a prompt goes through the decoder
        and the head separately; one-token steps always take the model's own forward (the fast cache path)."""
        if self._keep is None and "inputs_embeds" in inputs:
            out = self.decoder(**inputs, past_key_values=past, use_cache=True)
            return int(self.lm_head(out.last_hidden_state[:, -1:])[0, -1].argmax()), out.past_key_values
        keep = {self._keep: 1} if self._keep else {}
        out = self.model(**inputs, past_key_values=past, use_cache=True, **keep)
        return int(out.logits[0, -1].argmax()), out.past_key_values

    def inputs_embeds(self, req: GenerationRequest):
        """[1, L, hidden]: token embeddings with each placeholder replaced by its image rows (splice_layout order)."""
        import torch

        e = np.asarray(req.image_embeds)
        ids, rows = splice_layout(req.prompt_ids, e.shape[1])
        x = self.embed(torch.as_tensor(np.where(rows >= 0, 0, ids), device=self.device)[None]).clone()
        mask = rows >= 0
        if mask.any():
            table = torch.as_tensor(e.reshape(-1, e.shape[2]), device=self.device, dtype=x.dtype)
            x[0, torch.as_tensor(mask, device=self.device)] = table[torch.as_tensor(rows[mask], device=self.device)]
        return x

    def generate(self, req: GenerationRequest) -> GenerationResult:
        return self.continue_generate(req, None, 0)[0]

    def generate_batch(self, reqs: list[GenerationRequest]) -> list[GenerationResult]:
        """Greedy decode of several independent requests in one batch: prompts left-padded to the longest (pad rows
        masked out, positions counted from each row's first real token, as `GenerationMixin` does with an
        attention mask), every row stopping on its own stop ids / max_new_tokens. Same tokens as `generate` on
        each request alone, up to floating-point rounding in the batched kernels (tests/unit/test_generator.py
        checks equality on the tiny checkpoints). prefill_s / decode_s are the batch's. One request → `generate`."""
        import torch

        for r in reqs:
            validate_request(r, self.hidden_size)
        if len(reqs) <= 1:
            return [self.generate(r) for r in reqs]
        rows = [self.inputs_embeds(r)[0] for r in reqs]  # [L_i, hidden]
        width = max(len(x) for x in rows)
        pad = self.embed(torch.zeros(1, dtype=torch.long, device=self.device))[0]  # any row: it is masked out
        x = torch.stack([torch.cat([pad.expand(width - len(r), -1), r]) for r in rows])
        mask = torch.zeros(len(rows), width, dtype=torch.long, device=self.device)
        for i, r in enumerate(rows):
            mask[i, width - len(r) :] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        tokens: list[list[int]] = [[] for _ in reqs]
        reasons: list[Literal["stop", "length"] | None] = [None] * len(reqs)
        stops: list[int | None] = [None] * len(reqs)
        with torch.inference_mode():
            t0 = time.perf_counter()
            out = self.model(inputs_embeds=x, attention_mask=mask, position_ids=pos, use_cache=True)
            nxt = out.logits[:, -1].argmax(-1)
            t1 = time.perf_counter()
            while True:
                for i, r in enumerate(reqs):
                    if reasons[i] is not None:
                        continue
                    tok = int(nxt[i])
                    if tok in r.stop_ids:
                        reasons[i], stops[i] = "stop", tok
                    else:
                        tokens[i].append(tok)
                        if len(tokens[i]) >= r.max_new_tokens:
                            reasons[i] = "length"
                if all(reasons):
                    break
                mask = torch.cat([mask, mask.new_ones(len(reqs), 1)], dim=1)
                pos = pos[:, -1:] + 1
                out = self.model(  # finished rows keep decoding their last token; their output is ignored
                    input_ids=nxt[:, None],
                    attention_mask=mask,
                    position_ids=pos,
                    past_key_values=out.past_key_values,
                    use_cache=True,
                )
                nxt = out.logits[:, -1].argmax(-1)
            t2 = time.perf_counter()
        return [
            GenerationResult(tokens[i], reasons[i] or "length", t1 - t0, t2 - t1, r.n_prompt_tokens, stop_id=stops[i])
            for i, r in enumerate(reqs)
        ]

    def continue_generate(
        self, req: GenerationRequest, past: Any, n_cached: int
    ) -> tuple[GenerationResult, Any, list[int]]:
        """Greedy decode of `req` whose first `n_cached` positions are already in `past` (a transformers Cache, or None
        with n_cached = 0). Returns (result, the cache, the generated tokens that went through the model: all but the
        last predicted one). The cache then covers req's positions + those tokens."""
        import torch

        validate_request(req, self.hidden_size)
        tokens: list[int] = []
        stop_reason: Literal["stop", "length"] = "length"
        stop_id: int | None = None
        with torch.inference_mode():
            t0 = time.perf_counter()
            tok, past = self._step(past, inputs_embeds=self.inputs_embeds(req)[:, n_cached:])
            t1 = time.perf_counter()
            while True:
                if tok in req.stop_ids:
                    stop_reason, stop_id = "stop", tok
                    break
                tokens.append(tok)
                if len(tokens) >= req.max_new_tokens:
                    break
                tok, past = self._step(past, input_ids=torch.tensor([[tok]], device=self.device))
            t2 = time.perf_counter()
        fed = tokens if stop_reason == "stop" else tokens[:-1]
        result = GenerationResult(tokens, stop_reason, t1 - t0, t2 - t1, req.n_prompt_tokens, n_cached, stop_id=stop_id)
        return result, past, fed


class TransformersSession:
    """KV-cache reuse across requests that extend each other (a StreamVLN window: each call's prompt = the previous
    prompt + its generated ids + stop id + the next turn). Same contract and tokens as `generator.generate` on the full
    request; only the positions after the longest cached prefix are prefilled. The prefix match compares token ids and
    image row indices (not the image embeddings: callers must not change images already sent). Not thread-safe."""

    backend = "transformers"

    def __init__(self, generator: TransformersGenerator):
        self.generator, self.hidden_size = generator, generator.hidden_size
        self.reset()

    def reset(self) -> None:
        self._past, self._ids, self._rows = None, np.empty(0, np.int64), np.empty(0, np.int64)

    def generate(self, req: GenerationRequest) -> GenerationResult:
        validate_request(req, self.hidden_size)
        ids, rows = splice_layout(req.prompt_ids, np.asarray(req.image_embeds).shape[1])
        n = len(self._ids)
        if not (
            self._past is not None
            and n < len(ids)
            and np.array_equal(ids[:n], self._ids)
            and np.array_equal(rows[:n], self._rows)
        ):
            self.reset()
            n = 0
        try:
            result, self._past, fed = self.generator.continue_generate(req, self._past, n)
        except BaseException:
            self.reset()  # the cache may be half-updated
            raise
        self._ids = np.concatenate([ids, np.asarray(fed, np.int64)])
        self._rows = np.concatenate([rows, np.full(len(fed), -1, np.int64)])
        return result


# --- TensorRT-LLM v0.12 -----------------------------------------------------------------------------------------------


KV_REUSE_SAFE_WITH_PROMPT_TABLE = (0, 13)  # "Supported KV cache reuse for P-Tuning" (TensorRT-LLM v0.13.0 notes)


def check_kv_block_reuse(trtllm_version: str, enable: bool) -> None:
    """Refuse KV-block reuse with a prompt table before TensorRT-LLM 0.13: reuse is keyed on token ids, and the fake
    image ids restart at vocab_size in every request, so a second query would reuse the first query's image KV
    (docs/jetson.md §4.4)."""
    if not enable:
        return
    v = tuple(int(x) for x in trtllm_version.split(".")[:2] if x.isdigit())
    if v < KV_REUSE_SAFE_WITH_PROMPT_TABLE:
        raise ValueError(
            f"kv_cache_enable_block_reuse with image rows is unsafe on TensorRT-LLM {trtllm_version} (fake prompt ids "
            "repeat across requests; p-tuning-safe reuse arrived in 0.13): leave it off"
        )


def stop_words(stop_ids: tuple[int, ...]) -> list[list[list[int]]] | None:
    """Every stop id after the first (which is the engine's end_id) as TensorRT-LLM stop words, batch 1:
    `[[[id], [id], ...]]` (List[List[List[int]]], converted by `to_word_list_format` in ModelRunner.generate, passed
    per request by ModelRunnerCpp). None when there is only the end id."""
    extra = list(dict.fromkeys(stop_ids[1:]))
    return [[[t] for t in extra]] if extra else None


class TrtLlmGenerator:
    """TensorRT-LLM engine dir (trtllm-build output with --max_multimodal_len > 0).

    Runner: the Python `ModelRunner` by default — the one 0.12's multimodal example uses for VILA (its C++ path was
    cogvlm-only); it sizes the KV cache per call (prompt + max_new_tokens). `cpp=True` uses `ModelRunnerCpp`
    (prompt_tasks "0"; KV capped by `max_tokens_in_paged_kv_cache`: without it the executor takes 90 % of free
    memory, which on a Jetson is system RAM). stop_ids[0] is the engine's end_id, the others go in as stop words, so
    the engine stops at any of them. streaming=False (default): one call, one gather; the result has no first-token
    time (first_token_timed False). streaming=True: a gather per token, first-token time measured (benchmarks).
    """

    backend = "tensorrt_llm"

    def __init__(
        self,
        engine_dir: str | Path,
        *,
        cpp: bool = False,
        pad_id: int | None = None,
        max_tokens_in_paged_kv_cache: int | None = None,
        kv_cache_free_gpu_memory_fraction: float | None = None,
        kv_cache_enable_block_reuse: bool = False,
        streaming: bool = False,
        use_mmap: bool = False,
    ):
        import tensorrt_llm
        import torch
        from tensorrt_llm.runtime import ModelRunner

        check_kv_block_reuse(tensorrt_llm.__version__, kv_cache_enable_block_reuse)
        self.engine_dir = Path(engine_dir)
        cfg = json.loads((self.engine_dir / "config.json").read_text())
        pretrained, build = cfg["pretrained_config"], cfg["build_config"]
        self.vocab_size = int(pretrained["vocab_size"])
        self.hidden_size = int(pretrained["hidden_size"])
        self.max_table = int(build.get("max_prompt_embedding_table_size", 0))
        if self.max_table <= 0:
            raise ValueError(f"{engine_dir}: engine built without --max_multimodal_len; it cannot take image rows")
        self.dtype = getattr(torch, pretrained.get("dtype", "float16"))
        self.pad_id, self.cpp, self.streaming = pad_id, cpp, streaming
        self.device = "cuda"  # where the prompt table goes (the engine's GPU)
        if cpp:
            from tensorrt_llm.runtime import ModelRunnerCpp

            kw: dict[str, Any] = {
                k: v
                for k, v in (
                    ("max_tokens_in_paged_kv_cache", max_tokens_in_paged_kv_cache),
                    ("kv_cache_free_gpu_memory_fraction", kv_cache_free_gpu_memory_fraction),
                )
                if v is not None
            }
            if kv_cache_enable_block_reuse:
                kw["kv_cache_enable_block_reuse"] = True
            if use_mmap:  # v0.12.0-jetson only (README4Jetson): maps the engine instead of reading it into RAM
                kw["use_mmap"] = True
            self.runner = ModelRunnerCpp.from_dir(str(self.engine_dir), rank=0, **kw)
        else:
            self.runner = ModelRunner.from_dir(str(self.engine_dir), rank=0)

    def _sync(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()

    def generate(self, req: GenerationRequest) -> GenerationResult:
        import torch

        validate_request(req, self.hidden_size)
        input_ids, table = fake_prompt_ids(req, self.vocab_size)
        if table.shape[1] > self.max_table:
            raise ValueError(f"{table.shape[1]} image rows > engine max_multimodal_len {self.max_table}")
        end_id = req.stop_ids[0]
        t0 = time.perf_counter()
        result = self.runner.generate(
            [torch.from_numpy(input_ids)],
            sampling_config=None,
            prompt_table=torch.from_numpy(np.ascontiguousarray(table)).to(self.device, self.dtype),
            prompt_tasks="0" if self.cpp else None,
            max_new_tokens=req.max_new_tokens,
            end_id=end_id,
            pad_id=end_id if self.pad_id is None else self.pad_id,
            stop_words_list=stop_words(req.stop_ids),
            top_k=1,
            top_p=0.0,
            temperature=1.0,
            num_beams=1,
            streaming=self.streaming,
            output_sequence_lengths=True,
            return_dict=True,
        )
        t1: float | None = None
        out: Any = None
        if self.streaming:
            for out in result:  # first yield = first token (prefill), last = final
                if t1 is None:
                    self._sync()
                    t1 = time.perf_counter()
        else:
            out = result
        self._sync()
        t2 = time.perf_counter()
        if out is None:
            raise RuntimeError("TensorRT-LLM returned no output")
        seq_len = int(out["sequence_lengths"][0][0])
        tokens = out["output_ids"][0][0][len(input_ids) : seq_len].tolist()
        cut = _first_stop(tokens, req.stop_ids)
        # The engine may or may not count end_id in sequence_lengths; either way stopping early means a stop id.
        stopped = cut is not None or len(tokens) < req.max_new_tokens
        # the stop id found in the output, else end_id (an engine that stopped early without returning it)
        stop_id = tokens[cut] if cut is not None else (end_id if stopped else None)
        tokens = tokens[:cut] if cut is not None else tokens
        reason: Literal["stop", "length"] = "stop" if stopped else "length"
        if t1 is None:
            return GenerationResult(
                tokens, reason, t2 - t0, 0.0, req.n_prompt_tokens, first_token_timed=False, stop_id=stop_id
            )
        return GenerationResult(tokens, reason, t1 - t0, t2 - t1, req.n_prompt_tokens, stop_id=stop_id)
