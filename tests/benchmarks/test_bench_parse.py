"""Parser cost per VLM answer (run: make bench)."""

from __future__ import annotations

from edge.navigation.parse import Forward, Parsed, parse_navila, parse_streamvln

NAVILA_ANSWER = "The next action is move forward 75 cm."


def test_bench_parse_navila_habitat(benchmark):
    res = benchmark(parse_navila, NAVILA_ANSWER)
    assert isinstance(res, Parsed) and res.actions == (Forward(0.75, 3, NAVILA_ANSWER),)


def test_bench_parse_navila_isaac(benchmark):
    res = benchmark(parse_navila, NAVILA_ANSWER, style="isaac")
    assert isinstance(res, Parsed) and res.actions[0].distance_m == 0.75


def test_bench_parse_streamvln(benchmark):
    res = benchmark(parse_streamvln, "↑↑←→")
    assert isinstance(res, Parsed) and len(res.actions) == 4
