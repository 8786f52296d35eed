"""Load benchmark of the remote VLM server: N simulated robots against one server running the tiny NaVILA.

The server is the real one (`python -m edge.vlm.remote serve`, a subprocess, so its memory is its own); each robot is
a thread with its own CURVE key and VlmClient, asking in a closed loop (the next query as soon as the answer is in, as
a robot in stop-and-go does) with NaVILA's 8 frames of 384×384 raw RGB (7 sampled history + the current frame, a new
camera frame per query) for a fixed time. Reported per N: answer latency p50 / p99 per robot (robot-side round trip),
throughput (answers/s, all robots), mean batch size, server memory (VmRSS at the end, VmHWM peak), and fairness
(Jain's index over the robots' answer counts: 1 = equal shares, 1/N = one robot served).

    python -m tests.benchmarks.remote_load --robots 1 2 4 8 --seconds 20          # the docs/results.md table
    python -m tests.benchmarks.remote_load --robots 8 --batch-max 1               # micro-batching off

The server runs torch with one thread (OMP_NUM_THREADS=1, `--threads`), leaving the other core to the robots.

Tiny random weights on CPU: the numbers show the server's scheduling (batching, fairness, bounded memory), not an 8 B
model's latency on a GPU.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.vlm.remote import VlmClient, write_keypair
from engines.vlm.models import VlmFrame, navila_sample

SIDE = 384


@dataclass(frozen=True)
class LoadResult:
    robots: int
    batch_max: int
    seconds: float
    answers: int
    p50_ms: tuple[float, ...]  # per robot
    p99_ms: tuple[float, ...]
    throughput: float  # answers/s, all robots
    mean_batch: float
    rss_mb: float
    hwm_mb: float
    jain: float
    errors: int
    queue_ms: float  # mean time a request waited on the server for the model (queue + batch fill)
    model_ms: float  # mean model call (vision + prefill + decode) per answer; shared by a batch


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def jain(xs: list[float]) -> float:
    """Jain's fairness index (Σx)² / (n Σx²)."""
    s2 = sum(x * x for x in xs)
    return (sum(xs) ** 2) / (len(xs) * s2) if s2 else 0.0


def start_server(
    work: Path, checkpoint: str, robots: int, batch_max: int, threads: int = 1
) -> tuple[subprocess.Popen, str]:
    write_keypair(work / "server", "server")
    (work / "clients").mkdir()
    for r in range(robots):
        pub, _ = write_keypair(work / "robots", f"robot{r}")
        os.link(pub, work / "clients" / pub.name)
    cfg = work / "server.yaml"
    cfg.write_text(
        f"vlm:\n  model: navila\n  checkpoint: {checkpoint}\nremote:\n  batch_max: {batch_max}\n"
        f"  max_sessions: {max(robots, 1)}\n"
    )
    cmd = [sys.executable, "-m", "edge.vlm.remote", "serve", "--bind", "tcp://127.0.0.1:*", "--keys",
           str(work / "server"), "--clients", str(work / "clients"), "--config", str(cfg)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}  # torch's intra-op threads (one core left to the robots)
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 300
    assert p.stderr is not None
    while time.monotonic() < deadline:
        line = p.stderr.readline()
        if not line:
            raise RuntimeError("server exited before it was ready")
        if "serving" in line and " on tcp://" in line:
            threading.Thread(target=p.stderr.read, daemon=True).start()  # keep draining its log
            return p, line.rsplit(" on ", 1)[1].strip()
    p.kill()
    raise TimeoutError("server not ready within 300 s")


def robot_loop(endpoint, work, r, start, out, stop_at, min_answers):
    rng = np.random.default_rng(r)
    base = rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    history: list[VlmFrame] = []
    c = VlmClient(endpoint, work / "robots" / f"robot{r}.key_secret", work / "server/server.key", timeout_s=120.0)
    lat: list[float] = []
    batches: list[int] = []
    ends: list[float] = []
    server: list[tuple[float, float]] = []
    errors = 0
    fid = 0
    try:
        start.wait(60)
        while time.monotonic() < stop_at[0] or len(lat) < min_answers:
            fid += 1
            rgb = base.copy()
            rgb.flat[:8] = np.frombuffer(fid.to_bytes(8, "little"), np.uint8)  # a new camera frame
            current = VlmFrame(fid, rgb)
            frames = navila_sample(history, current)
            history.append(current)
            t0 = time.monotonic()
            try:
                a = c.query(f"robot {r}: walk to the kitchen and stop at the table.", frames)
            except Exception:
                errors += 1
                continue
            if t0 >= stop_at[1] and c.last is not None:  # warm-up over (first queries load caches)
                lat.append(time.monotonic() - t0)
                batches.append(c.last.batch_size)
                ends.append(time.monotonic())
                server.append((c.last.queue_s, a.timings.total_s))
    finally:
        c.close()
        out[r] = (lat, batches, errors, ends, server)


