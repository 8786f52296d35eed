"""Deadline scheduling on the monotonic clock, lag accounting, and real-time process setup."""

from __future__ import annotations

import gc
import logging
import os
import time
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger(__name__)

# Loop periods, s. The control period is the locomotion policy's (its contract's rate_hz must match: 50 Hz for the
# Go2 policies, docs/go2.md §8.4); the damping routine sends at the same period.
DT_CONTROL = 0.02
DT_VLM = 0.05  # the VLM process's bookkeeping loop (frames, scheduler, answers), not inference


@dataclass(frozen=True)
class Tick:
    index: int  # deadline number since start (skipped deadlines count)
    deadline_s: float
    start_s: float
    period_s: float  # start-to-start since the previous tick (0 on the first)
    lateness_s: float  # start − deadline
    missed: int  # deadlines skipped so far because the loop overran them


class Ratekeeper:
    """Absolute schedule t0 + k·period: a late tick never shifts the following deadlines (no drift).
    When the loop overruns whole periods, the missed deadlines are skipped and counted, not replayed in a burst."""

    def __init__(
        self,
        period_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        lag_alpha: float = 0.05,
    ):
        self.period = period_s
        self.clock, self.sleep = clock, sleep
        self.index = -1
        self.t0: float | None = None
        self.prev_start: float | None = None
        self.missed = 0
        self.avg_lateness = 0.0
        self.lag_alpha = lag_alpha

    def wait(self) -> Tick:
        now = self.clock()
        if self.t0 is None:
            self.t0 = now
        self.index += 1
        deadline = self.t0 + self.index * self.period
        if now - deadline >= self.period:  # overran one or more whole periods: skip them
            skipped = int((now - deadline) / self.period)
            self.missed += skipped
            self.index += skipped
            deadline = self.t0 + self.index * self.period
        if deadline > now:
            self.sleep(deadline - now)
            now = self.clock()
        period = 0.0 if self.prev_start is None else now - self.prev_start
        self.prev_start = now
        lateness = now - deadline
        self.avg_lateness += self.lag_alpha * (lateness - self.avg_lateness)
        return Tick(self.index, deadline, now, period, lateness, self.missed)

    @property
    def lagging(self) -> bool:
        return self.avg_lateness > 0.1 * self.period


def configure_realtime(cpus: list[int] | None = None, priority: int | None = None) -> list[str]:
    """Pin to CPUs and ask for SCHED_FIFO. Each step that the OS refuses is reported, not fatal (dev machines)."""
    notes = []
    if cpus:
        try:
            usable = sorted(set(cpus) & os.sched_getaffinity(0))
            if usable:
                os.sched_setaffinity(0, usable)
                notes.append(f"cpus {usable}")
        except OSError as e:
            notes.append(f"affinity refused: {e}")
    if priority:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
            notes.append(f"SCHED_FIFO {priority}")
        except (OSError, AttributeError) as e:
            notes.append(f"SCHED_FIFO refused: {e}")
    return notes


def freeze_gc() -> None:
    """Call once set-up is done: no collector pauses inside the loop (the loop must not build cycles)."""
    gc.collect()
    gc.freeze()
    gc.disable()
