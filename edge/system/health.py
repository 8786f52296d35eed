"""Readiness and health, one protocol: every process publishes a ProcessState (edge.msg.messages) on its own
processState stream about twice a second and at once on a change; everything that starts or drives the stack waits
on those states, with a bound and an error naming what is not ready and why. No fixed sleep or peer timer decides
start-up.

Publisher: `Health` (one per process, created by edge.system.process_main before the process's slow work; a thread
publishes so a process busy loading a model keeps reporting). Mirrored to systemd (edge.common.sdnotify): READY=1 on
the first ready, STATUS= on every change, EXTEND_TIMEOUT_USEC= on every loading-progress report (so a load that stops
reporting fails the unit's start timeout, a load that progresses never does), STOPPING=1.

Waiter: `HealthView.wait_ready()` (launcher, demo, tests, CLI). Its bound restarts whenever a process reports
progress (a new state, reason or progress value), like systemd's EXTEND_TIMEOUT_USEC.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable

from edge.common.sdnotify import Notifier
from edge.msg.bus import Bus, Received
from edge.msg.messages import MAX_NAME, MAX_TEXT, ProcessState, ProcessStateName

log = logging.getLogger(__name__)

PERIOD_S = 0.5  # ~2 Hz
UP: tuple[ProcessStateName, ...] = ("ready", "degraded")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE / 1e6
    except (OSError, ValueError, IndexError):
        return 0.0


class Health:
    """This process's state. Thread-safe: set() may be called from any thread (and from a signal handler).

    bus None: nothing is published (helpers outside the process table); systemd is still notified.
    extend_s: how long systemd may wait for the next progress report while loading (EXTEND_TIMEOUT_USEC)."""

    def __init__(self, name: str, bus: Bus | None, notifier: Notifier | None = None, extend_s: float = 60.0):
        self.name = name
        self.notifier = notifier or Notifier()
        self.extend_s = extend_s
        self._pub = bus.pub("processState", process=name) if bus is not None else None
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._done = threading.Event()
        self._t0 = self._since = time.monotonic()
        self._state: ProcessStateName = "starting"
        self._reason, self._progress = "", -1.0
        self._detail: dict[str, str] = {}
        self._notified_ready = False
        self._cpu = (time.monotonic(), time.process_time(), 0.0)
        self._host = socket.gethostname()[:MAX_NAME]
        self._thread: threading.Thread | None = None
        self._inputs: list = []  # the process's subscriptions (edge.msg.bus.Sub): malformed messages dropped, counted

    # ---- state ---------------------------------------------------------------------------------------------------
    @property
    def state(self) -> ProcessStateName:
        return self._state

    @property
    def reason(self) -> str:
        return self._reason

    def set(self, state: ProcessStateName, reason: str = "", progress: float = -1.0) -> None:
        """Change state (published at once if anything changed). failed and stopping are final."""
        progress = -1.0 if not 0.0 <= progress <= 1.0 else progress
        reason = reason[:MAX_TEXT]
        with self._lock:
            if self._state in ("stopping", "failed") and state not in ("stopping", "failed"):
                return
            changed = (state, reason, progress) != (self._state, self._reason, self._progress)
            if not changed:
                return
            if state != self._state:
                self._since = time.monotonic()
                logger = logging.getLogger(self.name)
                if state == "failed":  # the reason is the message: "network interface 'eth9' does not exist"
                    logger.error("%s", reason or "failed")
                else:
                    level = logging.WARNING if state == "degraded" else logging.INFO
                    logger.log(level, "%s%s", state, f": {reason}" if reason else "")
            self._state, self._reason, self._progress = state, reason, progress
            self._mirror()
        self._wake.set()

    def starting(self, reason: str = "") -> None:
        self.set("starting", reason)

    def loading(self, reason: str, progress: float = -1.0) -> None:
        """Slow work under way; call again on every step (each call extends systemd's start timeout)."""
        self.set("loading", reason, progress)
        if not self._notified_ready:
            self.notifier.status(self._status_text(), extend_timeout_s=self.extend_s)

    def ready(self, reason: str = "") -> None:
        self.set("ready", reason)

    def degraded(self, reason: str) -> None:
        self.set("degraded", reason)

    def stopping(self, reason: str = "") -> None:
        self.set("stopping", reason)

    def failed(self, reason: str) -> None:
        self.set("failed", reason)

    def detail(self, **items: object) -> None:
        """Key facts for `edge status` (model, backend, episode …); published with the next state."""
        with self._lock:
            self._detail.update({k[:64]: str(v)[:256] for k, v in items.items()})
        self._wake.set()

    def count_malformed(self, subs) -> None:
        """Publish, in detail["malformed"], how many malformed messages these subscriptions have dropped (a flood
        is counted where it lands)."""
        self._inputs = list(subs)

    def _status_text(self) -> str:
        pct = f" {self._progress * 100:.0f} %" if self._progress >= 0 else ""
        return f"{self._state}{pct}{': ' + self._reason if self._reason else ''}"

    def _mirror(self) -> None:
        n = self.notifier
        if not n.active:
            return
        if self._state in UP and not self._notified_ready:
            self._notified_ready = True
            n.ready(self._status_text())
        elif self._state == "stopping":
            n.stopping(self._status_text())
        else:
            n.status(self._status_text())

    # ---- publishing thread ---------------------------------------------------------------------------------------
    def message(self) -> ProcessState:
        with self._lock:  # the clock read inside: a set() meanwhile would stamp _since after `now` (state_s < 0)
            now, cpu_now = time.monotonic(), time.process_time()
            t_prev, cpu_prev, pct = self._cpu
            if now - t_prev >= 0.2:
                pct = max(0.0, (cpu_now - cpu_prev) / (now - t_prev) * 100.0)
                self._cpu = (now, cpu_now, pct)
            return ProcessState(
                name=self.name,
                state=self._state,
                reason=self._reason,
                progress=self._progress,
                pid=os.getpid(),
                host=self._host,
                uptime_s=now - self._t0,
                state_s=now - self._since,
                cpu_percent=pct,
                rss_mb=_rss_mb(),
                detail={
                    **self._detail,
                    **({"malformed": str(sum(s.invalid for s in self._inputs))} if self._inputs else {}),
                },
            )

    def start(self) -> Health:
        if self._pub is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="health", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        pub = self._pub
        if pub is None:
            return
        while True:
            done = self._done.is_set()
            try:
                pub.publish(self.message())
            except Exception:  # health must never take the process down
                log.exception("%s: publishing processState failed", self.name)
            if done:
                return
            self._wake.wait(PERIOD_S)
            self._wake.clear()

    def close(self, state: ProcessStateName = "stopping", reason: str = "") -> None:
        """Publish the final state, stop the thread, close the socket (lingers ≤ 1 s so the last state arrives)."""
        self.set(state, reason)
        self._done.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self._pub is not None:
            self._pub.close()
        self.notifier.close()


# ---- waiting on states ----------------------------------------------------------------------------------------------


class NotReadyError(RuntimeError):
    """Start-up did not complete: the message names every process that is not up and why."""


class HealthView:
    """The newest ProcessState of each named process, as received from the bus."""

    def __init__(self, bus: Bus, names: Iterable[str]):
        self.names = list(dict.fromkeys(names))
        self.bus = bus
        self.sub = bus.sub("processState", processes=self.names)
        self.latest: dict[str, Received] = {}
        self._changed_ns: dict[str, int] = {}

    def poll(self, timeout_s: float = 0.0) -> None:
        got = self.sub.wait(timeout_s) if timeout_s > 0 else self.sub.drain()
        for r in got:
            name = r.msg.name
            if name not in self.names:
                continue  # a stream we did not ask for (cannot happen with per-process endpoints)
            prev = self.latest.get(name)
            if prev is None or (prev.msg.state, prev.msg.reason, prev.msg.progress) != (
                r.msg.state,
                r.msg.reason,
                r.msg.progress,
            ):
                self._changed_ns[name] = time.monotonic_ns()
            self.latest[name] = r

    def state(self, name: str, max_age_s: float = 1.5) -> ProcessState | None:
        """The process's newest state if it was published within max_age_s (else None: not running or unreachable)."""
        r = self.latest.get(name)
        return r.msg if r is not None and r.age_s() <= max_age_s else None

    def describe(self, name: str, now_ns: int | None = None) -> str:
        r = self.latest.get(name)
        if r is None:
            return f"{name}: no state received (not started, or its bus is not {self.bus.run_dir})"
        m = r.msg
        pct = f" {m.progress * 100:.0f} %" if m.progress >= 0 else ""
        why = f" ({m.reason})" if m.reason else ""
        age = r.age_s(now_ns)
        stale = f", last heard {age:.1f} s ago" if age > 1.5 else ""
        return f"{name}: {m.state}{pct}{why}{stale}"

    def wait_ready(
        self,
        timeout_s: float | dict[str, float],
        names: Iterable[str] | None = None,
        accept: tuple[ProcessStateName, ...] = UP,
        abort: Callable[[], str] | None = None,
        absent_fail_s: float | None = None,
    ) -> dict[str, ProcessState]:
        """Block until every named process (default: all of this view) reports a state in `accept`.

        The bound is per process and restarts on each reported change (state, reason, progress): a slow load that
        keeps reporting progress is waited for, a silent or stuck one is not. Raises NotReadyError at once when a
        process reports failed or stopping, or when abort() returns a reason (a child exited), else after the bound.
        absent_fail_s (clients, not launchers): give up after this long if none of the processes has ever been heard
        of and none of their ipc sockets exists (no stack on this bus).
        """
        want = list(names) if names is not None else self.names

        def bound(name: str) -> float:
            return timeout_s.get(name, 60.0) if isinstance(timeout_s, dict) else timeout_s

        t0 = time.monotonic_ns()
        while True:
            self.poll(0.1)
            now = time.monotonic_ns()
            up = {n: s for n in want if (s := self.state(n)) is not None and s.state in accept}
            if len(up) == len(want):
                return up
            down = [n for n in want if n not in up]
            final = [n for n in down if (s := self.state(n)) is not None and s.state in ("failed", "stopping")]
            why = abort() if abort is not None else ""
            if not why and absent_fail_s is not None and (now - t0) * 1e-9 > absent_fail_s and self._absent(want):
                why = f"no stack running on bus {self.bus.run_dir}"
            overdue = [n for n in down if (now - max(t0, self._changed_ns.get(n, 0))) * 1e-9 > bound(n)]
            if final or why or overdue:
                if why:
                    head = why
                elif final:
                    head = f"{', '.join(final)} stopped during start-up"
                else:
                    head = f"not ready ({', '.join(f'{n} {bound(n):g} s' for n in overdue)} without progress)"
                raise NotReadyError(f"{head}: " + "; ".join(self.describe(n, now) for n in (final or down)))

    def _absent(self, names: list[str]) -> bool:
        """Nothing heard from any of `names` and no ipc socket file of theirs exists."""
        if any(n in self.latest for n in names):
            return False
        eps = [self.bus.endpoint("processState", n) for n in names]
        return all(ep.startswith("ipc://") and not os.path.exists(ep[6:]) for ep in eps)

    def close(self) -> None:
        self.sub.close()
