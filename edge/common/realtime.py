"""Deadline scheduling on the monotonic clock, lag accounting, and real-time process setup."""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

# Loop periods, s. The control period is the locomotion policy's (its contract's rate_hz must match: 50 Hz for the
# Go2 policies, docs/go2.md §8.4); the damping routine sends at the same period.
DT_CONTROL = 0.02
DT_VLM = 0.05  # the VLM process's bookkeeping loop (frames, scheduler, answers), not inference


DT_WATCHDOG = 0.005  # the LowCmd watchdog's polling period (edge.controls.watchdogd)


@dataclass(frozen=True)
class Tick:
    index: int  # deadline number since start (skipped deadlines count)
    deadline_s: float
    start_s: float
    period_s: float  # start-to-start since the previous tick (0 on the first)
    lateness_s: float  # start − deadline
    missed: int  # deadlines skipped so far because the loop overran them
    skipped: int = 0  # deadlines skipped by this wait (a stall or an overrun just before it)
    period: float = 0.0  # the nominal period

    @property
    def late_s(self) -> float:
        """How late this tick started after the first deadline it serves: skipped deadlines count whole periods (a
        0.3 s stall at 50 Hz reads ≈ 0.3 s, not the remainder after skipping)."""
        return self.lateness_s + self.skipped * self.period


class Ratekeeper:
    """Absolute schedule t0 + k·period: a late tick never shifts the following deadlines (no drift).
    When the loop overruns whole periods, the missed deadlines are skipped and counted, never replayed in a burst."""

    def __init__(
        self,
        period_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.period = period_s
        self.clock, self.sleep = clock, sleep
        self.index = -1
        self.t0: float | None = None
        self.prev_start: float | None = None
        self.missed = 0

    def wait(self) -> Tick:
        now = self.clock()
        if self.t0 is None:
            self.t0 = now
        self.index += 1
        deadline = self.t0 + self.index * self.period
        skipped = 0
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
        return Tick(self.index, deadline, now, period, now - deadline, self.missed, skipped, self.period)

    def rebase(self) -> None:
        """Start the grid over from now: the next deadline is one period away (after a first tick that carried one-time
        start-up costs, which are no missed deadline)."""
        self.t0 = self.clock() - self.index * self.period


# ---- real-time placement ----------------------------------------------------------------------------------------


def _memlock_allowed() -> bool:
    """mlockall(MCL_FUTURE) is only safe when later allocations cannot hit the memlock limit (they would fail)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    return soft == resource.RLIM_INFINITY or os.geteuid() == 0


def configure_realtime(cpus: Sequence[int] = (), priority: int = 0, lock_memory: bool = True) -> list[str]:
    """Pin to the CPUs of `cpus` that exist here, ask for SCHED_FIFO `priority` (skipped when the process already runs
    SCHED_FIFO at or above it, e.g. started so by systemd's CPUSchedulingPolicy=), and lock memory. Each step the OS
    refuses is reported in the returned notes, never fatal (dev machines, containers). Linux."""
    notes = []
    if cpus:
        usable = sorted(set(cpus) & os.sched_getaffinity(0))
        if not usable:
            notes.append(f"cpus {list(cpus)} not on this machine: not pinned")
        else:
            try:
                os.sched_setaffinity(0, usable)
            except OSError as e:
                notes.append(f"affinity {usable} refused: {e.strerror}")
    if priority:
        if os.sched_getscheduler(0) == os.SCHED_FIFO and os.sched_getparam(0).sched_priority >= priority:
            pass  # already there (systemd): re-setting could fail without privilege and would change nothing
        else:
            try:
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
            except OSError as e:
                notes.append(f"SCHED_FIFO {priority} refused: {e.strerror}")
        if lock_memory:
            if not _memlock_allowed():
                notes.append("memory not locked: memlock limit (LimitMEMLOCK=infinity under systemd)")
            elif ctypes.CDLL(None, use_errno=True).mlockall(_MCL_CURRENT | _MCL_FUTURE) != 0:
                notes.append(f"mlockall refused: {os.strerror(ctypes.get_errno())}")
    return notes


_MCL_CURRENT, _MCL_FUTURE = 1, 2  # sys/mman.h


def scheduling() -> str:
    """What this process got: 'SCHED_FIFO 80, cpus 0-1, memory locked' (read back from the kernel)."""
    policy = os.sched_getscheduler(0)
    name = {os.SCHED_FIFO: "SCHED_FIFO", os.SCHED_RR: "SCHED_RR", os.SCHED_OTHER: "SCHED_OTHER"}.get(
        policy, str(policy)
    )
    prio = os.sched_getparam(0).sched_priority
    cpus = sorted(os.sched_getaffinity(0))
    locked = False
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmLck:"):
                locked = int(line.split()[1]) > 0
    except OSError:
        pass
    contiguous = len(cpus) > 1 and cpus == list(range(cpus[0], cpus[-1] + 1))
    where = f"{cpus[0]}-{cpus[-1]}" if contiguous else ",".join(map(str, cpus))
    return f"{name}{' ' + str(prio) if prio else ''}, cpus {where}" + (", memory locked" if locked else "")


def freeze_gc() -> None:
    """Call once set-up is done: no collector pauses inside the loop (the loop must not build cycles)."""
    gc.collect()
    gc.freeze()
    gc.disable()
