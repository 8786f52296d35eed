"""The simulator's head camera: MuJoCo offscreen render of the Go2 scene (Mesa EGL / OSMesa, no GPU needed)."""

from __future__ import annotations

import importlib
import math
import os
import sys

if not os.environ.get("MUJOCO_GL") and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"
    # mujoco reads MUJOCO_GL once, on first import; re-read it if an earlier test module imported mujoco already.
    if "mujoco.rendering.classic.gl_context" in sys.modules:
        importlib.reload(sys.modules["mujoco.rendering.classic.gl_context"])

import mujoco
import numpy as np
import pytest

from drivers.sim.go2_physics import HEAD_CAM, Go2Sim
from drivers.sim.head_camera import SimHeadCamera, intrinsics_from_fovy
from edge.camera.frames import frame_to_messages

W, H = 160, 120


@pytest.fixture(scope="module")
def sim():
    return Go2Sim(start="standing")


@pytest.fixture
def cam(sim):
    mujoco.mj_resetDataKeyframe(sim.model, sim.data, mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_KEY, "home"))
    mujoco.mj_forward(sim.model, sim.data)
    c = SimHeadCamera(sim.model, sim.data, width=W, height=H, depth=True)
    yield c
    c.close()


def set_yaw(sim, yaw):
    sim.data.qpos[3:7] = [math.cos(yaw / 2), 0, 0, math.sin(yaw / 2)]
    mujoco.mj_forward(sim.model, sim.data)


def test_frame_shape_dtype_and_not_blank(cam):
    f = cam.render()
    assert f.color.shape == (H, W, 3) and f.color.dtype == np.uint8
    assert f.depth.shape == (H, W) and f.depth.dtype == np.uint16
    assert f.color.std() > 20  # not a flat image
    floor = f.color[-H // 4 :]  # lower quarter: the checker floor
    assert floor.mean() > 40 and len(np.unique(floor.reshape(-1, 3), axis=0)) > 5
    # the red sofa (3, 1) is ahead-left and the blue lamp (2, −1.5) ahead-right
    r, g, b = (f.color[..., k].astype(int) for k in range(3))
    red, blue = (r > 120) & (g < 60) & (b < 60), (b > 120) & (r < 60) & (g < 80)
    assert red[:, : W // 2].sum() > 50 and blue[:, W // 2 :].sum() > 20


def test_yaw_changes_the_view(sim, cam):
    a = cam.render().color.astype(int)
    set_yaw(sim, math.radians(40))
    b = cam.render().color.astype(int)
    assert np.abs(a - b).mean() > 10
    r, g, b_ = (b[..., k] for k in range(3))
    yellow = (r > 90) & (g > 80) & (b_ < 50)  # the table (0.5, 2) comes into view on the left
    assert yellow[:, : W // 2].sum() > 50


def test_intrinsics_from_fovy(sim, cam):
    fovy = math.radians(sim.model.cam_fovy[cam.cam_id])
    f = cam.render()
    assert f.intrinsics == intrinsics_from_fovy(W, H, math.degrees(fovy))
    assert f.intrinsics.fx == pytest.approx((H / 2) / math.tan(fovy / 2))
    assert (f.intrinsics.cx, f.intrinsics.cy) == (W / 2, H / 2)
    hfov = 2 * math.degrees(math.atan((W / 2) / f.intrinsics.fx))
    assert hfov == pytest.approx(HEAD_CAM["hfov_deg"], abs=0.5)  # wide, as the VLN models were trained


def test_depth_in_millimetres(sim, cam):
    f = cam.render()
    assert f.depth_scale_m == 0.001
    floor = f.depth[-1, W // 2]  # bottom centre: floor close ahead
    assert 300 < floor < 2000
    assert (f.depth == 0).any() and f.depth[:5].max() == 0  # sky: nothing hit → 0 (no data), as RealSense
    z16, rgb = frame_to_messages(f)
    assert (z16[0].encoding, rgb[0].encoding) == ("z16", "rgb8") and z16[0].frame_id == rgb[0].frame_id
    assert len(z16[1]) == z16[0].payload_size() and len(rgb[1]) == rgb[0].payload_size()


def test_frame_ids_and_sim_time(sim, cam):
    f0 = cam.render()
    sim.data.time += 0.2
    f1 = cam.render()
    assert f1.frame_id == f0.frame_id + 1
    assert f1.sensor_time_ns - f0.sensor_time_ns == pytest.approx(0.2e9, abs=1)


def test_resolution_beyond_offscreen_buffer_is_refused(sim):
    with pytest.raises(ValueError, match="offscreen"):
        SimHeadCamera(sim.model, sim.data, width=4096, height=3072)
