"""`make jetson-check`: the first command on a new Orin. Doctor, the tiny engines, the GPU tests, the latency
benchmarks, the policy placement, one markdown report to paste into a bug report.

    python -m edge.tools.jetson_check [--out runs/jetson-check] [--engines build/engines_tiny]

Steps (each a subprocess, its exit code and tail in the report): edge doctor; exporters.tiny + build_engines.py
configs/engines_tiny.yaml; pytest tests/gpu; pytest-benchmark tests/benchmarks/test_bench_jetson.py. Then the policy
is placed on the backend with the lower p99 while the VLM prefills (placement.json beside the policy engine, read by
controlsd when control.backend is "auto"). Peak memory: MemTotal − the lowest MemAvailable seen while it ran. Runs on
any machine; elsewhere than an Orin the report ends with what the machine lacks.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from drivers.jetson import meminfo


class MemorySampler:
    """Lowest MemAvailable over the run (unified memory on a Jetson: CPU and GPU together)."""

    def __init__(self, every_s: float = 0.5):
        self.every_s, self.stop = every_s, threading.Event()
        self.total = meminfo().get("MemTotal", 0)
        self.lowest = meminfo().get("MemAvailable", 0)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(self.every_s):
            self.lowest = min(self.lowest, meminfo().get("MemAvailable", self.lowest))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()

    @property
    def peak_used(self) -> int:
        return self.total - self.lowest


def _run(name: str, argv: list[str], log: list[dict], timeout_s: float = 1800) -> subprocess.CompletedProcess:
    t0 = time.monotonic()
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        partial = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        res = subprocess.CompletedProcess(argv, 124, partial, f"timed out after {timeout_s:.0f} s")
    log.append(
        {
            "step": name,
            "command": " ".join(argv),
            "rc": res.returncode,
            "seconds": round(time.monotonic() - t0, 1),
            "tail": (str(res.stdout) + str(res.stderr))[-3000:],
        }
    )
    print(f"[{name}] exit {res.returncode} in {log[-1]['seconds']} s", flush=True)
    return res


def stage_rows(bench_json: Path) -> list[dict]:
    """One row per benchmark: name, p50 / p99 (ms) from the raw timings (or extra_info), rounds."""
    if not bench_json.is_file():
        return []
    rows = []
    for b in json.loads(bench_json.read_text()).get("benchmarks", []):
        data = np.asarray(b["stats"].get("data") or [b["stats"]["median"]], float)
        extra = b.get("extra_info", {})
        rows.append(
            {
                "name": b["name"].removeprefix("test_bench_"),
                "group": b.get("group") or "",
                "p50_ms": extra.get("p50_ms", float(np.percentile(data, 50) * 1e3)),
                "p99_ms": extra.get("p99_ms", float(np.percentile(data, 99) * 1e3)),
                "rounds": len(data),
                "extra": {k: v for k, v in extra.items() if k not in ("p50_ms", "p99_ms")},
            }
        )
    return rows


def choose_placement(rows: list[dict]) -> dict:
    """The policy backend with the lower p99 while the VLM prefills, among those measured."""
    measured = {
        r["name"].split("[")[-1].rstrip("]"): r["p99_ms"]
        for r in rows
        if r["name"].startswith("policy_step_while_prefilling[")
    }
    if not measured:
        return {"backend": "onnxruntime", "reason": "no measurement: ONNX Runtime by default", "p99_ms": {}}
    best = min(measured, key=lambda k: measured[k])
    return {
        "backend": best,
        "reason": f"lowest p99 while the VLM prefills ({measured[best]:.3f} ms)",
        "p99_ms": measured,
    }


def _result(rc: int) -> str:
    return {0: "ok", 5: "no test ran (all skipped: see the tail)"}.get(rc, f"exit {rc}")


def skipped_lines(steps: list[dict]) -> list[str]:
    """pytest's `SKIPPED [n] file: reason` lines of the test steps: what was not measured here and why."""
    return sorted({ln.strip() for s in steps for ln in s["tail"].splitlines() if ln.startswith("SKIPPED")})


