"""`edge status`: one view of the running stack, from the bus only (never simulator truth), so it reads the same
against the simulator and the robot.

  processes  state, reason, pid, CPU %, memory (each process's own processState)
  topics     rate against nominal (from sequence numbers, so conflating subscribers count every message), age of the
             newest message; operator event topics (PUSH/PULL) have one consumer and are not watched
  control    mode and reason, period error p50 / p99 over the window, missed ticks, LowState age (controlState)
  navigator  state, queue, actions done / invalid / rejected (navigatorStatus)
  VLM        model, backend, episode (vlmd's processState), last query's latency breakdown (vlmOutput)

Live: redrawn every second until Ctrl-C. --once: one view after a measurement window; exit 0 when every process of
the profile is up (ready or degraded), 3 otherwise. --json with --once: the same as a JSON object.
"""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from edge.common.config import EdgeConfig
from edge.common.realtime import DT_CONTROL
from edge.msg.bus import Bus, Received, Sub
from edge.msg.messages import TOPICS, Topic
from edge.system.health import UP, HealthView
from edge.system.process_config import procs_for
from edge.tools.errors import EXIT_NOT_READY, EXIT_OK


def nominal_hz(topic: Topic, cfg: EdgeConfig) -> float:
    """The rate a topic should have under this config (the registry's, where the config sets it)."""
    if topic.name == "cameraFrame":
        return cfg.sim.camera_hz if cfg.profile == "sim" else float(cfg.camera.fps)
    if topic.name == "velocityCommand":
        return cfg.navigator.publish_hz
    return topic.rate_hz


@dataclass
class TopicWatch:
    topic: Topic
    sub: Sub
    samples: deque = field(default_factory=lambda: deque(maxlen=4096))  # (sender mono_ns, seq)
    last: Received | None = None

    def poll(self) -> list[Received]:
        got = self.sub.drain()
        for r in got:
            if not self.samples or r.seq != self.samples[-1][1]:
                self.samples.append((r.mono_ns, r.seq))
            self.last = r
        return got

    def rate_hz(self, since_ns: int) -> float | None:
        s = [x for x in self.samples if x[0] >= since_ns]
        if len(s) < 2 or s[-1][0] == s[0][0]:
            return None
        return (s[-1][1] - s[0][1]) / ((s[-1][0] - s[0][0]) * 1e-9)


class StackView:
    """Subscribes to everything it shows; poll() often (≥ 10 Hz), view() when wanted."""

    def __init__(self, bus: Bus, cfg: EdgeConfig, window_s: float = 2.0):
        self.bus, self.cfg, self.window_s = bus, cfg, window_s
        self.procs = procs_for(cfg.profile)
        self.health = HealthView(bus, [p.name for p in self.procs])
        published = {t for p in self.procs for t in p.pubs}
        self.topics = {
            name: TopicWatch(t, bus.sub(name, conflate=t.latest_only))
            for name, t in TOPICS.items()
            if name in published and not t.per_process and not t.consumer_binds
        }
        self.events = sorted(n for n, t in TOPICS.items() if t.consumer_binds)
        self.control = bus.sub("controlState", conflate=False)
        self.periods: deque = deque(maxlen=4096)  # (mono_ns, period_ms)
        self.last_control: Received | None = None

    def poll(self, timeout_s: float = 0.05) -> None:
        self.health.poll(timeout_s)
        for w in self.topics.values():
            w.poll()
        for r in self.control.drain():
            self.last_control = r
            if r.msg.period_ms > 0:
                self.periods.append((r.mono_ns, r.msg.period_ms))

    def view(self) -> dict:
        now = time.monotonic_ns()
        since = now - int(self.window_s * 1e9)
        procs = []
        for p in self.procs:
            st = self.health.state(p.name)
            procs.append(
                {"name": p.name, "state": "not running", "reason": self.health.describe(p.name, now).split(": ", 1)[1]}
                if st is None
                else {
                    "name": p.name,
                    "state": st.state,
                    "reason": st.reason,
                    "progress": st.progress,
                    "pid": st.pid,
                    "host": st.host,
                    "cpu_percent": round(st.cpu_percent, 1),
                    "rss_mb": round(st.rss_mb, 1),
                    "uptime_s": round(st.uptime_s, 1),
                }
            )
        topics = []
        for name, w in self.topics.items():
            age = None if w.last is None else w.last.age_s(now)
            nominal = nominal_hz(w.topic, self.cfg)
            rate = w.rate_hz(since)
            flag = ""
            if w.last is None:
                flag = "silent"
            elif w.topic.max_age_s is not None and nominal and age is not None and age > w.topic.max_age_s:
                flag = "stale"
            elif nominal and (rate is None or rate < 0.8 * nominal):
                flag = "slow"
            topics.append(
                {
                    "topic": name,
                    "rate_hz": None if rate is None else round(rate, 2),
                    "nominal_hz": nominal,
                    "age_ms": None if age is None else round(age * 1e3, 1),
                    "flag": flag,
                }
            )
        return {
            "profile": self.cfg.profile,
            "bus": self.bus.run_dir,
            "window_s": self.window_s,
            "processes": procs,
            "all_up": all(p["state"] in UP for p in procs),
            "topics": topics,
            "event_topics": self.events,
            "control": self._control(since),
            "navigator": self._navigator(),
            "vlm": self._vlm(),
        }

    def _control(self, since: int) -> dict | None:
        r = self.last_control
        if r is None:
            return None
        err = [abs(p - DT_CONTROL * 1e3) for t, p in self.periods if t >= since]
        return {
            "mode": r.msg.mode,
            "reason": r.msg.reason,
            "period_error_p50_ms": round(float(np.percentile(err, 50)), 3) if err else None,
            "period_error_p99_ms": round(float(np.percentile(err, 99)), 3) if err else None,
            "ticks_in_window": len(err),
            "missed_ticks": r.msg.missed_ticks,
            "lowstate_age_ms": round(r.msg.lowstate_age_ms, 1),
            "age_ms": round(r.age_s() * 1e3, 1),
        }

    def _navigator(self) -> dict | None:
        w = self.topics.get("navigatorStatus")
        if w is None or w.last is None:
            return None
        m = w.last.msg
        return {
            "state": m.state,
            "execution": m.execution,
            "queue": m.queue_len,
            "current": m.current_text,
            "done": m.actions_done,
            "invalid": m.invalid_texts,
            "rejected": m.rejected_texts,
        }

    def _vlm(self) -> dict | None:
        st = self.health.state("vlmd")
        w = self.topics.get("vlmOutput")
        if st is None and (w is None or w.last is None):
            return None
        out: dict = {} if st is None else {k: st.detail.get(k, "") for k in ("model", "backend", "episode")}
        if w is not None and w.last is not None:
            m = w.last.msg
            out["last_query"] = {
                "query_id": m.query_id,
                "text": m.text,
                "error": m.error,
                "total_ms": round(m.total_ms, 1),
                "vision_ms": round(m.vision_ms, 1),
                "prefill_ms": round(m.prefill_ms, 1),
                "decode_ms": round(m.decode_ms, 1),
                "new_tokens": m.new_tokens,
                "age_s": round(w.last.age_s(), 1),
            }
        return out

    def close(self) -> None:
        self.health.close()
        self.control.close()
        for w in self.topics.values():
            w.sub.close()


