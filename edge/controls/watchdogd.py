"""The LowCmd watchdog: an independent, minimal process that damps the robot whenever control's LowCmd stream stops.

A Go2 in low-level mode keeps applying the last LowCmd when the stream stops (docs/go2.md §11): a killed, hung or
stalled controlsd would leave the motors holding a walking posture until the robot falls. This process reads rt/lowcmd
(samples from other processes only, CRC-valid: drivers.unitree.go2.LowCmdMonitor), and once it has seen control's
stream, sends damping (kp 0, kd safety.damp_kd, every control period) as soon as no LowCmd has arrived for
safety.watchdog_timeout_s of its own watching (LowCmdWatchdog), polling every DT_WATCHDOG; it yields at the first
LowCmd from control again. Liveness is a sample arriving, never DDS discovery. Its own damping is never mistaken
for control's (IgnoreLocal.Process).

Runs beside control under `edge run` and systemd alike (process table row `watchdogd`), SCHED_FIFO just below control,
on another core.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal

from drivers.unitree.go2 import Go2Robot, LowCmdMonitor
from edge.common.realtime import DT_CONTROL, DT_WATCHDOG, Ratekeeper, scheduling
from edge.common.sdnotify import Notifier
from edge.controls.commander import register_watchdog
from edge.controls.safety import damping, send_damping
from edge.msg.messages import WatchdogState
from edge.system.process_main import Process, process_main

log = logging.getLogger("watchdogd")

WatchState = Literal["waiting", "watching", "damping"]


@dataclass
class LowCmdWatchdog:
    """The decision, free of I/O: fed the time of control's newest LowCmd at each poll, says whether to damp.

    waiting ──first LowCmd──▶ watching ──silent for timeout_s──▶ damping ──a LowCmd newer than the stop──▶ watching

    Silence is what the watchdog saw while it ran: each poll adds the time since the previous one, but at most
    max_poll_gap_s. A watchdog that was itself stopped or starved (SIGSTOP, a stall) cannot tell a silent control from
    its own absence — its DDS thread has not delivered what arrived meanwhile — so the first long gap counts as one
    poll's worth, never as control's silence (it once damped a healthy walking robot right after its own SIGCONT). A
    watchdog starved all the time (long gaps one after another) counts every gap after the first in full, so it damps
    about one gap later than an on-time one would, not timeout / max_poll_gap_s gaps later.
    """

    timeout_s: float
    max_poll_gap_s: float = 0.01
    state: WatchState = "waiting"
    reason: str = "no LowCmd from control yet"
    stopped_at_s: float | None = None  # control's last LowCmd before the current / latest stop
    damping_since_s: float | None = None
    stops: int = 0
    silence_s: float = 0.0  # control's silence as observed by the watchdog
    own_stalls: int = 0  # polls that came more than max_poll_gap_s after the previous one
    last_poll_s: float | None = None
    last_cmd_s: float | None = None
    prev_gap_long: bool = False

    def step(self, now_s: float, last_cmd_s: float | None) -> WatchState:
        gap = 0.0 if self.last_poll_s is None else now_s - self.last_poll_s
        self.last_poll_s = now_s
        counted = gap
        if gap > self.max_poll_gap_s:
            self.own_stalls += 1
            counted = gap if self.prev_gap_long else self.max_poll_gap_s  # the first long gap: one poll's worth
        self.prev_gap_long = gap > self.max_poll_gap_s
        if last_cmd_s is None:
            return self.state
        if last_cmd_s != self.last_cmd_s:  # a new LowCmd: silence since it, as far as this poll can vouch for
            self.last_cmd_s = last_cmd_s
            self.silence_s = min(max(now_s - last_cmd_s, 0.0), self.max_poll_gap_s)
        else:
            self.silence_s += counted
        if self.state == "damping":
            if last_cmd_s != self.stopped_at_s:
                self.state = "watching"
                self.reason = f"control's LowCmd back after {last_cmd_s - (self.stopped_at_s or 0.0):.2f} s: yielding"
        elif self.silence_s > self.timeout_s:
            self.state, self.stopped_at_s, self.damping_since_s = "damping", last_cmd_s, now_s
            self.stops += 1
            self.reason = (
                f"control's LowCmd stream stopped: last one {(now_s - last_cmd_s) * 1e3:.0f} ms ago, silent for "
                f"{self.silence_s * 1e3:.0f} ms while watched (timeout {self.timeout_s * 1e3:.0f} ms): damping"
            )
        elif self.state == "waiting":
            self.state, self.reason = "watching", "control's LowCmd stream is live"
        return self.state


def run(proc: Process) -> int:
    cfg, stop, lim = proc.cfg, proc.stop, proc.cfg.safety
    status_pub = proc.ports.pub["watchdogState"]
    register_watchdog(cfg)  # before our writer exists: control's one-commander probe must not refuse us
    proc.health.loading("DDS participant, rt/lowcmd monitor")
    try:
        monitor = LowCmdMonitor(cfg.robot.dds_domain, cfg.robot.interface, interface_wait_s=cfg.robot.interface_wait_s)
    except RuntimeError as e:  # the robot's network interface never came up within robot.interface_wait_s
        proc.health.failed(str(e))
        return 4
    robot = Go2Robot(cfg.robot.dds_domain, cfg.robot.interface, lowstate=False)
    wd = LowCmdWatchdog(lim.watchdog_timeout_s, max_poll_gap_s=2 * DT_WATCHDOG)
    cmd = damping(lim)
    realtime = scheduling()
    notifier = Notifier()  # WATCHDOG=1 pings; READY=1 comes from proc.health
    proc.health.ready(f"{wd.state}: {wd.reason}")
    log.info(
        "watching rt/lowcmd on domain %d (%s): damping after %.0f ms of silence",
        cfg.robot.dds_domain,
        cfg.robot.interface,
        lim.watchdog_timeout_s * 1e3,
    )
    rk = Ratekeeper(DT_WATCHDOG)
    sent = 0
    reaction_ms = -1.0
    last_sent_s = last_status_s = -float("inf")
    while not stop.is_set():
        tick = rk.wait()
        now = tick.start_s
        before, stalls = wd.state, wd.own_stalls
        last_cmd = monitor.last_received_s()
        state = wd.step(now, last_cmd)
        if wd.own_stalls != stalls and tick.period_s > lim.watchdog_timeout_s:
            log.warning("watchdog itself stalled %.0f ms: control's silence meanwhile not counted", tick.period_s * 1e3)
        if state == "damping" and (before != "damping" or now - last_sent_s >= DT_CONTROL - DT_WATCHDOG / 2):
            try:
                robot.write(cmd)
                sent += 1
                last_sent_s = now
                if before != "damping" and wd.stopped_at_s is not None:
                    reaction_ms = (time.monotonic() - wd.stopped_at_s) * 1e3
            except Exception:  # keep polling: the next period tries again
                log.exception("damping write failed")
        if state != before:
            proc.health.ready(f"{state}: {wd.reason}")
            if state == "damping":
                log.warning("%s (first damping %.0f ms after control's last LowCmd)", wd.reason, reaction_ms)
            else:
                log.info("%s%s", wd.reason, f" ({sent} damping commands sent so far)" if before == "damping" else "")
        if state != before or now - last_status_s >= 0.1:
            last_status_s = now
            status_pub.publish(
                WatchdogState(
                    state=state,
                    reason=wd.reason,
                    control_age_ms=-1.0 if last_cmd is None else (now - last_cmd) * 1e3,
                    stops=wd.stops,
                    damping_sent=sent,
                    reaction_ms=reaction_ms,
                    realtime=realtime,
                )
            )
        if tick.late_s <= DT_CONTROL:
            notifier.watchdog(now)
    if wd.state == "damping":  # leaving while control is gone: the last command the motors keep is damping
        sent += send_damping(robot, lim, duration_s=lim.exit_damp_s)
    log.info("stopped: control's stream stopped %d times, %d damping commands sent", wd.stops, sent)
    monitor.close()
    robot.close()
    return 0


def main(argv=None) -> int:
    return process_main("watchdogd", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