def run_load(
    checkpoint: str,
    robots: int,
    seconds: float,
    batch_max: int = 8,
    warmup_s: float = 3.0,
    min_answers: int = 0,
    threads: int = 1,
) -> LoadResult:
    """Run N robots for warmup_s + seconds (each robot also until it has min_answers measured answers)."""
    with tempfile.TemporaryDirectory(prefix="vlm-load-") as tmp:
        work = Path(tmp)
        server, endpoint = start_server(work, checkpoint, robots, batch_max, threads)
        try:
            out: dict[int, tuple] = {}
            start = threading.Barrier(robots + 1)
            stop_at = [float("inf"), float("inf")]
            threads = [
                threading.Thread(target=robot_loop, args=(endpoint, work, r, start, out, stop_at, min_answers))
                for r in range(robots)
            ]
            for t in threads:
                t.start()
            t0 = time.monotonic()
            stop_at[:] = [t0 + warmup_s + seconds, t0 + warmup_s]
            start.wait(60)
            for t in threads:
                t.join(seconds + warmup_s + 600)
            rss, hwm = _status_mb(server.pid, "VmRSS"), _status_mb(server.pid, "VmHWM")
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
    lats = [out[r][0] for r in range(robots)]
    last_end = max((e for r in range(robots) for e in out[r][3]), default=stop_at[1])
    window = max(seconds, last_end - stop_at[1])
    counts = [len(x) for x in lats]
    all_batches = [b for r in range(robots) for b in out[r][1]]
    server_times = [t for r in range(robots) for t in out[r][4]]
    return LoadResult(
        robots=robots,
        batch_max=batch_max,
        seconds=window,
        answers=sum(counts),
        p50_ms=tuple(float(np.percentile(x, 50)) * 1e3 if x else float("nan") for x in lats),
        p99_ms=tuple(float(np.percentile(x, 99)) * 1e3 if x else float("nan") for x in lats),
        throughput=sum(counts) / window,
        mean_batch=statistics.fmean(all_batches) if all_batches else 0.0,
        rss_mb=rss,
        hwm_mb=hwm,
        jain=jain([float(c) for c in counts]),
        errors=sum(out[r][2] for r in range(robots)),
        queue_ms=statistics.fmean(q for q, _ in server_times) * 1e3 if server_times else float("nan"),
        model_ms=statistics.fmean(m for _, m in server_times) * 1e3 if server_times else float("nan"),
    )


def row(r: LoadResult) -> str:
    p50 = f"{min(r.p50_ms):.0f}–{max(r.p50_ms):.0f}" if r.robots > 1 else f"{r.p50_ms[0]:.0f}"
    p99 = f"{min(r.p99_ms):.0f}–{max(r.p99_ms):.0f}" if r.robots > 1 else f"{r.p99_ms[0]:.0f}"
    return (
        f"| {r.robots} | {r.batch_max} | {p50} | {p99} | {r.throughput:.2f} | {r.mean_batch:.2f} | "
        f"{r.queue_ms:.0f} / {r.model_ms:.0f} | {r.rss_mb:.0f} / {r.hwm_mb:.0f} | {r.jain:.3f} | "
        f"{r.answers} | {r.errors} |"
    )


HEADER = (
    "| robots | batch_max | latency p50 per robot, ms | p99 per robot, ms | answers/s | mean batch | "
    "server queue / model per answer, ms | server RSS / peak, MB | fairness (Jain) | answers | errors |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.benchmarks.remote_load", description=__doc__.splitlines()[0])
    ap.add_argument("--robots", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--seconds", type=float, default=20.0, help="measured time per N (after a warm-up)")
    ap.add_argument("--batch-max", type=int, nargs="+", default=[8], help="server remote.batch_max values to run")
    ap.add_argument("--checkpoint", help="tiny NaVILA folder (default: written to a temporary folder)")
    ap.add_argument("--threads", type=int, default=1, help="the server's torch threads (OMP_NUM_THREADS)")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server subprocess on the way out
    with tempfile.TemporaryDirectory(prefix="tiny-") as tmp:
        checkpoint = args.checkpoint
        if checkpoint is None:
            from exporters.tiny import write_tiny_checkpoints

            checkpoint = str(write_tiny_checkpoints(Path(tmp))["navila"])
        print(f"load: {os.uname().nodename}, {os.cpu_count()} CPUs, load average {os.getloadavg()}", flush=True)
        print(HEADER, flush=True)
        for b in args.batch_max:
            for n in args.robots:
                print(row(run_load(checkpoint, n, args.seconds, b, threads=args.threads)), flush=True)
        print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
