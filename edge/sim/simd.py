"""Simulator process: MuJoCo Go2 in real time, subscribing rt/lowcmd and publishing rt/lowstate over DDS exactly
as the robot does. PD torques are recomputed at every physics step from the newest command, and the last command keeps
acting when the LowCmd stream stops, as the Go2's motor boards do (docs/go2.md §11): only the LowCmd watchdog damps.
Wireless-remote presses arrive on the sim-only simRemote topic (`edge remote L2+B`) and go into
LowState.wireless_remote for their hold time. Ground truth goes to the simTruth topic, for reports and for the
head-camera renderer (edge.sim.simcamd, a separate process so rendering never delays physics), never for control."""

from __future__ import annotations

import logging
import time

from drivers.go2.remote import REMOTE_BYTES, RemoteError, encode_remote
from edge.common.realtime import Ratekeeper, scheduling
from edge.msg.bus import RT_READ_BUDGET
from edge.msg.messages import SimTruth
from edge.system.process_main import Process, process_main

log = logging.getLogger("simd")


def run(proc: Process) -> int:
    cfg, stop = proc.cfg, proc.stop
    from drivers.sim.go2_physics import Go2Sim
    from drivers.sim.nav_world import scene_spec
    from drivers.unitree.go2 import Go2SimEndpoint

    s = cfg.sim
    proc.health.loading("MuJoCo model")
    sim = Go2Sim(
        physics_dt=s.physics_dt,
        start=s.start,
        spec=scene_spec(s.physics_dt, s.landmarks, s.nav_layout),
        start_pose=s.start_pose,
    )
    proc.health.loading("DDS participant")
    endpoint = Go2SimEndpoint(cfg.robot.dds_domain, cfg.robot.interface)
    truth_pub, remote_sub = proc.ports.pub["simTruth"], proc.ports.sub["simRemote"]
    realtime = scheduling()
    remote, remote_keys, remote_until = bytes(REMOTE_BYTES), "", 0.0
    rk = Ratekeeper(s.physics_dt * s.state_every_steps)
    truth_every = max(1, round(1.0 / (s.truth_hz * rk.period)))
    log.info(
        "physics dt %.4f s, LowState at %.0f Hz, domain %d on %s",
        s.physics_dt,
        1 / rk.period,
        cfg.robot.dds_domain,
        cfg.robot.interface,
    )
    n = 0
    while not stop.is_set():
        rk.wait()
        for r in remote_sub.drain(max_n=8, max_reads=RT_READ_BUDGET):
            try:
                remote = encode_remote(r.msg.keys)
            except RemoteError as e:
                log.warning("simRemote: %s", e)
                continue
            remote_keys, remote_until = "+".join(r.msg.keys), time.monotonic() + r.msg.hold_s
            log.info("remote: holding %s for %.2f s", remote_keys, r.msg.hold_s)
        if remote_keys and time.monotonic() >= remote_until:
            remote, remote_keys = bytes(REMOTE_BYTES), ""
        latest = endpoint.latest_command()
        if latest is not None:
            sim.set_command(latest[0])
        sim.step(s.state_every_steps)
        st = sim.state()
        endpoint.publish_state(
            q=st.q,
            dq=st.dq,
            tau=st.tau,
            quat_wxyz=st.quat_wxyz,
            gyro=st.gyro,
            accel=st.accel,
            foot_force=st.foot_force,
            tick=st.tick,
            wireless_remote=remote,
        )
        n += 1
        if n == 1:
            proc.health.ready(f"LowState at {1 / rk.period:.0f} Hz on DDS domain {cfg.robot.dds_domain}")
        if n % truth_every == 0:
            x, y, z, roll, pitch, yaw = sim.truth()
            truth_pub.publish(
                SimTruth(
                    sim_time_s=st.sim_time,
                    x_m=x,
                    y_m=y,
                    z_m=z,
                    roll_rad=roll,
                    pitch_rad=pitch,
                    yaw_rad=yaw,
                    fallen=sim.fallen(),
                    qpos=tuple(sim.data.qpos.tolist()),
                    remote=remote_keys,
                    realtime=realtime,
                )
            )
    log.info("stopped: %d state messages, %d deadlines missed", n, rk.missed)
    return 0


def main(argv=None) -> int:
    return process_main("simd", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
