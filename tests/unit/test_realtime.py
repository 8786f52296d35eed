from __future__ import annotations

import os

import pytest

from edge.common.realtime import Ratekeeper, configure_realtime, scheduling


class FakeClock:
    """Time advances only by sleeping or by the work the test says a tick took."""

    def __init__(self):
        self.t = 100.0
        self.slept = []

    def __call__(self):
        return self.t

    def sleep(self, s):
        assert s >= 0
        self.slept.append(s)
        self.t += s


def test_deadlines_are_absolute_so_work_does_not_drift_the_schedule():
    c = FakeClock()
    rk = Ratekeeper(0.02, clock=c, sleep=c.sleep)
    starts = []
    for i in range(100):
        starts.append(rk.wait().start_s)
        c.t += 0.013 if i % 2 else 0.004  # uneven work inside the period
    assert starts[-1] == pytest.approx(100.0 + 99 * 0.02)
    assert rk.missed == 0


def test_overrun_skips_missed_deadlines_without_a_burst():
    c = FakeClock()
    rk = Ratekeeper(0.02, clock=c, sleep=c.sleep)
    rk.wait()
    c.t += 0.065  # one tick took 3.25 periods
    t = rk.wait()
    assert t.missed == 2 and t.index == 3 and t.lateness_s == pytest.approx(0.005)
    t = rk.wait()  # next one back on the grid
    assert t.start_s == pytest.approx(100.0 + 4 * 0.02) and t.lateness_s == pytest.approx(0.0)


def test_a_stall_reads_as_its_whole_lateness_and_is_not_replayed():
    c = FakeClock()
    rk = Ratekeeper(0.02, clock=c, sleep=c.sleep)
    rk.wait()
    c.t += 0.3  # a 0.3 s stall inside a tick
    t = rk.wait()
    assert t.skipped == 14 and t.late_s == pytest.approx(0.3 - 0.02) and t.lateness_s < 0.02
    starts = [t.start_s] + [rk.wait().start_s for _ in range(3)]  # then one period apart: no catch-up burst
    assert all(b - a == pytest.approx(0.02) for a, b in zip(starts, starts[1:]))
    assert rk.wait().late_s == pytest.approx(0.0)


def test_realtime_is_not_reset_when_already_fifo_at_or_above(monkeypatch):
    calls = []
    monkeypatch.setattr(os, "sched_getscheduler", lambda pid: os.SCHED_FIFO)
    monkeypatch.setattr(os, "sched_getparam", lambda pid: os.sched_param(80))
    monkeypatch.setattr(os, "sched_setscheduler", lambda *a: calls.append(a))
    assert configure_realtime((), 80, lock_memory=False) == [] and calls == []
    configure_realtime((), 90, lock_memory=False)
    assert calls and calls[0][2].sched_priority == 90


def test_refusals_are_reported_not_raised(monkeypatch):
    def refuse(*a):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_getscheduler", lambda pid: os.SCHED_OTHER)
    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    notes = configure_realtime((999,), 80, lock_memory=False)
    assert notes == ["cpus [999] not on this machine: not pinned", "SCHED_FIFO 80 refused: Operation not permitted"]
    assert scheduling().startswith(("SCHED_OTHER", "SCHED_FIFO"))


def test_rebase_after_a_slow_first_tick_counts_no_missed_deadline():
    c = FakeClock()
    rk = Ratekeeper(0.02, clock=c, sleep=c.sleep)
    rk.wait()
    c.t += 0.035  # one-time start-up costs in the first tick
    rk.rebase()
    t = rk.wait()
    assert t.missed == 0 and t.late_s == 0.0 and t.start_s == pytest.approx(100.055)
