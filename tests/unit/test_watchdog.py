"""The LowCmd watchdog's decision (edge.controls.watchdogd.LowCmdWatchdog) on a fake clock."""

from __future__ import annotations

from edge.controls.watchdogd import LowCmdWatchdog


def test_waits_for_control_then_damps_after_the_timeout_and_yields_at_once():
    wd = LowCmdWatchdog(timeout_s=0.06)
    assert wd.step(0.0, None) == "waiting"  # control never sent: nothing to guard yet
    assert wd.step(1.0, None) == "waiting"
    assert wd.step(1.005, 1.0) == "watching"
    assert wd.step(1.059, 1.0) == "watching"  # 59 ms: not yet
    assert wd.step(1.065, 1.0) == "damping" and wd.stops == 1 and wd.stopped_at_s == 1.0
    assert "last one 65 ms ago (timeout 60 ms)" in wd.reason
    assert wd.step(5.0, 1.0) == "damping"  # stays damping as long as control is silent
    assert wd.step(5.005, 5.001) == "watching" and "back after 4.00 s" in wd.reason  # the first LowCmd back
    assert wd.step(5.05, 5.04) == "watching"
    assert wd.step(5.2, 5.04) == "damping" and wd.stops == 2


def test_a_stream_at_50hz_with_jitter_never_trips_it():
    wd = LowCmdWatchdog(timeout_s=0.06)
    last, states = None, set()
    for k in range(2000):  # 10 s polled every 5 ms; LowCmd every 20 ms, up to 35 ms late now and then
        now = k * 0.005
        sent = [i * 0.02 + (0.035 if i % 50 == 7 else 0.0) for i in range(int(now / 0.02) + 1)]
        last = max(t for t in sent if t <= now) if any(t <= now for t in sent) else last
        states.add(wd.step(now, last))
    assert "damping" not in states