def render_report(machine: dict, steps: list[dict], doctor: list[dict], rows: list[dict], placement: dict, mem) -> str:
    ok = _result
    lines = [
        f"# jetson-check report ({datetime.now(timezone.utc).isoformat(timespec='seconds')})",
        "",
        "## Versions",
        "",
        *(f"- {k}: {v}" for k, v in machine.items()),
        "",
        "## Steps",
        "",
        "| step | result | time |",
        "|---|---|---|",
        *(f"| {s['step']} | {ok(s['rc'])} | {s['seconds']} s |" for s in steps),
        "",
        "## Latency per stage (pytest-benchmark)",
        "",
        "| stage | p50 ms | p99 ms | rounds | notes |",
        "|---|---|---|---|---|",
        *(
            f"| {r['name']} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['rounds']} | "
            f"{', '.join(f'{k} {v}' for k, v in r['extra'].items())} |"
            for r in rows
        ),
        "",
        f"Decode per token = (generate 17 − generate 1) / 16. Policy placement: **{placement['backend']}** — "
        f"{placement['reason']}; measured p99 {placement['p99_ms']}.",
        "",
        *(["Not measured here:", "", *(f"- {x}" for x in skipped_lines(steps)), ""] if skipped_lines(steps) else []),
        f"Peak memory during the check: {mem.peak_used / 2**30:.2f} GiB of {mem.total / 2**30:.1f} GiB "
        "(MemTotal − lowest MemAvailable; CPU and GPU share it on a Jetson).",
        "",
        "## Doctor",
        "",
        *(f"- {d['status'].upper()} {d['area']} {d['name']}: {d['detail']}" for d in doctor),
    ]
    lacks = [d["name"] for d in doctor if d["status"] == "fail"] + [s["step"] for s in steps if s["rc"] != 0]
    lines += ["", "## What this machine lacks", "", *(f"- {x}" for x in lacks or ["nothing: ready for the first walk"])]
    lines += ["", "## Step output (tails)", ""]
    for s in steps:
        lines += [f"### {s['step']}: `{s['command']}`", "", "```", s["tail"].strip()[-1500:], "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/jetson-check")
    ap.add_argument("--engines", default="build/engines_tiny")
    ap.add_argument("--config", help="EdgeConfig for the doctor (default: the robot's, configs/go2.yaml)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    steps: list[dict] = []
    env_engines = {"EDGE_JETSON_ENGINES": a.engines}
    os.environ.update(env_engines)
    with MemorySampler() as mem:
        doc = _run(
            "edge doctor",
            [
                py,
                "-m",
                "edge.tools.cli",
                "--config",
                a.config or "configs/go2.yaml",
                "doctor",
                "--json",
                "--engines",
                str(Path(a.engines).resolve()),
            ],
            steps,
        )
        _run("tiny checkpoints", [py, "-m", "exporters.tiny", "build/tiny"], steps)
        _run("tiny engines", [py, "build_engines.py", "--config", "configs/engines_tiny.yaml"], steps)
        _run("GPU tests", [py, "-m", "pytest", "-q", "-rs", "tests/gpu", "-p", "no:cacheprovider"], steps)
        bench = out / "benchmarks.json"
        _run(
            "latency benchmarks",
            [
                py,
                "-m",
                "pytest",
                "-q",
                "-rs",
                "tests/benchmarks/test_bench_jetson.py",
                "--benchmark-enable",
                "--benchmark-only",
                f"--benchmark-json={bench}",
                "--benchmark-save-data",
                "-p",
                "no:cacheprovider",
            ],
            steps,
        )
    try:
        doctor = json.loads(doc.stdout)
    except ValueError:
        doctor = [{"status": "fail", "area": "doctor", "name": "edge doctor", "detail": doc.stderr[-500:]}]
    rows = stage_rows(bench)
    placement = choose_placement(rows)
    ppath = Path(a.engines) / "policy" / "placement.json"
    ppath.parent.mkdir(parents=True, exist_ok=True)
    ppath.write_text(json.dumps(placement, indent=1))
    from engines.manifest import MachineInfo

    machine = MachineInfo.detect().model_dump()
    report = out / "report.md"
    report.write_text(render_report(machine, steps, doctor, rows, placement, mem))
    print(f"report: {report}\npolicy placement: {placement['backend']} ({placement['reason']}) → {ppath}")
    return 0 if all(s["rc"] == 0 for s in steps) else 1


if __name__ == "__main__":
    raise SystemExit(main())
