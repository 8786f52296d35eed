"""Head-camera frames of a kinematically placed Go2 in a navigation layout.

The robot is put in its standing pose ("home" keyframe joints) at a base pose (x, y, yaw) with a small random
height / roll / pitch jitter that matches what the simulated Go2 shows while walking under the locomotion policy
(measured from simTruth in `make demo` runs: base z 0.297 ± 0.01 m, roll ±4°, pitch −1° ± 2.5°, 1st–99th pct),
and rendered by drivers.sim.head_camera.SimHeadCamera — the stack's camera path (same MJCF, camera mount, intrinsics,
320×240, render flags). Only geom group 0 (the world) is drawn: the robot's own meshes (groups 2/3, 190k vertices)
are never in the head camera's view, and hiding them halves the software-rendering time (frames equal to ≤ 1 grey
level, tests/unit/test_nav_dataset.py). Optional per-pixel class labels and depth for auxiliary vision training.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")  # headless; must precede the first mujoco import

import mujoco  # noqa: E402

from drivers.sim.head_camera import SimHeadCamera  # noqa: E402
from drivers.sim.nav_world import LANDMARK_COLOURS, Layout, build_world_spec  # noqa: E402
from edge.common.config import SimConfig  # noqa: E402

_SIM = SimConfig()
WIDTH, HEIGHT = _SIM.camera_width, _SIM.camera_height  # the stack's sim camera size (simcamd renders at these)
BASE_Z_M, BASE_Z_SD = 0.297, 0.008
ROLL_SD, PITCH_MEAN, PITCH_SD = math.radians(1.8), math.radians(-1.0), math.radians(1.2)
CLS_NONE, CLS_FLOOR, CLS_WALL, CLS_DOOR, CLS_LANDMARK0 = 0, 1, 2, 3, 4  # per-pixel classes; landmarks by colour
N_CLASSES = CLS_LANDMARK0 + len(LANDMARK_COLOURS)


def rpy_to_quat(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """ZYX Euler → unit quaternion (w, x, y, z); the inverse of drivers.geometry.quat_to_rpy."""
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return np.array(
        [
            cr * cp * cy + sr * sp * sy,
            sr * cp * cy - cr * sp * sy,
            cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy,
        ]
    )


@dataclass(frozen=True)
class Pose:
    x: float
    y: float
    yaw: float


def walking_jitter(rng: np.random.Generator) -> tuple[float, float, float]:
    """(z, roll, pitch) of the base, drawn like the walking Go2's."""
    return (
        float(rng.normal(BASE_Z_M, BASE_Z_SD)),
        float(rng.normal(0.0, ROLL_SD)),
        float(rng.normal(PITCH_MEAN, PITCH_SD)),
    )


class LayoutRenderer:
    """One compiled scene per layout; `render` places the robot and returns the head-camera RGB (H×W×3 uint8)."""

    def __init__(self, layout: Layout, width: int = WIDTH, height: int = HEIGHT):
        self.layout = layout
        self.model = build_world_spec(layout).compile()
        self.data = mujoco.MjData(self.model)
        m = self.model
        mujoco.mj_resetDataKeyframe(m, self.data, mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_KEY, "home"))
        self.cam = SimHeadCamera(self.model, self.data, width=width, height=height)
        self.scene_option = mujoco.MjvOption()
        for g in range(1, len(self.scene_option.geomgroup)):
            self.scene_option.geomgroup[g] = 0
        self.geom_class = np.zeros(m.ngeom + 1, np.int64)  # index geom id + 1 (−1 = nothing → 0)
        for g in range(m.ngeom):
            name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g) or ""
            if name == "floor":
                self.geom_class[g + 1] = CLS_FLOOR
            elif name.startswith("wall_"):
                self.geom_class[g + 1] = CLS_WALL
            elif name.startswith("door_"):
                self.geom_class[g + 1] = CLS_DOOR
            elif name.startswith("lm_"):
                self.geom_class[g + 1] = CLS_LANDMARK0 + list(LANDMARK_COLOURS).index(name[3:].split("_")[0])

    def place(self, pose: Pose, jitter: tuple[float, float, float] | None = None) -> None:
        z, roll, pitch = jitter if jitter is not None else (BASE_Z_M, 0.0, PITCH_MEAN)
        d = self.data
        d.qpos[0:3] = (pose.x, pose.y, z)
        d.qpos[3:7] = rpy_to_quat(roll, pitch, pose.yaw)
        mujoco.mj_kinematics(self.model, d)
        mujoco.mj_camlight(self.model, d)

    def render(
        self, pose: Pose, jitter: tuple[float, float, float] | None = None, world_only: bool = True
    ) -> np.ndarray:
        """H×W×3 uint8 RGB; world_only=False draws every geom exactly as SimHeadCamera.render (the stack)."""
        self.place(pose, jitter)
        if not world_only:
            return self.cam.render().color
        r = self.cam.renderer
        r.update_scene(self.data, camera=self.cam.cam_id, scene_option=self.scene_option)
        return r.render()

    def render_labels(self) -> tuple[np.ndarray, np.ndarray]:
        """(class H×W int64, depth H×W float32 m) of the current placement (call after `render`/`place`)."""
        r = self.cam.renderer
        r.update_scene(self.data, camera=self.cam.cam_id, scene_option=self.scene_option)
        r.enable_segmentation_rendering()
        try:
            seg = r.render()[..., 0]
        finally:
            r.disable_segmentation_rendering()
        r.enable_depth_rendering()
        try:
            depth = r.render().astype(np.float32)
        finally:
            r.disable_depth_rendering()
        return self.geom_class[seg + 1], depth

    def close(self) -> None:
        self.cam.close()

    def __enter__(self) -> LayoutRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
