"""VLM step latency on the tiny NaVILA (run: make bench): vision / prefill / decode breakdown of a typical step
(7 history frames cached + 1 new), and the speedup from the per-frame vision cache (all 8 cached vs none cached;
features are cached by frame content).
Tiny random weights on CPU: this measures the pipeline's overheads and ratios, not the Orin's 8 B latency."""

from __future__ import annotations

import itertools
import statistics
import time

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from engines.vlm.models import NavilaVlm, VlmFrame

ROUNDS = 10


@pytest.fixture(scope="module")
def vlm(tiny):
    model = NavilaVlm(tiny["navila"], max_new_tokens=8)
    model.reset("walk forward and turn left at the door, then stop.")
    return model


@pytest.fixture(scope="module")
def rgb():
    return np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)


def frame(rgb: np.ndarray, i: int) -> VlmFrame:
    """Frame i: the base image with its id written into the first pixels (features are cached by content)."""
    a = rgb.copy()
    a.flat[:8] = np.frombuffer(i.to_bytes(8, "little"), np.uint8)
    return VlmFrame(i, a)


def _median(answers, field):
    return statistics.median(getattr(a.timings, field) for a in answers)


def test_bench_vlm_step_breakdown(benchmark, vlm, rgb):
    ids = itertools.count(1001)
    answers = []

    def step_frames():  # 7 cached history frames + 1 new current frame
        current = next(ids)
        return ([frame(rgb, i) for i in range(current - 7, current)] + [frame(rgb, current)],), {}

    def step(frames):
        answers.append(vlm.infer(frames))

    vlm.infer([frame(rgb, i) for i in range(993, 1001)])  # warm the cache for the first step
    benchmark.pedantic(step, setup=step_frames, rounds=ROUNDS, iterations=1)
    assert all(a.vision_calls == 1 and a.cache_hits == 7 for a in answers)
    ms = {f: _median(answers, f) * 1e3 for f in ("vision_s", "prefill_s", "decode_s", "total_s")}
    ms["tokens"] = statistics.median(a.new_tokens for a in answers)
    benchmark.extra_info.update({f"{k}_ms" if k != "tokens" else "new_tokens": round(v, 3) for k, v in ms.items()})
    print(
        f"\nNaVILA tiny step (1 new frame, 7 cached, {ms['tokens']:.0f} new tokens): vision {ms['vision_s']:.1f} ms"
        f" | prefill {ms['prefill_s']:.1f} ms | decode {ms['decode_s']:.1f} ms | total {ms['total_s']:.1f} ms"
    )


def test_bench_vlm_vision_cache_speedup(benchmark, vlm, rgb):
    ids = itertools.count(10_000)
    cold = []

    def new_frames():  # 8 frames never seen: 8 vision calls
        return ([frame(rgb, next(ids)) for _ in range(8)],), {}

    benchmark.pedantic(lambda f: cold.append(vlm.infer(f)), setup=new_frames, rounds=ROUNDS, iterations=1)
    warm_frames = [frame(rgb, i) for i in range(8)]
    vlm.infer(warm_frames)
    warm = []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        warm.append(vlm.infer(warm_frames))
        assert time.perf_counter() - t >= warm[-1].timings.total_s * 0.99
    assert all(a.vision_calls == 8 for a in cold) and all(a.cache_hits == 8 for a in warm)
    cold_ms, warm_ms = _median(cold, "total_s") * 1e3, _median(warm, "total_s") * 1e3
    vision_cold, vision_warm = _median(cold, "vision_s") * 1e3, _median(warm, "vision_s") * 1e3
    benchmark.extra_info.update(
        none_cached_ms=round(cold_ms, 3),
        all_cached_ms=round(warm_ms, 3),
        speedup=round(cold_ms / warm_ms, 2),
        vision_none_cached_ms=round(vision_cold, 3),
        vision_all_cached_ms=round(vision_warm, 3),
    )
    print(
        f"\nNaVILA tiny query: none cached {cold_ms:.1f} ms (vision {vision_cold:.1f}) vs all 8 cached "
        f"{warm_ms:.1f} ms (vision {vision_warm:.2f}) → {cold_ms / warm_ms:.1f}× faster"
    )
    assert cold_ms > warm_ms
