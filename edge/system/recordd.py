"""Recorder: every message of the recorded topics, queued (never conflated), into an MCAP file that Foxglove opens as
is and that the report and `edge replay` read (format: edge/msg/recording.py).

Crash-safe: records are written one by one (no chunks) and the file is flushed after every batch taken off the bus,
so SIGKILL of the recorder or of the whole stack loses nothing it had received; os.fsync every recorder.fsync_s bounds
what a power cut can lose. A clean stop (SIGINT / SIGTERM) adds MCAP's summary and footer.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import zmq

from edge.common.config import resolve_path
from edge.msg.recording import RecordWriter, image_message, unix_minus_monotonic_ns
from edge.system.process_main import Process, process_main

log = logging.getLogger("recordd")


def run(proc: Process) -> int:
    cfg, stop, args = proc.cfg, proc.stop, proc.args
    rcfg = cfg.recorder
    subs = list(proc.ports.sub.values())  # every topic of its table row, queued (conflate=False below)
    poller = zmq.Poller()
    for s in subs:
        poller.register(s.sock, zmq.POLLIN)
    out = (
        Path(args.out)
        if args.out
        else resolve_path(rcfg.out_dir) / f"bus-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.mcap"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    limit, count, full = rcfg.max_mb * 1e6, 0, False
    next_image_ns = {s.topic.name: 0 for s in subs if s.topic.payload and s.topic.record_payload_hz > 0}
    with out.open("wb") as f:
        rec = RecordWriter(f, [s.topic for s in subs], unix_minus_monotonic_ns(), cfg.model_dump_json())
        f.flush()
        log.info("recording %d topics to %s", len(subs), out)
        proc.health.ready(f"recording to {out}")
        synced = time.monotonic()
        while not stop.is_set():
            poller.poll(100)
            for s in subs:
                for r in s.drain():
                    if full:
                        continue  # keep draining so the queues stay short
                    now_ns = time.monotonic_ns()
                    rec.add(s.topic.name, r.seq, r.mono_ns, now_ns, r.msg)
                    count += 1
                    name = s.topic.name
                    if r.payload is not None and name in next_image_ns and now_ns >= next_image_ns[name]:
                        next_image_ns[name] = now_ns + int(1e9 / s.topic.record_payload_hz)
                        image = image_message(r.msg, r.payload, r.mono_ns + rec.offset_ns, rcfg.jpeg_quality)
                        rec.add_image(name, r.mono_ns, now_ns, image)
            f.flush()  # each batch reaches the kernel before the next is taken: a kill loses nothing received
            if not full and f.tell() > limit:
                full = True
                proc.health.degraded(f"{out} reached {rcfg.max_mb:.0f} MB: recording stopped")
            if time.monotonic() - synced >= rcfg.fsync_s:
                os.fsync(f.fileno())
                synced = time.monotonic()
        rec.finish()
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
        add_args=lambda ap: ap.add_argument("--out", help="MCAP file (default: recorder.out_dir/bus-TIME-PID.mcap)"),
    )


if __name__ == "__main__":
    raise SystemExit(main())
