"""Typed fakes of the library interfaces that cannot run here (no GPU): TensorRT-LLM 0.12's ModelRunner /
ModelRunnerCpp and cuda-python's runtime module. Signatures copied from the real sources, so a call the real library
would reject fails here too:

- `tensorrt_llm/runtime/model_runner.py` (NVIDIA/TensorRT-LLM v0.12.0, commit bfc50a7): `ModelRunner.from_dir`
  (positional-or-keyword, no max_* / KV options) and `generate(batch_input_ids, sampling_config, prompt_table,
  prompt_tasks, lora_uids, streaming, stopping_criteria, logits_processor, medusa_choices, **kwargs)`; kwargs update
  `SamplingConfig` (the real one drops unknown names silently: this fake raises, to catch typos).
- `tensorrt_llm/runtime/model_runner_cpp.py` (branch v0.12.0-jetson, commit 20a7cec): keyword-only `from_dir(...,
  use_mmap=False)` and `generate(..., stop_words_list=None, prompt_table=None, prompt_tasks=None, ...)`.
- outputs: `output_ids` int32 [batch, beams, prompt + max_new_tokens] padded with end_id, `sequence_lengths`
  [batch, beams]; stop words = List[List[List[int]]] per batch entry.
- cuda-python (docs/jetson.md §3): 12.6.x raises RuntimeError without a driver; 12.9 / 13.x return error codes.
"""

from __future__ import annotations

import enum
import sys
import types
from typing import Any, Iterator, List, Optional, Union

import torch

# SamplingConfig fields of 0.12 (runtime/generation.py) that ModelRunner.generate accepts as kwargs.
SAMPLING_FIELDS = {
    "end_id",
    "pad_id",
    "max_new_tokens",
    "num_beams",
    "max_attention_window_size",
    "sink_token_length",
    "output_sequence_lengths",
    "return_dict",
    "stop_words_list",
    "bad_words_list",
    "temperature",
    "top_k",
    "top_p",
    "top_p_decay",
    "top_p_min",
    "top_p_reset_ids",
    "random_seed",
    "length_penalty",
    "early_stopping",
    "repetition_penalty",
    "min_length",
    "presence_penalty",
    "frequency_penalty",
    "use_beam_hyps",
    "output_cum_log_probs",
    "output_log_probs",
}


class _Engine:
    """What the fake 'engine' produces: a fixed token script, one token per decode step."""

    script: list[int] = []
    calls: list[dict] = []

    @classmethod
    def run(cls, input_ids: torch.Tensor, max_new_tokens: int, end_id: int, stop_words: list | None) -> list[int]:
        stops = {w[0] for w in (stop_words or [[]])[0] if w} if stop_words else set()
        out: list[int] = []
        for t in cls.script[:max_new_tokens]:
            out.append(t)
            if t == end_id or t in stops:
                break
        return out


def _outputs(prompt: torch.Tensor, generated: list[int], end_id: int, width: int) -> dict:
    row = prompt.tolist() + generated
    seq_len = len(row)
    row = row + [end_id] * (width - len(row))
    return {
        "output_ids": torch.tensor([[row]], dtype=torch.int32),
        "sequence_lengths": torch.tensor([[seq_len]], dtype=torch.int32),
    }


class ModelRunner:
    loaded: list[dict] = []

    def __init__(self, engine_dir: str):
        self.engine_dir = engine_dir

    @classmethod
    def from_dir(
        cls,
        engine_dir: str,
        lora_dir: Optional[List[str]] = None,
        rank: int = 0,
        debug_mode: bool = False,
        lora_ckpt_source: str = "hf",
        medusa_choices: Optional[List[List[int]]] = None,
        stream: Any = None,
        gpu_weights_percent: float = 1,
        enable_context_fmha_fp32_acc: Optional[bool] = None,
    ) -> "ModelRunner":
        cls.loaded.append({"engine_dir": engine_dir, "rank": rank})
        return cls(engine_dir)

    def generate(
        self,
        batch_input_ids: List[torch.Tensor],
        sampling_config: Any = None,
        prompt_table: Optional[Union[str, torch.Tensor]] = None,
        prompt_tasks: Optional[str] = None,
        lora_uids: Optional[list] = None,
        streaming: bool = False,
        stopping_criteria: Any = None,
        logits_processor: Any = None,
        medusa_choices: Optional[List[List[int]]] = None,
        **kwargs: Any,
    ) -> Union[dict, Iterator[dict]]:
        unknown = set(kwargs) - SAMPLING_FIELDS
        if unknown:
            raise TypeError(f"not SamplingConfig fields: {sorted(unknown)}")
        assert prompt_table is None or prompt_table.dim() == 3, "0.12 _prepare_ptuning needs [tasks, rows, hidden]"
        return self._generate(batch_input_ids, prompt_table, prompt_tasks, streaming, kwargs)

    def _generate(self, batch_input_ids, prompt_table, prompt_tasks, streaming, kw):
        (prompt,) = batch_input_ids
        _Engine.calls.append({"streaming": streaming, "prompt_tasks": prompt_tasks, **kw})
        gen = _Engine.run(prompt, kw["max_new_tokens"], kw["end_id"], kw.get("stop_words_list"))
        width = len(prompt) + kw["max_new_tokens"]
        if not streaming:
            return _outputs(prompt, gen, kw["end_id"], width)
        return (_outputs(prompt, gen[: i + 1], kw["end_id"], width) for i in range(len(gen)))


