"""`make jetson-check`'s report pieces: stages from pytest-benchmark JSON, the policy placement by measurement, and
controlsd's reading of it."""

from __future__ import annotations

import json

import pytest

from edge.controls.controlsd import policy_backend
from edge.tools.jetson_check import MemorySampler, choose_placement, render_report, stage_rows


def _bench(tmp_path, entries):
    p = tmp_path / "b.json"
    p.write_text(json.dumps({"benchmarks": entries}))
    return p


def test_placement_picks_the_lower_p99_while_prefilling(tmp_path):
    rows = stage_rows(
        _bench(
            tmp_path,
            [
                {
                    "name": "test_bench_policy_step_while_prefilling[onnxruntime]",
                    "group": "g",
                    "stats": {"median": 5e-5, "data": [5e-5] * 10},
                    "extra_info": {"p50_ms": 0.05, "p99_ms": 0.09},
                },
                {
                    "name": "test_bench_policy_step_while_prefilling[tensorrt]",
                    "group": "g",
                    "stats": {"median": 1e-4, "data": [1e-4] * 10},
                    "extra_info": {"p50_ms": 0.08, "p99_ms": 2.5},
                },
                {
                    "name": "test_bench_policy_step[onnxruntime]",
                    "group": "p",
                    "stats": {"median": 6e-5, "data": [6e-5] * 99 + [1e-3]},
                },
            ],
        )
    )
    assert rows[2]["p99_ms"] > rows[2]["p50_ms"] == pytest.approx(0.06)  # from the raw data
    placement = choose_placement(rows)
    assert placement["backend"] == "onnxruntime" and placement["p99_ms"] == {"onnxruntime": 0.09, "tensorrt": 2.5}
    assert choose_placement([])["backend"] == "onnxruntime"
    text = render_report(
        {"tensorrt": None},
        [{"step": "GPU tests", "rc": 1, "seconds": 1, "command": "x", "tail": "t"}],
        [],
        rows,
        placement,
        MemorySampler(),
    )
    assert "Policy placement: **onnxruntime**" in text and "- GPU tests" in text


def test_controlsd_reads_the_placement(tmp_path):
    p = tmp_path / "placement.json"
    assert policy_backend("auto", str(p)) == "onnxruntime"  # nothing measured
    p.write_text(json.dumps({"backend": "tensorrt"}))
    assert policy_backend("auto", str(p)) == "tensorrt"
    assert policy_backend("onnxruntime", str(p)) == "onnxruntime"  # an explicit choice wins
    p.write_text(json.dumps({"backend": "cuda"}))
    assert policy_backend("auto", str(p)) == "onnxruntime"
