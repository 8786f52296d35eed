"""Recorder: every message of the recorded topics, queued (never conflated), as JSON lines for reports and replay."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import zmq

from edge.common.config import resolve_path
from edge.system.process_main import Process, process_main

log = logging.getLogger("recordd")


def run(proc: Process) -> int:
    cfg, stop, args = proc.cfg, proc.stop, proc.args
    subs = list(proc.ports.sub.values())  # every topic of its table row, queued (conflate=False below)
    poller = zmq.Poller()
    for s in subs:
        poller.register(s.sock, zmq.POLLIN)
    out = (
        Path(args.out)
        if args.out
        else resolve_path(cfg.recorder.out_dir) / f"bus-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.jsonl"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    limit, written, count, full = cfg.recorder.max_mb * 1e6, 0, 0, False
    with out.open("w") as f:
        while not stop.is_set():
            poller.poll(100)
            for s in subs:
                for r in s.drain():
                    if full:
                        continue  # keep draining so the queues stay short
                    line = (
                        json.dumps(
                            {
                                "topic": s.topic.name,
                                "seq": r.seq,
                                "mono_ns": r.mono_ns,
                                "msg": r.msg.model_dump(mode="json"),
                            }
                        )
                        + "\n"
                    )
                    f.write(line)
                    written += len(line)
                    count += 1
                    if written > limit:
                        full = True
                        log.warning("%s reached %.0f MB: recording stopped", out, cfg.recorder.max_mb)
        f.flush()
    log.info(
        "recorded %d messages to %s (%s)",
        count,
        out,
        ", ".join(f"{s.topic.name} {s.received}/{s.invalid} bad" for s in subs),
    )
    return 0


def main(argv=None) -> int:
    return process_main(
        "recordd",
        run,
        argv,
        conflate=False,
        add_args=lambda ap: ap.add_argument("--out", help="JSON-lines file (default: recorder.out_dir)"),
    )


if __name__ == "__main__":
    raise SystemExit(main())