class ModelRunnerCpp(ModelRunner):
    @classmethod
    def from_dir(  # type: ignore[override]
        cls,
        engine_dir: str,
        *,
        lora_dir: Optional[List[str]] = None,
        rank: int = 0,
        max_batch_size: Optional[int] = None,
        max_input_len: Optional[int] = None,
        max_output_len: Optional[int] = None,
        max_beam_width: Optional[int] = None,
        max_attention_window_size: Optional[int] = None,
        sink_token_length: Optional[int] = None,
        kv_cache_free_gpu_memory_fraction: Optional[float] = None,
        medusa_choices: Optional[List[List[int]]] = None,
        debug_mode: bool = False,
        lora_ckpt_source: str = "hf",
        gpu_weights_percent: float = 1,
        max_tokens_in_paged_kv_cache: Optional[int] = None,
        kv_cache_enable_block_reuse: bool = False,
        enable_chunked_context: bool = False,
        is_enc_dec: bool = False,
        multi_block_mode: Optional[bool] = None,
        enable_context_fmha_fp32_acc: Optional[bool] = None,
        use_mmap: bool = False,
    ) -> "ModelRunnerCpp":
        cls.loaded.append(
            {
                "engine_dir": engine_dir,
                "rank": rank,
                "max_tokens_in_paged_kv_cache": max_tokens_in_paged_kv_cache,
                "kv_cache_enable_block_reuse": kv_cache_enable_block_reuse,
                "use_mmap": use_mmap,
            }
        )
        return cls(engine_dir)

    def generate(  # type: ignore[override]
        self,
        batch_input_ids: List[torch.Tensor],
        *,
        encoder_input_ids: Any = None,
        sampling_config: Any = None,
        lora_uids: Optional[list] = None,
        streaming: bool = False,
        stopping_criteria: Any = None,
        logits_processor: Any = None,
        max_new_tokens: int = 1,
        end_id: int | None = None,
        pad_id: int | None = None,
        bad_words_list: Optional[list] = None,
        stop_words_list: Optional[list] = None,
        return_dict: bool = False,
        output_sequence_lengths: bool = False,
        output_log_probs: bool = False,
        output_cum_log_probs: bool = False,
        prompt_table: Any = None,
        prompt_tasks: Optional[str] = None,
        return_all_generated_tokens: bool = False,
        **kwargs: Any,
    ) -> Union[dict, Iterator[dict]]:
        kw = dict(
            max_new_tokens=max_new_tokens,
            end_id=end_id,
            pad_id=pad_id,
            stop_words_list=stop_words_list,
            output_sequence_lengths=output_sequence_lengths,
            return_dict=return_dict,
            **kwargs,
        )
        return self._generate(batch_input_ids, prompt_table, prompt_tasks, streaming, kw)


def install(monkeypatch, version: str = "0.12.0", script: list[int] | None = None, runtime_error: str | None = None):
    """Put a fake `tensorrt_llm` (and `tensorrt_llm.runtime`) in sys.modules. runtime_error: importing
    tensorrt_llm.runtime raises ModuleNotFoundError with that text (what 0.12 does under cuda-python 13:
    "No module named 'cuda.cudart'")."""
    pkg = types.ModuleType("tensorrt_llm")
    pkg.__version__ = version  # type: ignore[attr-defined]
    pkg.__path__ = []  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tensorrt_llm", pkg)
    if runtime_error is not None:
        monkeypatch.setitem(sys.modules, "tensorrt_llm.runtime", None)  # `import` raises ModuleNotFoundError
        return None
    rt = types.ModuleType("tensorrt_llm.runtime")
    rt.ModelRunner, rt.ModelRunnerCpp = ModelRunner, ModelRunnerCpp  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tensorrt_llm.runtime", rt)
    monkeypatch.setattr(_Engine, "script", list(script or []))
    monkeypatch.setattr(_Engine, "calls", [])
    monkeypatch.setattr(ModelRunner, "loaded", [])
    return _Engine


# --------------------------------------------------------------------------------------------------- cuda-python
class cudaError_t(enum.IntEnum):  # noqa: N801 - the real name
    cudaSuccess = 0
    cudaErrorInsufficientDriver = 35
    cudaErrorNoDevice = 100


class _Props:
    def __init__(self, name: bytes, major: int, minor: int):
        self.name, self.major, self.minor = name, major, minor


class FakeCudart:
    """cuda.bindings.runtime as each release line behaves. kind: "no_driver_raises" (12.6.x), "no_driver_codes"
    (12.9 / 13.x), "orin" (driver 12.6, one SM 8.7 GPU)."""

    cudaError_t = cudaError_t

    def __init__(self, kind: str):
        self.kind = kind

    def _no_driver(self, what: str):
        if self.kind == "no_driver_raises":
            raise RuntimeError("Failed to dlopen libcuda.so.1" if what == "driver" else 'Function "cuInit" not found')

    def cudaRuntimeGetVersion(self):
        return cudaError_t.cudaSuccess, 12090  # the bindings' own runtime: never the machine's CUDA

    def cudaDriverGetVersion(self):
        self._no_driver("driver")
        return cudaError_t.cudaSuccess, (12060 if self.kind == "orin" else 0)

    def cudaGetDeviceCount(self):
        self._no_driver("count")
        if self.kind == "orin":
            return cudaError_t.cudaSuccess, 1
        return cudaError_t.cudaErrorInsufficientDriver, None

    def cudaGetDeviceProperties(self, device: int):
        self._no_driver("props")
        if self.kind == "orin":
            return cudaError_t.cudaSuccess, _Props(b"Orin\x00\x00", 8, 7)
        return cudaError_t.cudaErrorInsufficientDriver, None
