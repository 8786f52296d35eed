"""TrtLlmGenerator against the transformers reference (needs tensorrt_llm 0.12 + a CUDA GPU).

Builds a tiny engine from exporters.tiny's NaVILA llm/ (head size 32: the smallest TensorRT-LLM's attention kernels
support) with the plan's own tools (FP16: convert_checkpoint without quantisation, then trtllm-build with
--max_multimodal_len) and compares greedy tokens with TransformersGenerator. Needs TRTLLM_ROOT, a TensorRT-LLM checkout
(examples/) of the installed version: on a GPU machine its absence is a failure, not a skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gpu_required import require

require("tensorrt_llm", "torch", "transformers")
import torch

pytestmark = pytest.mark.tensorrt

from engines.vlm.generator import IMAGE_TOKEN_INDEX, GenerationRequest, TransformersGenerator, TrtLlmGenerator

TPI = 4


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    assert torch.cuda.is_available(), f"torch {torch.__version__} sees no CUDA GPU (NVIDIA's Jetson wheel?)"
    root = os.environ.get("TRTLLM_ROOT", "/opt/TensorRT-LLM")
    assert (Path(root) / "examples" / "llama" / "convert_checkpoint.py").is_file(), (
        f"TRTLLM_ROOT={root}: no TensorRT-LLM checkout with examples/ (git clone -b v0.12.0-jetson)"
    )
    from exporters.tiny import write_tiny_navila

    tmp = tmp_path_factory.mktemp("trtllm")
    llm = write_tiny_navila(tmp / "navila") / "llm"
    ckpt, eng = tmp / "ckpt", tmp / "engine"
    subprocess.run(
        [
            sys.executable,
            f"{root}/examples/llama/convert_checkpoint.py",
            "--model_dir",
            str(llm),
            "--output_dir",
            str(ckpt),
            "--dtype",
            "float16",
        ],
        check=True,
    )
    subprocess.run(
        [
            "trtllm-build",
            "--checkpoint_dir",
            str(ckpt),
            "--output_dir",
            str(eng),
            "--max_batch_size",
            "1",
            "--max_input_len",
            "128",
            "--max_seq_len",
            "160",
            "--max_multimodal_len",
            str(3 * TPI),
            "--gemm_plugin",
            "float16",
            "--gpt_attention_plugin",
            "float16",
            "--remove_input_padding",
            "enable",
        ],
        check=True,
    )
    return llm, eng


def _request(hidden, vocab, stop=(10_000_000,), n=8):
    rng = np.random.default_rng(0)
    text = rng.integers(0, vocab, 10).tolist()
    ids = text[:3] + [IMAGE_TOKEN_INDEX] + text[3:5] + [IMAGE_TOKEN_INDEX] + text[5:7] + [IMAGE_TOKEN_INDEX] + text[7:]
    return GenerationRequest(ids, rng.normal(0, 1, (3, TPI, hidden)).astype(np.float16), stop, n)


@pytest.mark.parametrize("cpp", [False, True])
def test_trtllm_matches_transformers(engine, cpp):
    llm, eng = engine
    trt = TrtLlmGenerator(eng, cpp=cpp, max_tokens_in_paged_kv_cache=160 if cpp else None)
    ref = TransformersGenerator(llm, dtype="float16", device="cuda")
    req = _request(trt.hidden_size, trt.vocab_size)
    a, b = trt.generate(req), ref.generate(req)
    assert a.n_prompt_tokens == b.n_prompt_tokens == len(req.prompt_ids) - 3 + 3 * TPI
    # FP16 engine vs FP16 eager: greedy paths agree at least on the first tokens
    assert a.tokens[:4] == b.tokens[:4]
    assert a.stop_reason == "length" and len(a.tokens) == req.max_new_tokens


def test_trtllm_stop_and_errors(engine):
    _, eng = engine
    trt = TrtLlmGenerator(eng)
    free = trt.generate(_request(trt.hidden_size, trt.vocab_size)).tokens
    res = trt.generate(_request(trt.hidden_size, trt.vocab_size, stop=(free[2],)))
    assert res.tokens == free[: free.index(free[2])] and res.stop_reason == "stop"
    # a second stop id stops the engine too (stop words), not only the output
    res = trt.generate(_request(trt.hidden_size, trt.vocab_size, stop=(10_000_000, free[3])))
    assert res.tokens == free[: free.index(free[3])] and res.stop_reason == "stop"
    req = _request(trt.hidden_size, trt.vocab_size)
    with pytest.raises(ValueError, match="image placeholders"):
        trt.generate(GenerationRequest(req.prompt_ids, req.image_embeds[:1], req.stop_ids, 4))
