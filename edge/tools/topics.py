"""`edge echo TOPIC` and `edge hz TOPIC`: look at one topic of the running stack, from the bus.

Streams (PUB/SUB) can be watched by anyone. Operator event topics (PUSH/PULL: actionText, estop, operatorCommand,
instruction) go to their one consumer only; watching them would steal messages, so both commands refuse and say what
to watch instead. Camera frames print their header and payload size, never the pixels.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

from edge.msg.bus import Bus, Sub
from edge.msg.messages import TOPICS, Topic
from edge.system.process_config import PROCS
from edge.tools.errors import EXIT_NOT_DONE, EXIT_OK, EXIT_USAGE, OperatorError

WATCH_INSTEAD = {
    "actionText": "actionResult, navigatorStatus",
    "estop": "controlState",
    "operatorCommand": "controlState",
    "instruction": "vlmOutput, processState --process vlmd",
}


def _topic(name: str) -> Topic:
    if name not in TOPICS:
        close = [t for t in TOPICS if t.lower() == name.lower()]
        hint = f" (did you mean {close[0]}?)" if close else f"; topics: {', '.join(sorted(TOPICS))}"
        raise OperatorError(f"unknown topic {name!r}{hint}", EXIT_USAGE)
    t = TOPICS[name]
    if t.consumer_binds:
        consumer = next((p.name for p in PROCS if name in p.subs), "its consumer")
        raise OperatorError(
            f"{name} is an event topic delivered to {consumer} only (PUSH/PULL): watching it would take messages "
            f"away; watch {WATCH_INSTEAD.get(name, 'the consumer’s outputs')} instead",
            EXIT_USAGE,
        )
    return t


def open_sub(bus: Bus, name: str, process: str | None = None) -> Sub:
    """A subscriber that sees every message (conflated for payload topics, whose rate comes from sequence numbers)."""
    t = _topic(name)
    if t.per_process:
        names = [process] if process else [p.name for p in PROCS]
        return bus.sub(name, conflate=False, processes=names)
    return bus.sub(name, conflate=t.payload)


def echo(bus: Bus, name: str, count: int = 0, timeout_s: float = 0.0, process: str | None = None) -> int:
    """Print messages as JSON lines {topic, seq, age_ms, msg[, payload_bytes]}; exit 1 if none came within timeout_s."""
    sub = open_sub(bus, name, process)
    n, t_end = 0, time.monotonic() + timeout_s if timeout_s > 0 else float("inf")
    try:
        while (not count or n < count) and time.monotonic() < t_end:
            for r in sub.wait(0.1):
                rec: dict = {"topic": name, "seq": r.seq, "age_ms": round(r.age_s() * 1e3, 2)}
                rec["msg"] = r.msg.model_dump(mode="json")
                if r.payload is not None:
                    rec["payload_bytes"] = len(r.payload)
                print(json.dumps(rec, ensure_ascii=False), flush=True)
                n += 1
                if count and n >= count:
                    break
    finally:
        sub.close()
    if n == 0:
        print(f"no {name} message within {timeout_s:g} s: is its publisher running?", file=sys.stderr)
        return EXIT_NOT_DONE
    return EXIT_OK


def rate_report(name: str, stamps_ns: list[int], seqs: list[int], nominal_hz: float) -> str:
    """Rate from sequence numbers over the sender's stamps (so a conflating subscriber still counts every message),
    with the spread of the intervals between the messages received."""
    if len(stamps_ns) < 2:
        return f"{name}: {len(stamps_ns)} message(s) in the window"
    span = (stamps_ns[-1] - stamps_ns[0]) * 1e-9
    rate = (seqs[-1] - seqs[0]) / span if span > 0 else 0.0
    dts = [(b - a) * 1e-6 for a, b in zip(stamps_ns, stamps_ns[1:])]
    nominal = f" (nominal {nominal_hz:g} Hz)" if nominal_hz else " (event topic)"
    return (
        f"{name}: {rate:.2f} Hz{nominal}; interval min {min(dts):.1f} ms, max {max(dts):.1f} ms, "
        f"std {statistics.pstdev(dts):.1f} ms over {len(dts)} intervals"
    )


def hz(bus: Bus, name: str, window_s: float = 2.0, count: int = 0, process: str | None = None) -> int:
    t = _topic(name)
    if t.per_process and not process:
        raise OperatorError(f"{name} has one stream per process: name one with --process", EXIT_USAGE)
    sub = open_sub(bus, name, process)
    reports = 0
    try:
        while not count or reports < count:
            stamps: list[int] = []
            seqs: list[int] = []
            t_end = time.monotonic() + window_s
            while time.monotonic() < t_end:
                for r in sub.wait(0.02):
                    if not seqs or r.seq != seqs[-1]:
                        stamps.append(r.mono_ns)
                        seqs.append(r.seq)
            print(rate_report(name, stamps, seqs, t.rate_hz), flush=True)
            reports += 1
    finally:
        sub.close()
    return EXIT_OK
