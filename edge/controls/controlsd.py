"""The 50 Hz control process: LowState + velocity command → LowCmd, through the safety state machine.

Nothing here blocks: the newest state and command are read without waiting, their ages checked on the monotonic
clock. Any exception inside a tick ends in damping, sent every cycle; the loop itself keeps running. A tick that starts
late beyond safety.max_tick_lateness_s is a lag event (logged with its numbers, counted in controlState; walk → hold);
the systemd watchdog is fed on every on-time tick, so pings resume with the first one after a stall.

Start-up: one commander per robot (edge.controls.commander: locks, then a probe of rt/lowcmd after releasing sport
mode), waiting (bounded) for the robot's network interface. Every start publishes a new boot_id in controlState, so the
navigator can tell a restarted control and drop what it was doing.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import numpy as np

from drivers.go2.remote import ESTOP_COMBO
from drivers.robot_io import RobotIO
from drivers.unitree.go2 import Go2Robot, dds_init, release_sport_mode
from edge.common.config import EdgeConfig
from edge.common.realtime import DT_CONTROL, Ratekeeper, freeze_gc, scheduling
from edge.common.sdnotify import Notifier
from edge.controls.commander import CommanderConflict, acquire_stack_lock, check_sole_commander
from edge.controls.controller import Controller
from edge.controls.locomotion import Policy, load_policy_config
from edge.controls.odometry import LegOdometry, leg_odometry
from edge.controls.safety import damping, send_damping
from edge.msg.bus import RT_READ_BUDGET, Ports
from edge.msg.messages import ControlState, Odometry
from edge.system.health import Health
from edge.system.process_main import Process, process_main

log = logging.getLogger("controlsd")


def control_loop(
    robot: RobotIO,
    ctrl: Controller,
    odom: LegOdometry,
    ports: Ports,
    cfg: EdgeConfig,
    stop: threading.Event,
    notifier: Notifier | None = None,
    health: Health | None = None,
) -> Ratekeeper:
    """Tick every DT_CONTROL until stop is set, then damp for safety.exit_damp_s. Returns the rate keeper (ticks,
    missed deadlines). `robot` is any RobotIO: the Go2 over DDS here, a typed fake in tests. health: ready with the
    mode as reason, degraded while damping."""
    vel_sub, estop_sub, op_sub = ports.sub["velocityCommand"], ports.sub["estop"], ports.sub["operatorCommand"]
    state_pub, odom_pub, wd_sub = ports.pub["controlState"], ports.pub["odometry"], ports.sub["watchdogState"]
    rk = Ratekeeper(DT_CONTROL)
    boot_id, realtime = uuid.uuid4().hex[:12], scheduling()
    estop, estop_source, last_tick, work_ms, last_mode = False, "", -1, 0.0, ""
    watchdog_seen, watchdog_gone, was_gone = False, False, False
    while not stop.is_set():
        tick = rk.wait()
        try:
            for r in estop_sub.drain(max_n=8, max_reads=RT_READ_BUDGET):
                estop, estop_source = True, estop_source or f"operator: {r.msg.reason}"
            if robot.remote_estop_latched and not estop:  # the driver saw the remote's e-stop (and damps already)
                estop, estop_source = True, "remote " + "+".join(ESTOP_COMBO)
            # a stand confirmation counts for the tick it arrives in: one refused (robot tilted, no state) is gone
            stand = cfg.control.auto_stand or any(
                r.msg.command == "stand" for r in op_sub.drain(max_n=8, max_reads=RT_READ_BUDGET)
            )
            v = vel_sub.fresh(max_age_s=cfg.safety.command_max_age_s)
            velocity = None if v is None else np.array([v.msg.vx_m_s, v.msg.vy_m_s, v.msg.wz_rad_s])
            state = robot.latest_state()
            lag_before = ctrl.sm.lag_events
            res = ctrl.tick(
                tick.start_s,
                state,
                velocity,
                estop,
                stand,
                estop_source=estop_source,
                lateness_s=tick.late_s,
                send_gap_s=tick.period_s,
            )
            if tick.index:  # tick 0 writes at its end (below)
                robot.write(res.command)
            if ctrl.sm.lag_events != lag_before:
                log.warning(
                    "lag: tick %d started %.1f ms after its deadline (%d deadlines skipped, bound %.0f ms), mode %s",
                    tick.index,
                    tick.late_s * 1e3,
                    tick.skipped,
                    cfg.safety.max_tick_lateness_s * 1e3,
                    res.mode,
                )
            if state is not None and state.tick != last_tick:
                last_tick = state.tick
                o = odom.update(state)
                odom_pub.publish(
                    Odometry(
                        x_m=o.x, y_m=o.y, yaw_rad=o.yaw, vx_m_s=o.vx, vy_m_s=o.vy, wz_rad_s=o.wz, stance=tuple(o.stance)
                    )
                )
            # the LowCmd watchdog heard once and silent since (killed, hung): control goes on, reported degraded
            heard = wd_sub.fresh() is not None
            watchdog_seen = watchdog_seen or heard
            watchdog_gone = watchdog_seen and not heard
            if res.mode != last_mode or watchdog_gone != was_gone:
                if res.mode != last_mode:
                    log.info("mode %s: %s", res.mode, res.reason)
                if watchdog_gone != was_gone:
                    (log.warning if watchdog_gone else log.info)(
                        "LowCmd watchdog %s", "silent: no damping if control stops" if watchdog_gone else "back"
                    )
                last_mode, was_gone = res.mode, watchdog_gone
                if health is not None:
                    if res.mode == "damp":
                        health.degraded(f"damping: {res.reason}")
                    elif watchdog_gone:
                        health.degraded(f"{res.mode}: no LowCmd watchdog (watchdogState silent)")
                    else:
                        health.ready(f"{res.mode}: {res.reason}")
            state_pub.publish(
                ControlState(
                    mode=res.mode,
                    reason=res.reason,
                    tick=tick.index,
                    missed_ticks=tick.missed,
                    period_ms=tick.period_s * 1e3,
                    lateness_ms=tick.lateness_s * 1e3,
                    work_ms=work_ms,
                    vx_m_s=res.velocity[0],
                    vy_m_s=res.velocity[1],
                    wz_rad_s=res.velocity[2],
                    roll_rad=res.roll,
                    pitch_rad=res.pitch,
                    lowstate_age_ms=-1.0 if state is None else (tick.start_s - state.recv_mono_s) * 1e3,
                    boot_id=boot_id,
                    lag_events=ctrl.sm.lag_events,
                    last_lag_ms=ctrl.sm.last_lag_s * 1e3,
                    remote="+".join(sorted(res.remote)),
                    realtime=realtime,
                )
            )
            if tick.index == 0:
                # The first tick's one-time costs (first log lines, readiness, serialisations, BLAS buffers: 12 ms
                # quiet, ≈ 150 ms under load, docs/results.md) are paid before control's first LowCmd: the LowCmd
                # watchdog starts watching at that one, and the schedule is rebased after it (below).
                robot.write(res.command)
        except Exception:  # defined safe state, whatever went wrong
            log.exception("control tick failed: damping")
            try:
                robot.write(ctrl.damp_now("exception in control tick", tick.start_s))
            except Exception:  # keep looping: the next tick sends damping again
                log.exception("damping write failed")
        if notifier is not None and tick.late_s <= cfg.safety.max_tick_lateness_s:
            notifier.watchdog(tick.start_s)  # on time: pings resume with the first on-time tick after a stall
        work_ms = (time.monotonic() - tick.start_s) * 1e3
        if tick.index == 0:  # its one-time costs are no lag: the schedule starts after them
            rk.rebase()
    send_damping(robot, cfg.safety, duration_s=cfg.safety.exit_damp_s)  # leaving (ExecStopPost damps too)
    return rk


def policy_backend(backend: str, placement: str) -> str:
    """control.backend, or for "auto" the backend `make jetson-check` measured as the lower p99 while the VLM
    prefills (its placement.json); ONNX Runtime when nothing was measured."""
    if backend != "auto":
        return backend
    import json

    from edge.common.config import resolve_path

    path = resolve_path(placement)
    try:
        chosen = json.loads(path.read_text())["backend"]
    except (OSError, ValueError, KeyError) as e:
        log.warning("policy placement %s unreadable (%s): ONNX Runtime", path, e)
        return "onnxruntime"
    if chosen not in ("onnxruntime", "tensorrt"):
        log.warning("policy placement %s names %r: ONNX Runtime", path, chosen)
        return "onnxruntime"
    log.info("policy placement %s: %s", path, chosen)
    return chosen


def run(proc: Process) -> int:
    cfg = proc.cfg
    proc.health.loading(f"policy ({cfg.control.backend})")
    pcfg = load_policy_config(cfg.control.policy)  # bounds first: a refused config never opens DDS
    from calibration.store import CalibrationError, StateCorrection
    from edge.controls.calibrated import CalibratedRobot, load_for_control

    try:
        cal = load_for_control(cfg.calibration, cfg.profile)  # a config too: refused before DDS opens
    except CalibrationError as e:
        log.error("%s", e)
        return 1
    backend = policy_backend(cfg.control.backend, cfg.control.placement)
    ctrl = Controller(control=cfg.control, safety=cfg.safety, policy=Policy(pcfg, backend=backend))
    ctrl.policy.warm_up()  # its first-run costs now, not in the stand-up's first tick
    try:
        proc.health.loading("stack lock, DDS participant, rt/lowcmd probe")
        lock = acquire_stack_lock(cfg, "controlsd")
        dds_init(cfg.robot.dds_domain, cfg.robot.interface, cfg.robot.interface_wait_s)
        if cfg.robot.release_sport_mode:
            release_sport_mode()  # first: with sport mode on, the robot's own controller writes rt/lowcmd
        check_sole_commander(cfg)
    except CommanderConflict as e:
        proc.health.failed(f"refusing to start: {e}")
        return 3
    except RuntimeError as e:  # the robot's network interface never came up within robot.interface_wait_s
        proc.health.failed(str(e))
        return 4
    robot: RobotIO = Go2Robot(
        cfg.robot.dds_domain, cfg.robot.interface, remote_estop=(ESTOP_COMBO, damping(cfg.safety))
    )
    if cal is not None:
        robot = CalibratedRobot(robot, StateCorrection(cal))
    notifier = Notifier()
    log.info("policy %s (%s), %.0f Hz, auto_stand=%s", pcfg.name, backend, pcfg.rate_hz, cfg.control.auto_stand)
    freeze_gc()
    rk = control_loop(robot, ctrl, leg_odometry(cfg), proc.ports, cfg, proc.stop, notifier, proc.health)
    log.info("stopped after %d ticks, %d missed, %d lag events", rk.index + 1, rk.missed, ctrl.sm.lag_events)
    robot.close()
    lock.close()
    return 0


def main(argv=None) -> int:
    return process_main("controlsd", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
