"""Simulated head camera: renders the simulator's scene from the newest simTruth pose and publishes cameraFrame
(the same messages as the RealSense process). A process of its own: software rendering takes tens of milliseconds
a frame and, inside the simulator, would hold up the physics loop and the LowState stream."""

from __future__ import annotations

import logging
import os

from edge.common.realtime import Ratekeeper
from edge.system.process_main import Process, process_main

log = logging.getLogger("simcamd")


def run(proc: Process) -> int:
    s, stop = proc.cfg.sim, proc.stop
    if s.camera_hz <= 0:
        proc.health.ready("camera off (sim.camera_hz = 0)")
        stop.wait()
        return 0
    proc.health.loading("MuJoCo renderer")
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; must precede the mujoco import
    import mujoco

    from drivers.sim.head_camera import SimHeadCamera
    from drivers.sim.nav_world import scene_spec
    from edge.camera.frames import frame_to_messages

    model = scene_spec(s.physics_dt, s.landmarks, s.nav_layout).compile()
    data = mujoco.MjData(model)
    truth, pub = proc.ports.sub["simTruth"], proc.ports.pub["cameraFrame"]
    cam = SimHeadCamera(model, data, width=s.camera_width, height=s.camera_height)
    rk = Ratekeeper(1.0 / s.camera_hz)
    frames, last_seq = 0, -1
    proc.health.ready(f"head camera {s.camera_width}x{s.camera_height} at {s.camera_hz:g} Hz")
    try:
        while not stop.is_set():
            rk.wait()
            t = truth.fresh()
            if t is None or t.seq == last_seq or len(t.msg.qpos) != model.nq:
                continue  # no new pose: no new frame
            last_seq = t.seq
            data.qpos[:] = t.msg.qpos
            data.time = t.msg.sim_time_s
            mujoco.mj_forward(model, data)
            for header, pixels in frame_to_messages(cam.render()):
                pub.publish(header, pixels)
            frames += 1
    finally:
        cam.close()
        log.info("stopped after %d frames, %d deadlines missed", frames, rk.missed)
    return 0


def main(argv=None) -> int:
    return process_main("simcamd", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
