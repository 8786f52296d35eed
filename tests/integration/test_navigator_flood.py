"""The navigator process under a flood of 10,000 queued sentences (the issue's measurement: it drained them in one tick,
stalled 1.5 s and dropped ~800 actions without results). Now: bounded work per tick, the velocity stream keeps
flowing, and every sentence ends in exactly one result (queued, rejected naming the bound, or run).

We stand in for control (controlState hold at 50 Hz) so the navigator accepts commands; execution open loop.
Numbers (velocityCommand gaps, time to answer all) are printed for docs/results.md, with a generous sanity bound."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import zmq

from edge.msg.bus import encode
from edge.msg.messages import TOPICS, ActionText, ControlState
from edge.system.manager import Manager
from edge.system.process_config import procs_for

pytestmark = pytest.mark.integration
N = 10_000


def test_flood_of_10000_sentences_every_one_answered_and_the_tick_keeps_running(bus, run_dir):
    ctrl = bus.pub("controlState")
    stop = threading.Event()

    def control():
        k = 0
        while not stop.is_set():
            k += 1
            ctrl.publish(
                ControlState(
                    mode="hold",
                    reason="standing",
                    tick=k,
                    missed_ticks=0,
                    period_ms=20,
                    lateness_ms=0,
                    work_ms=1,
                    vx_m_s=0,
                    vy_m_s=0,
                    wz_rad_s=0,
                )
            )
            time.sleep(0.02)

    threading.Thread(target=control, daemon=True).start()
    mgr = Manager(
        procs_for("sim", only=["navigatord"]), None, [f"bus.run_dir={run_dir}", "navigator.execution=open_loop"]
    )
    push = zmq.Context.instance().socket(zmq.PUSH)
    results = velocity = None
    try:
        mgr.start()
        mgr.wait_ready()
        # Subscribe once the navigator's sockets exist (as the operator tools do): a SUB that connects before its
        # publisher binds joins up to a reconnect interval later, and PUB/SUB drops what was sent before it joined
        # (the first two ticks' rejections, seen on a loaded machine). A probe sentence answered proves the link.
        results = bus.sub("actionResult")
        velocity = bus.sub("velocityCommand", conflate=False)
        push.connect(bus.endpoint("actionText"))
        topic = TOPICS["actionText"]
        probe_deadline = time.monotonic() + 30
        probed = False
        while not probed and time.monotonic() < probe_deadline:
            push.send(encode(topic, 0, time.monotonic_ns(), ActionText(text="probe", query_id=0, sender="probe")))
            probed = any(r.msg.sender == "probe" for r in results.wait(0.5))
        assert probed, "no actionResult for the probe sentence within 30 s"
        velocity.drain()  # probe results that come later are skipped below (sender "probe")
        t0 = time.monotonic()
        for i in range(1, N + 1):  # blocking sends: nothing is dropped on our side
            push.send(
                encode(topic, i, time.monotonic_ns(), ActionText(text="move forward 25 cm", query_id=i, sender="flood"))
            )
        t_sent = time.monotonic()
        got: dict[int, str] = {}
        stamps: list[int] = []
        deadline = time.monotonic() + 120
        queued_max = 32  # navigator.max_queue (+1 running)
        while time.monotonic() < deadline and len(got) < N - queued_max - 1:
            for r in results.wait(0.05):
                if r.msg.sender == "probe":
                    continue
                assert r.msg.query_id not in got or got[r.msg.query_id] == "completed", "two results for one sentence"
                got[r.msg.query_id] = r.msg.outcome
            stamps += [r.mono_ns for r in velocity.drain()]
        t_done = time.monotonic()
        outcomes = {o: sum(1 for x in got.values() if x == o) for o in sorted(set(got.values()))}
        gaps = np.diff(np.array(stamps)) * 1e-6
        print(
            f"\nflood {N}: sent in {t_sent - t0:.2f} s; within {t_done - t0:.2f} s {outcomes}, {N - len(got)} still "
            f"queued or running; velocityCommand gaps p50 {np.percentile(gaps, 50):.1f} ms, "
            f"p99 {np.percentile(gaps, 99):.1f} ms, max {gaps.max():.1f} ms over {len(gaps)}"
        )
        assert len(got) >= N - queued_max - 1, f"only {len(got)} of {N} sentences answered"
        assert not mgr.dead()
        assert gaps.max() < 1000.0  # sanity only: the stream never stopped (the issue measured a 1.5 s stall)
    finally:
        stop.set()
        push.close(0)
        mgr.stop()
        for s in (results, velocity):
            if s is not None:
                s.close()
        ctrl.close()
