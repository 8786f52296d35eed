"""The LowCmd watchdog's decision (edge.controls.watchdogd.LowCmdWatchdog) on a fake clock."""

from __future__ import annotations

import math

from edge.controls.watchdogd import LowCmdWatchdog


def polls(wd: LowCmdWatchdog, t_from: float, t_to: float, last: float | None, every: float = 0.005) -> list[str]:
    """Poll every `every` s from t_from to t_to (both included) with control's newest LowCmd at `last`."""
    n = round((t_to - t_from) / every)
    return [wd.step(t_from + k * every, last) for k in range(n + 1)]


def live(wd: LowCmdWatchdog, t_from: float, t_to: float) -> set[str]:
    """Polls every 5 ms with control sending a LowCmd every 20 ms."""
    return {
        wd.step(t, math.floor(t / 0.02) * 0.02)
        for t in (t_from + k * 0.005 for k in range(round((t_to - t_from) / 0.005) + 1))
    }


def test_waits_for_control_then_damps_after_the_timeout_and_yields_at_once():
    wd = LowCmdWatchdog(timeout_s=0.06)
    assert set(polls(wd, 0.0, 1.0, None)) == {"waiting"}  # control never sent: nothing to guard yet
    assert wd.step(1.005, 1.0) == "watching"
    assert set(polls(wd, 1.01, 1.055, 1.0)) == {"watching"}  # < 60 ms: not yet
    assert wd.step(1.065, 1.0) == "damping" and wd.stops == 1 and wd.stopped_at_s == 1.0
    assert "last one 65 ms ago, silent for 65 ms while watched (timeout 60 ms)" in wd.reason
    assert set(polls(wd, 1.07, 5.0, 1.0)) == {"damping"}  # stays damping as long as control is silent
    assert wd.step(5.005, 5.001) == "watching" and "back after 4.00 s" in wd.reason  # the first LowCmd back
    assert set(polls(wd, 5.01, 5.05, 5.04)) == {"watching"}
    assert polls(wd, 5.055, 5.2, 5.04)[-1] == "damping" and wd.stops == 2


def test_its_own_stall_is_not_controls_silence():
    """SIGSTOP of the watchdog for 1 s while control runs: at SIGCONT its DDS thread has not yet delivered the LowCmds
    of that second; it must not damp a healthy robot on the stale time it reads first (found by the fault suite)."""
    wd = LowCmdWatchdog(timeout_s=0.06, max_poll_gap_s=0.01)
    assert live(wd, 0.0, 1.0) == {"watching"}
    assert wd.step(2.0, 1.0) == "watching" and wd.own_stalls == 1  # resumed: control's LowCmd of 0.98 s looks 1 s old
    assert wd.step(2.005, 1.0) == "watching"
    assert live(wd, 2.01, 3.0) == {"watching"}  # the DDS thread delivered: control was alive all along


def test_a_dead_control_is_damped_soon_after_the_watchdog_resumes_or_while_it_is_starved():
    wd = LowCmdWatchdog(timeout_s=0.06, max_poll_gap_s=0.01)
    polls(wd, 0.0, 1.0, 1.0)
    states = polls(wd, 2.0, 2.1, 1.0)  # control died with the watchdog stopped: damped within timeout after resuming
    assert states.index("damping") * 0.005 <= 0.06
    starved = LowCmdWatchdog(timeout_s=0.06, max_poll_gap_s=0.01)
    polls(starved, 0.0, 1.0, 1.0)
    states = polls(starved, 1.04, 2.0, 1.0, every=0.04)  # polled every 40 ms only: the first gap counts 10 ms, the
    assert "damping" in states and 1.04 + states.index("damping") * 0.04 - 1.0 <= 0.12  # next ones in full
    for every in (0.02, 0.05, 0.1, 0.5):  # a watchdog starved to one poll per `every`: damped one gap after timeout
        slow = LowCmdWatchdog(timeout_s=0.06, max_poll_gap_s=0.01)
        polls(slow, 0.0, 1.0, 1.0)
        states = polls(slow, 1.0 + every, 5.0, 1.0, every=every)
        assert states.index("damping") * every + every <= 0.06 + 2 * every


def test_a_stream_at_50hz_with_jitter_never_trips_it():
    wd = LowCmdWatchdog(timeout_s=0.06)
    last, states = None, set()
    for k in range(2000):  # 10 s polled every 5 ms; LowCmd every 20 ms, up to 35 ms late now and then
        now = k * 0.005
        sent = [i * 0.02 + (0.035 if i % 50 == 7 else 0.0) for i in range(int(now / 0.02) + 1)]
        last = max(t for t in sent if t <= now) if any(t <= now for t in sent) else last
        states.add(wd.step(now, last))
    assert "damping" not in states
