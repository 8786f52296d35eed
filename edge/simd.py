"""Simulator process: MuJoCo Go2 in real time, subscribing rt/lowcmd and publishing rt/lowstate over DDS exactly
as the robot does. PD torques are recomputed at every physics step from the newest command. Ground truth goes to
the simTruth topic for reports only."""
from __future__ import annotations

import logging

import os
import threading

from edge.bus import Bus
from edge.launcher import process_main
from edge.messages import SimTruth
from edge.realtime import Ratekeeper

log = logging.getLogger("sim")


class CameraThread(threading.Thread):
    """Renders the head camera at `hz` on a private copy of the simulator state and publishes cameraFrame.
    The physics loop only holds the lock while the pose is copied."""

    def __init__(self, sim, lock: threading.Lock, bus: Bus, hz: float, width: int, height: int,
                 stop: threading.Event):
        super().__init__(name="sim-camera", daemon=True)
        import mujoco
        self.sim, self.lock, self.hz, self.stop_event = sim, lock, hz, stop
        self.data = mujoco.MjData(sim.model)
        self.size = (width, height)
        self.pub = bus.pub("cameraFrame")
        self.frames = 0

    def run(self) -> None:
        import mujoco

        from drivers.camera import frame_to_messages
        from drivers.sim_camera import SimHeadCamera
        cam = SimHeadCamera(self.sim.model, self.data, width=self.size[0], height=self.size[1], fps=self.hz)
        rk = Ratekeeper(1.0 / self.hz)
        try:
            while not self.stop_event.is_set():
                rk.wait()
                with self.lock:
                    self.data.qpos[:] = self.sim.data.qpos
                    self.data.time = self.sim.data.time
                mujoco.mj_forward(self.sim.model, self.data)
                for header, pixels in frame_to_messages(cam.render()):
                    self.pub.publish(header, pixels)
                self.frames += 1
        finally:
            cam.close()


def run(cfg, stop, _args) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")          # headless rendering; must precede the mujoco import
    from drivers.go2_mujoco import Go2Sim
    from drivers.unitree_go2 import Go2SimEndpoint
    s = cfg.sim
    sim = Go2Sim(physics_dt=s.physics_dt, landmarks=s.landmarks, start=s.start)
    endpoint = Go2SimEndpoint(cfg.robot.dds_domain, cfg.robot.interface)
    bus = Bus(cfg.bus.run_dir, cfg.bus.tcp)
    truth_pub = bus.pub("simTruth")
    lock = threading.Lock()
    camera = None
    if s.camera_hz > 0:
        camera = CameraThread(sim, lock, bus, s.camera_hz, s.camera_width, s.camera_height, stop)
        camera.start()
    rk = Ratekeeper(s.physics_dt * s.state_every_steps)
    truth_every = max(1, round(1.0 / (s.truth_hz * rk.period)))
    log.info("physics dt %.4f s, LowState at %.0f Hz, domain %d on %s", s.physics_dt, 1 / rk.period,
             cfg.robot.dds_domain, cfg.robot.interface)
    n = 0
    while not stop.is_set():
        rk.wait()
        latest = endpoint.latest_command()
        if latest is not None:
            sim.set_command(latest[0])
        with lock:
            sim.step(s.state_every_steps)
        st = sim.state()
        endpoint.publish_state(q=st.q, dq=st.dq, tau=st.tau, quat_wxyz=st.quat_wxyz, gyro=st.gyro, accel=st.accel,
                               foot_force=st.foot_force, tick=st.tick)
        n += 1
        if n % truth_every == 0:
            x, y, z, roll, pitch, yaw = sim.truth()
            truth_pub.publish(SimTruth(sim_time_s=st.sim_time, x_m=x, y_m=y, z_m=z, roll_rad=roll,
                                       pitch_rad=pitch, yaw_rad=yaw, fallen=sim.fallen()))
    if camera is not None:
        camera.join(2.0)
    log.info("stopped: %d state messages, %d deadlines missed, %d camera frames", n, rk.missed,
             0 if camera is None else camera.frames)
    return 0


def main(argv=None) -> int:
    return process_main("sim", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
