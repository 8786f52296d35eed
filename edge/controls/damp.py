"""One-shot damping for systemd's ExecStopPost=: after any stop of the control process (crash, watchdog kill,
restart), send zero-stiffness damping every 20 ms for a bounded time, then exit. Opens its own DDS participant."""
from __future__ import annotations

import logging
import time

from drivers.robot_io import JointCommand
from edge.system.process_main import process_main
from edge.common.realtime import Ratekeeper

log = logging.getLogger("damp")


def run(cfg, stop, args) -> int:
    from drivers.unitree.go2 import Go2Robot
    robot = Go2Robot(cfg.robot.dds_domain, cfg.robot.interface)
    cmd = JointCommand.damping(cfg.control.damp_kd)
    rk = Ratekeeper(0.02)
    end = time.monotonic() + args.seconds
    n = 0
    while time.monotonic() < end and not stop.is_set():
        rk.wait()
        robot.write(cmd)
        n += 1
    log.info("sent %d damping commands (kd %.1f)", n, cfg.control.damp_kd)
    robot.close()
    return 0


def main(argv=None) -> int:
    return process_main("damp", run, argv, add_args=lambda ap: ap.add_argument("--seconds", type=float, default=1.0))


if __name__ == "__main__":
    raise SystemExit(main())
