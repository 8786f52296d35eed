"""The simulated Go2's head camera: MuJoCo offscreen render of camera `head_cam` into the same Frame as a RealSense.

Shadows, reflections and the skybox are off: software (Mesa) rendering is geometry-bound and they cost ≈3–4× in
frame rate (docs/design.md, Simulator camera). Set MUJOCO_GL=egl or osmesa before importing mujoco when headless.
"""

from __future__ import annotations

import math
import time

import mujoco
import numpy as np

from drivers.camera import DEPTH_BUS_SCALE_M, Frame, Intrinsics

CAMERA_NAME = "head_cam"  # drivers.sim.go2_physics.HEAD_CAM["name"]


def intrinsics_from_fovy(width: int, height: int, fovy_deg: float) -> Intrinsics:
    """Pinhole intrinsics of a MuJoCo camera (fovy is vertical; square pixels)."""
    f = (height / 2) / math.tan(math.radians(fovy_deg) / 2)
    return Intrinsics(width=width, height=height, fx=f, fy=f, cx=width / 2, cy=height / 2)


class SimHeadCamera:
    """Renders `camera` of (model, data) on demand. Call from the thread that owns `data` (the simulator loop)."""

    def __init__(
        self,
        model: mujoco.MjModel,
        data: mujoco.MjData,
        width: int = 320,
        height: int = 240,
        depth: bool = False,
        camera: str = CAMERA_NAME,
    ):
        self.model, self.data, self.depth = model, data, depth
        self.cam_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        if self.cam_id < 0:
            raise ValueError(f"model has no camera {camera!r}")
        g = model.vis.global_
        if width > g.offwidth or height > g.offheight:  # the offscreen buffer size is fixed in the model
            raise ValueError(f"{width}x{height} exceeds the model's offscreen buffer {g.offwidth}x{g.offheight}")
        self._far_m = model.vis.map.zfar * model.stat.extent  # nothing hit: the far clipping plane
        self.intrinsics = intrinsics_from_fovy(width, height, float(model.cam_fovy[self.cam_id]))
        self.renderer = mujoco.Renderer(model, height=height, width=width)
        for flag in (
            mujoco.mjtRndFlag.mjRND_SHADOW,
            mujoco.mjtRndFlag.mjRND_REFLECTION,
            mujoco.mjtRndFlag.mjRND_SKYBOX,
        ):
            self.renderer.scene.flags[flag] = False  # kept across renders (Renderer restores its flags)
        self.frame_id = 0

    def render(self) -> Frame:
        """Render the current state of `data`. sensor_time_ns is the simulation time."""
        r = self.renderer
        r.update_scene(self.data, camera=self.cam_id)
        color = r.render()
        depth = None
        if self.depth:
            r.enable_depth_rendering()
            try:
                metres = r.render()
            finally:
                r.disable_depth_rendering()
            units = np.rint(metres / DEPTH_BUS_SCALE_M)
            units[(metres >= 0.999 * self._far_m) | (units > 65535) | ~np.isfinite(metres)] = 0  # 0 = no data
            depth = units.astype(np.uint16)
        frame = Frame(
            color=color,
            depth=depth,
            depth_scale_m=DEPTH_BUS_SCALE_M if self.depth else 0.0,
            intrinsics=self.intrinsics,
            frame_id=self.frame_id,
            sensor_time_ns=int(round(self.data.time * 1e9)),
            recv_mono_ns=time.monotonic_ns(),
        )
        self.frame_id += 1
        return frame

    def close(self) -> None:
        self.renderer.close()  # explicit: with OSMesa a late garbage collection prints a ctypes error at exit

    def __enter__(self) -> SimHeadCamera:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
