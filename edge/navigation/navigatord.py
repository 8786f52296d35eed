"""Navigator process: actionText in; velocityCommand (every tick, zero when idle), actionResult, navigatorStatus out.

Each tick takes at most navigator.max_texts_per_tick sentences (a flood waits in the socket and cannot stall the
tick); every sentence ends in a result (edge.navigation.action_queue). Ready once control's state is seen; degraded
while control is not accepting commands, and then every queued and new sentence is rejected with control's reason.
A restarted control (a new boot_id in controlState) drops the current action and the queue and holds: the robot must
never resume an action it was given before control crashed. So does a tick that starts later than
safety.command_max_age_s (the navigator itself stalled, and control has zeroed its command meanwhile).

The process is a thin shell around a pure step (NavigatorCore.step): each tick the shell gathers the step's inputs
into a NavigatorStep record (texts drained, the fresh pose and control mode, the clock), publishes that record on
navigatorStep, then runs the step and publishes its outputs. `edge replay --process navigatord` feeds recorded
NavigatorStep records to the same step and diffs the outputs against the recording.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from edge.common.config import EdgeConfig
from edge.common.realtime import Ratekeeper
from edge.msg.bus import RT_READ_BUDGET
from edge.msg.messages import ActionResult, NavigatorStatus, NavigatorStep, VelocityCommand
from edge.navigation.action_queue import ActionQueue, control_refusal
from edge.navigation.executor import Pose2D
from edge.navigation.parse import ActionParser
from edge.system.process_main import Process, process_main

log = logging.getLogger("navigatord")
LOG_RESULTS_PER_TICK = 5  # a flood of rejections is summarised, not logged line by line


@dataclass(frozen=True)
class NavigatorOutputs:
    """What one tick publishes, in order: velocityCommand, then actionResult (each), then navigatorStatus (if any)."""

    velocity: VelocityCommand
    results: list[ActionResult]
    status: NavigatorStatus | None
    control_restarted: str = ""  # why everything was dropped this tick ("" = it was not)


class NavigatorCore:
    """The navigator's pure step: one tick's inputs (a NavigatorStep) → its outputs. No I/O, no clock of its own."""

    def __init__(self, cfg: EdgeConfig):
        self.queue = ActionQueue(cfg.navigator, ActionParser(cfg.parser))
        self.status_every = max(1, round(cfg.navigator.publish_hz / 10))  # status at ~10 Hz, and on every result
        self.control_boot = ""  # controlState.boot_id last seen
        self.stall_s = cfg.safety.command_max_age_s  # a tick this late: control has zeroed our command

    def step(self, inp: NavigatorStep) -> NavigatorOutputs:
        nav = self.queue
        results: list[ActionResult] = []
        for text in inp.texts:
            results += nav.submit(text, inp.now_ns, inp.control_refusal)
        restarted = ""
        if inp.late_s > self.stall_s and (nav.current is not None or nav.queue):  # never resume on our own
            restarted = f"navigator stalled {inp.late_s * 1e3:.0f} ms"
            results += nav.hold_all(inp.now_ns, restarted)
        if inp.control_mode and inp.control_boot != self.control_boot:  # a fresh controlState from another boot
            if self.control_boot:
                restarted = f"control restarted (boot {self.control_boot} → {inp.control_boot})"
                results += nav.hold_all(inp.now_ns, "control restarted")
            self.control_boot = inp.control_boot
        pose = Pose2D(inp.x_m, inp.y_m, inp.yaw_rad) if inp.pose_fresh else None
        (vx, vy, wz), done = nav.step(inp.start_s, inp.now_ns, pose, inp.control_mode or None, inp.control_refusal)
        results += done
        velocity = VelocityCommand(
            vx_m_s=vx, vy_m_s=vy, wz_rad_s=wz, action_id=nav.current.action_id if nav.current else -1
        )
        status = nav.status() if results or inp.tick % self.status_every == 0 else None
        return NavigatorOutputs(velocity, results, status, restarted)

    def stop(self, now_ns: int) -> list[ActionResult]:
        """The process is stopping: what is running or queued ends with a `preempted` result, not silently."""
        return self.queue.hold_all(now_ns, "navigator stopping")


def run(proc: Process) -> int:
    cfg, stop, sub, pub, health = proc.cfg, proc.stop, proc.ports.sub, proc.ports.pub, proc.health
    text_sub, odom_sub, ctrl_sub = sub["actionText"], sub["odometry"], sub["controlState"]
    vel_pub, result_pub, status_pub = pub["velocityCommand"], pub["actionResult"], pub["navigatorStatus"]
    step_pub = pub["navigatorStep"]
    core = NavigatorCore(cfg)
    rk = Ratekeeper(1.0 / cfg.navigator.publish_hz)
    log.info("execution %s, NaVILA parser style %s", cfg.navigator.execution, cfg.parser.navila_style)
    health.starting("waiting for controlState")
    while not stop.is_set():
        tick = rk.wait()
        now_ns = time.monotonic_ns()
        last_ctrl = ctrl_sub.latest()
        refuse = control_refusal(cfg, last_ctrl, now_ns)
        if last_ctrl is not None:
            (health.degraded if refuse else health.ready)(refuse)
        texts = [r.msg for r in text_sub.drain(max_n=cfg.navigator.max_texts_per_tick, max_reads=RT_READ_BUDGET)]
        for t in texts[:LOG_RESULTS_PER_TICK]:
            log.info("text from %s %s/%d: %r", t.source, t.sender, t.query_id, t.text[:200])
        o = odom_sub.fresh(now_ns)
        c = ctrl_sub.fresh(now_ns)
        inp = NavigatorStep(
            tick=tick.index,
            start_s=tick.start_s,
            late_s=max(tick.late_s, 0.0),
            now_ns=now_ns,
            texts=tuple(texts),
            pose_fresh=o is not None,
            x_m=0.0 if o is None else o.msg.x_m,
            y_m=0.0 if o is None else o.msg.y_m,
            yaw_rad=0.0 if o is None else o.msg.yaw_rad,
            control_mode="" if c is None else c.msg.mode,
            control_boot="" if c is None else c.msg.boot_id,
            control_refusal=refuse,
        )
        step_pub.publish(inp)
        out = core.step(inp)
        if out.control_restarted:
            log.warning("%s: dropping all actions, holding", out.control_restarted)
        vel_pub.publish(out.velocity)
        for i, res in enumerate(out.results):
            if i < LOG_RESULTS_PER_TICK:
                log.info(
                    "%s %s: %s commanded %+.3f estimated %+.3f %s",
                    res.outcome,
                    res.kind,
                    res.text[:200],
                    res.commanded,
                    res.estimated,
                    res.reason,
                )
            result_pub.publish(res)
        if len(out.results) > LOG_RESULTS_PER_TICK:
            log.info("… and %d more results this tick", len(out.results) - LOG_RESULTS_PER_TICK)
        if out.status is not None:
            status_pub.publish(out.status)
    for res in core.stop(time.monotonic_ns()):  # after the last step record: replay compares up to the tick before
        result_pub.publish(res)
    return 0


def main(argv=None) -> int:
    return process_main("navigatord", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
