"""The remote VLM load benchmark (tests/benchmarks/remote_load.py), run small: one and two robots on the tiny NaVILA
for a few seconds each, so `make test` keeps the benchmark working. The docs/results.md table comes from
`python -m tests.benchmarks.remote_load --robots 1 2 4 8 --seconds 20 --batch-max 8 1`."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.benchmarks.remote_load import HEADER, jain, row, run_load

pytestmark = pytest.mark.integration


def test_jain_index():
    assert jain([5, 5, 5, 5]) == 1.0 and jain([8, 0, 0, 0]) == 0.25 and math.isclose(jain([1, 3]), 0.8)


def test_bench_remote_load_small(tiny, capsys):
    results = [run_load(str(tiny["navila"]), n, seconds=2.0, warmup_s=1.0, min_answers=2) for n in (1, 2)]
    for r in results:
        assert r.errors == 0 and r.answers >= 2 * r.robots and r.rss_mb > 0 and r.hwm_mb >= r.rss_mb
        assert 1 <= r.mean_batch <= r.robots
    with capsys.disabled():
        print("\n" + HEADER + "\n" + "\n".join(row(r) for r in results))
