from __future__ import annotations

import pytest

from edge.common.realtime import Ratekeeper


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


def test_lagging_flag_follows_average_lateness():
    c = FakeClock()
    rk = Ratekeeper(0.02, clock=c, sleep=c.sleep)
    for _ in range(200):
        rk.wait()
        c.t += 0.0215  # always 1.5 ms over
    assert rk.lagging
