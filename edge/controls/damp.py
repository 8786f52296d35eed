"""One-shot damping for systemd's ExecStopPost=: after any stop of controlsd (crash, watchdog kill, restart), damp
for safety.stop_post_damp_s (or --seconds) with the one damping routine (edge.controls.safety.send_damping), then
exit. Opens its own DDS participant."""

from __future__ import annotations

import logging

from drivers.unitree.go2 import Go2Robot
from edge.controls.safety import send_damping
from edge.system.process_main import Process, process_main

log = logging.getLogger("damp")


def run(proc: Process) -> int:
    cfg, stop, args = proc.cfg, proc.stop, proc.args
    robot = Go2Robot(cfg.robot.dds_domain, cfg.robot.interface, lowstate=False)
    seconds = cfg.safety.stop_post_damp_s if args.seconds is None else args.seconds
    n = send_damping(robot, cfg.safety, duration_s=seconds, stop=stop)
    log.info("sent %d damping commands (kd %.1f)", n, cfg.safety.damp_kd)
    robot.close()
    return 0


def main(argv=None) -> int:
    return process_main(
        "damp",
        run,
        argv,
        add_args=lambda ap: ap.add_argument(
            "--seconds", type=float, default=None, help="default: safety.stop_post_damp_s of the config"
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())