def _num(v, fmt: str, missing: str = "—") -> str:
    return missing if v is None else format(v, fmt)


def render(v: dict) -> str:
    out = [f"edge status — {v['profile']} profile, bus {v['bus']}, window {v['window_s']:g} s"]
    out.append(f"{'PROCESS':11s} {'STATE':11s} {'PID':>7s} {'CPU %':>6s} {'MEM MB':>7s} {'UP s':>7s}  REASON")
    for p in v["processes"]:
        state = p["state"] + (f" {p['progress'] * 100:.0f}%" if p.get("progress", -1) >= 0 else "")
        out.append(
            f"{p['name']:11s} {state:11s} {_num(p.get('pid'), 'd'):>7s} {_num(p.get('cpu_percent'), '.1f'):>6s} "
            f"{_num(p.get('rss_mb'), '.0f'):>7s} {_num(p.get('uptime_s'), '.0f'):>7s}  {p['reason']}"
        )
    out.append(f"{'TOPIC':16s} {'RATE Hz':>8s} {'NOMINAL':>8s} {'AGE ms':>8s}")
    for t in v["topics"]:
        nominal = f"{t['nominal_hz']:g}" if t["nominal_hz"] else "event"
        out.append(
            f"{t['topic']:16s} {_num(t['rate_hz'], '.1f'):>8s} {nominal:>8s} {_num(t['age_ms'], '.0f'):>8s}  "
            f"{t['flag']}"
        )
    out.append(f"(not watched: {', '.join(v['event_topics'])} go to one consumer each)")
    c = v["control"]
    if c is None:
        out.append("CONTROL    no controlState")
    else:
        out.append(
            f"CONTROL    {c['mode']} ({c['reason']}); period error p50 {_num(c['period_error_p50_ms'], '.2f')} ms, "
            f"p99 {_num(c['period_error_p99_ms'], '.2f')} ms over {c['ticks_in_window']} ticks; "
            f"missed ticks {c['missed_ticks']}; LowState age {c['lowstate_age_ms']:.0f} ms"
        )
    n = v["navigator"]
    out.append(
        "NAVIGATOR  no navigatorStatus"
        if n is None
        else f"NAVIGATOR  {n['state']} ({n['execution']}), queue {n['queue']}, done {n['done']}, invalid "
        f"{n['invalid']}, rejected {n['rejected']}" + (f"; now: {n['current']!r}" if n["current"] else "")
    )
    vl = v["vlm"]
    if vl is None:
        out.append("VLM        not running")
    else:
        line = f"VLM        {vl.get('model', '?')} ({vl.get('backend', '?')}), episode {vl.get('episode', '?')}"
        q = vl.get("last_query")
        if q:
            line += (
                f"; last query {q['query_id']} {q['age_s']:.0f} s ago: {q['total_ms']:.0f} ms (vision "
                f"{q['vision_ms']:.0f}, prefill {q['prefill_ms']:.0f}, decode {q['decode_ms']:.0f} ms, "
                f"{q['new_tokens']} tokens)" + (f" error {q['error']}" if q["error"] else f" {q['text']!r}")
            )
        out.append(line)
    return "\n".join(out)


def run_status(bus: Bus, cfg: EdgeConfig, once: bool = False, as_json: bool = False, window_s: float = 2.0) -> int:
    sv = StackView(bus, cfg, window_s)
    try:
        if once:
            t_end = time.monotonic() + window_s
            while time.monotonic() < t_end:
                sv.poll(0.05)
            v = sv.view()
            print(json.dumps(v, indent=1) if as_json else render(v), flush=True)
            return EXIT_OK if v["all_up"] else EXIT_NOT_READY
        next_draw = time.monotonic()
        while True:
            sv.poll(0.05)
            if time.monotonic() >= next_draw:
                next_draw += 1.0
                sys.stdout.write("\x1b[H\x1b[2J" + render(sv.view()) + "\n(Ctrl-C to quit)\n")
                sys.stdout.flush()
    finally:
        sv.close()
