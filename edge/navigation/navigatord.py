"""Navigator process: actionText in; velocityCommand (every tick, zero when idle), actionResult, navigatorStatus out.

A restarted control (a new boot_id in controlState) drops the current action and the queue and holds: the robot must
never resume an action it was given before control crashed."""

from __future__ import annotations

import logging
import time

from edge.common.realtime import Ratekeeper
from edge.msg.messages import VelocityCommand
from edge.navigation.action_queue import ActionQueue
from edge.navigation.executor import Pose2D
from edge.navigation.parse import ActionParser
from edge.system.process_main import Process, process_main

log = logging.getLogger("navigatord")


def run(proc: Process) -> int:
    cfg, stop, sub, pub = proc.cfg, proc.stop, proc.ports.sub, proc.ports.pub
    text_sub, odom_sub, ctrl_sub = sub["actionText"], sub["odometry"], sub["controlState"]
    vel_pub, result_pub, status_pub = pub["velocityCommand"], pub["actionResult"], pub["navigatorStatus"]
    nav = ActionQueue(cfg.navigator, ActionParser(cfg.parser))
    rk = Ratekeeper(1.0 / cfg.navigator.publish_hz)
    status_every = max(1, round(cfg.navigator.publish_hz / 10))
    log.info("execution %s, NaVILA parser style %s", cfg.navigator.execution, cfg.parser.navila_style)
    control_boot = ""
    while not stop.is_set():
        tick = rk.wait()
        now_ns = time.monotonic_ns()
        results = []
        for r in text_sub.drain():
            log.info("text from %s: %r", r.msg.source, r.msg.text)
            results += nav.submit(r.msg, now_ns)
        o = odom_sub.fresh(now_ns)
        c = ctrl_sub.fresh(now_ns)
        if c is not None and c.msg.boot_id != control_boot:
            if control_boot:
                log.warning(
                    "control restarted (boot %s → %s): dropping all actions, holding", control_boot, c.msg.boot_id
                )
                results += nav.hold_all(now_ns, "control restarted")
            control_boot = c.msg.boot_id
        pose = None if o is None else Pose2D(o.msg.x_m, o.msg.y_m, o.msg.yaw_rad)
        (vx, vy, wz), done = nav.step(tick.start_s, now_ns, pose, None if c is None else c.msg.mode)
        results += done
        vel_pub.publish(
            VelocityCommand(vx_m_s=vx, vy_m_s=vy, wz_rad_s=wz, action_id=nav.current.action_id if nav.current else -1)
        )
        for res in results:
            log.info(
                "%s %s: %s commanded %+.3f estimated %+.3f %s",
                res.outcome,
                res.kind,
                res.text,
                res.commanded,
                res.estimated,
                res.reason,
            )
            result_pub.publish(res)
        if results or tick.index % status_every == 0:
            status_pub.publish(nav.status())
    return 0


def main(argv=None) -> int:
    return process_main("navigatord", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
