"""Simulator process: MuJoCo Go2 in real time, subscribing rt/lowcmd and publishing rt/lowstate over DDS exactly
as the robot does. PD torques are recomputed at every physics step from the newest command. Ground truth goes to
the simTruth topic, for reports and for the head-camera renderer (edge.sim.simcamd, a separate process so rendering
never delays physics), never for control."""

from __future__ import annotations

import logging

from edge.common.realtime import Ratekeeper
from edge.msg.messages import SimTruth
from edge.system.process_main import Process, process_main

log = logging.getLogger("simd")


def run(proc: Process) -> int:
    cfg, stop = proc.cfg, proc.stop
    from drivers.sim.go2_physics import Go2Sim
    from drivers.unitree.go2 import Go2SimEndpoint

    s = cfg.sim
    sim = Go2Sim(physics_dt=s.physics_dt, landmarks=s.landmarks, start=s.start)
    endpoint = Go2SimEndpoint(cfg.robot.dds_domain, cfg.robot.interface)
    truth_pub = proc.ports.pub["simTruth"]
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
        )
        n += 1
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
                )
            )
    log.info("stopped: %d state messages, %d deadlines missed", n, rk.missed)
    return 0


def main(argv=None) -> int:
    return process_main("simd", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
