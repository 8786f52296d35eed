"""edge.navigation.executor against a simulated Go2 policy (measured behaviour: docs/go2.md §8), on a fake clock (no
sleeps)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from edge.navigation.executor import ActionExecutor, ExecutionResult, ExecutorParams, Pose2D, Setpoint, wrap_angle
from edge.navigation.parse import Forward, Stop, Turn

DEG = math.pi / 180
# Measured steady state of the policy: commanded vx → actual vx; wz → 1.16·wz, plus +0.1 rad/s left yaw drift.
VX_CMD = (0.0, 0.1, 0.25, 0.5, 1.0)
VX_ACT = (0.0, 0.02, 0.14, 0.43, 0.90)


class Plant:
    """First-order lag (tau) towards the policy's biased steady state; integrates the robot's own pose estimate."""

    def __init__(self, x=0.0, y=0.0, yaw=0.0, tau=0.1, wz_gain=1.16, drift=0.1, vx_map=True):
        self.x, self.y, self.yaw = x, y, yaw
        self.v = self.w = 0.0
        self.tau, self.wz_gain, self.drift, self.vx_map = tau, wz_gain, drift, vx_map

    def pose(self) -> Pose2D:
        return Pose2D(self.x, self.y, self.yaw)

    def apply(self, sp: Setpoint, dt: float) -> None:
        v_ss = math.copysign(float(np.interp(abs(sp.vx), VX_CMD, VX_ACT)), sp.vx) if self.vx_map else 0.0
        w_ss = self.wz_gain * sp.wz + self.drift
        a = dt / self.tau
        self.v += (v_ss - self.v) * a
        self.w += (w_ss - self.w) * a
        self.x += self.v * math.cos(self.yaw) * dt
        self.y += self.v * math.sin(self.yaw) * dt
        self.yaw = wrap_angle(self.yaw + self.w * dt)  # the IMU reports a wrapped yaw


def run(ex: ActionExecutor, action, plant: Plant, dt=0.02, t0=100.0, t_max=120.0):
    """Tick until done; returns (result, setpoints). Time is exact multiples of dt from t0."""
    k = 0
    ex.start(action, t0, plant.pose())
    sps = []
    while True:
        t = t0 + k * dt
        sp = ex.step(t, plant.pose())
        sps.append(sp)
        if sp.done:
            return ex.result(), sps
        plant.apply(sp, dt)
        k += 1
        assert k * dt < t_max, "executor never finished"


# ---- closed loop ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dt", [0.02, 0.05])
@pytest.mark.parametrize("cm", [25, 50, 75])
def test_closed_loop_forward_within_tolerance(cm, dt):
    p = ExecutorParams()
    plant = Plant()
    res, sps = run(ActionExecutor("closed_loop", p), Forward(cm / 100), plant, dt=dt)
    assert not res.timed_out and res.kind == "forward" and res.mode == "closed_loop"
    assert res.commanded == pytest.approx(cm / 100)
    assert abs(res.achieved - cm / 100) < p.distance_tol_m
    assert abs(plant.x - cm / 100) < p.distance_tol_m  # the pose agrees with the estimate
    assert abs(res.lateral_m) < 0.03 and abs(res.yaw_change_rad) < 2.0 * DEG  # heading hold vs the drift
    assert sps[-1] == Setpoint(0.0, 0.0, 0.0, True, False)
    assert all(0.0 <= s.vx <= p.forward_speed_m_s for s in sps)
    assert all(s.vx == 0 or s.vx >= p.min_speed_m_s for s in sps)  # never a command the policy ignores


@pytest.mark.parametrize("dt", [0.02, 0.05])
@pytest.mark.parametrize("deg", [15, 30, 45, -15, -30, -45])
def test_closed_loop_turn_within_tolerance(deg, dt):
    p = ExecutorParams()
    plant = Plant()
    res, sps = run(ActionExecutor("closed_loop", p), Turn(deg * DEG), plant, dt=dt)
    assert not res.timed_out and res.kind == "turn"
    assert abs(res.achieved - deg * DEG) < p.angle_tol_rad
    assert abs(wrap_angle(plant.yaw - deg * DEG)) < p.angle_tol_rad
    assert all(s.vx == 0 and abs(s.wz) <= p.turn_rate_rad_s for s in sps)


def test_closed_loop_forward_along_start_heading():
    """Distance is measured along the start heading, wherever the robot starts and however it faces."""
    p = ExecutorParams()
    plant = Plant(x=3.0, y=-2.0, yaw=2.0)
    res, _ = run(ActionExecutor("closed_loop", p), Forward(0.75), plant)
    along = (plant.x - 3.0) * math.cos(2.0) + (plant.y + 2.0) * math.sin(2.0)
    assert res.achieved == pytest.approx(along)
    assert abs(res.achieved - 0.75) < p.distance_tol_m


def test_yaw_wrap_left_across_pi():
    """Start at yaw 3.1 rad and turn left 45°: the target lies past +π, the IMU yaw wraps to −π."""
    p = ExecutorParams()
    plant = Plant(yaw=3.1)
    res, _ = run(ActionExecutor("closed_loop", p), Turn(45 * DEG), plant)
    assert plant.yaw < 0  # it really wrapped
    assert abs(res.achieved - 45 * DEG) < p.angle_tol_rad
    assert abs(wrap_angle(plant.yaw - (3.1 + 45 * DEG))) < p.angle_tol_rad


@pytest.mark.parametrize("start_yaw", [-3.1, 0.0, 3.1])
@pytest.mark.parametrize("deg", [360, -360, 270])
def test_multi_turn_accumulates_yaw(start_yaw, deg):
    p = ExecutorParams()
    plant = Plant(yaw=start_yaw)
    res, _ = run(ActionExecutor("closed_loop", p), Turn(deg * DEG), plant)
    assert not res.timed_out
    assert abs(res.achieved - deg * DEG) < p.angle_tol_rad  # a full turn is not "already there"


def test_forward_overshoot_never_reverses():
    """A robot that is already past the goal (e.g. pushed) ends the action; vx is never negative."""
    ex = ActionExecutor("closed_loop", ExecutorParams(settle_s=0.0))
    ex.start(Forward(0.25), 0.0, Pose2D(0, 0, 0))
    sp = ex.step(0.02, Pose2D(0.4, 0.0, 0.0))
    assert sp.done and sp.vx == 0
    assert ex.result().achieved == pytest.approx(0.4)


def test_settle_holds_before_done():
    p = ExecutorParams(settle_s=0.5)
    ex = ActionExecutor("closed_loop", p)
    ex.start(Forward(0.25), 0.0, Pose2D(0, 0, 0))
    assert not ex.step(0.0, Pose2D(0, 0, 0)).done
    held = ex.step(0.1, Pose2D(0.245, 0, 0))  # reached: hold
    assert not held.done and held.vx == 0
    assert not ex.step(0.5, Pose2D(0.25, 0, 0)).done
    assert ex.step(0.6, Pose2D(0.25, 0, 0)).done


def test_timeout():
    """A robot that never moves (no stall detection): done after timeout_factor × nominal + margin, flagged, zero
    command."""
    p = ExecutorParams(timeout_factor=3.0, timeout_margin_s=2.0, stall_window_s=100.0)
    plant = Plant(vx_map=False, drift=0.0)
    res, sps = run(ActionExecutor("closed_loop", p), Forward(0.5), plant, dt=0.02, t0=0.0)
    assert res.timed_out and sps[-1].timed_out and sps[-1].done
    assert sps[-1][:3] == (0.0, 0.0, 0.0)
    assert res.duration_s == pytest.approx(3.0 * 0.5 / 0.5 + 2.0, abs=0.021)
    assert res.achieved == pytest.approx(0.0)

    plant = Plant(wz_gain=0.0, drift=0.0)
    res, _ = run(ActionExecutor("closed_loop", p), Turn(-30 * DEG), plant, t0=0.0)
    assert res.timed_out and res.duration_s == pytest.approx(3.0 * 1.0 + 2.0, abs=0.021)


def test_blocked_forward_and_turn_end_early():
    """Walking into a wall (the estimate stops advancing after 0.3 m) or a turn that cannot turn: the action ends
    stall_window_s after the last progress step, flagged blocked (not timed out), with a zero command."""
    p = ExecutorParams()
    ex, plant, t = ActionExecutor("closed_loop", p), Plant(drift=0.0), 0.0
    ex.start(Forward(0.75), t, plant.pose())
    while True:
        sp = ex.step(t, plant.pose())
        if sp.done:
            break
        plant.apply(sp, 0.02)
        plant.x = min(plant.x, 0.3)  # the wall
        t += 0.02
    res = ex.result()
    assert res is not None and res.blocked and not res.timed_out and sp[:3] == (0.0, 0.0, 0.0)
    assert res.achieved == pytest.approx(0.3) and 1.5 < t < 3.0  # reaching 0.3 m takes ≈ 1 s, then 1.5 s

    res, sps = run(ActionExecutor("closed_loop", p), Turn(30 * DEG), Plant(wz_gain=0.0, drift=0.0), t0=0.0)
    assert res.blocked and not res.timed_out and res.duration_s == pytest.approx(p.stall_window_s, abs=0.021)


@pytest.mark.parametrize("hold_from_s", [0.0, 0.3, 1.0])
def test_a_control_hold_is_not_a_stall(hold_from_s):
    """Control holds for 1 s (a lag hold, or the first ticks of a move before it walks): the robot cannot move, and
    a 25 cm move still completes afterwards instead of ending as blocked."""
    ex, plant, t = ActionExecutor("closed_loop", ExecutorParams()), Plant(drift=0.0), 0.0
    ex.start(Forward(0.25), t, plant.pose())
    while True:
        walking = not hold_from_s <= t < hold_from_s + 1.0
        sp = ex.step(t, plant.pose(), walking=walking)
        if sp.done:
            break
        plant.apply(sp if walking else Setpoint(0.0, 0.0, 0.0, False), 0.02)
        t += 0.02
    res = ex.result()
    assert res is not None and not res.blocked and not res.timed_out
    assert res.achieved == pytest.approx(0.25, abs=ExecutorParams().distance_tol_m)


def test_slow_steady_progress_is_not_blocked():
    """A robot that creeps at 4 cm/s whatever the command (6 cm per stall window ≥ the 5 cm minimum): never blocked;
    the move runs until its timeout."""
    p = ExecutorParams()
    ex, t, x = ActionExecutor("closed_loop", p), 0.0, 0.0
    ex.start(Forward(0.75), t, Pose2D(0, 0, 0))
    while not ex.step(t, Pose2D(x, 0, 0)).done:
        t, x = t + 0.02, x + 0.04 * 0.02
    res = ex.result()
    assert res is not None and res.timed_out and not res.blocked
    assert res.duration_s == pytest.approx(p.timeout_factor * 0.75 / p.forward_speed_m_s + p.timeout_margin_s, abs=0.03)


# ---- open loop (NaVILA Isaac) --------------------------------------------------------------------------------


def predicted_open_loop(v_ss: float, duration: float, dt: float, tau: float) -> float:
    """What the lagged plant integrates in duration/dt ticks of a constant command (Euler, velocity first)."""
    a = dt / tau
    n = round(duration / dt)
    return v_ss * dt * sum(1 - (1 - a) ** k for k in range(1, n + 1))


@pytest.mark.parametrize("cm, ticks", [(25, 25), (50, 50), (75, 75)])
def test_open_loop_forward_timing_and_predictable_error(cm, ticks):
    """0.5 m/s for distance/0.5 s on the clock (75 cm → 75 ticks at 50 Hz, as NaVILA-Bench), then zero; the policy
    under-shoots by a predictable amount."""
    plant = Plant(drift=0.0)
    res, sps = run(ActionExecutor("open_loop", ExecutorParams()), Forward(cm / 100), plant, dt=0.02)
    assert [s.vx for s in sps[:-1]] == [0.5] * ticks and sps[-1].done
    assert res.duration_s == pytest.approx(ticks * 0.02)
    expected = predicted_open_loop(0.43, ticks * 0.02, 0.02, plant.tau)
    assert res.achieved == pytest.approx(expected, abs=1e-6)
    assert res.achieved < cm / 100 - 0.05  # far from asked: why closed loop exists


@pytest.mark.parametrize("deg", [15, 30, 45, -15, -30, -45])
def test_open_loop_turn_predictable_error(deg):
    plant = Plant()
    res, sps = run(ActionExecutor("open_loop", ExecutorParams()), Turn(deg * DEG), plant, dt=0.02)
    duration = abs(deg) / 30.0
    assert all(s.wz == pytest.approx(math.copysign(math.pi / 6, deg)) for s in sps[:-1])
    assert len(sps) - 1 == round(duration / 0.02)
    w_ss = 1.16 * math.copysign(math.pi / 6, deg) + 0.1
    assert res.achieved == pytest.approx(predicted_open_loop(w_ss, duration, 0.02, plant.tau), abs=1e-9)
    if deg == 45:
        assert 55 * DEG < res.achieved < 60 * DEG  # measured on the policy: +57°


def test_open_loop_uses_the_given_clock_not_tick_count():
    ex = ActionExecutor("open_loop", ExecutorParams())
    ex.start(Forward(0.25), 10.0, Pose2D(0, 0, 0))
    assert ex.step(10.0, Pose2D(0, 0, 0)).vx == 0.5
    assert ex.step(10.49, Pose2D(0, 0, 0)).vx == 0.5
    assert ex.step(10.5, Pose2D(0, 0, 0)) == Setpoint(0.0, 0.0, 0.0, True, False)
    assert ex.result().duration_s == pytest.approx(0.5)


# ---- common ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["open_loop", "closed_loop"])
def test_stop_is_immediate(mode):
    ex = ActionExecutor(mode, ExecutorParams())
    ex.start(Stop(), 5.0, Pose2D(1, 2, 3))
    assert ex.busy
    assert ex.step(5.0, Pose2D(1, 2, 3)) == Setpoint(0.0, 0.0, 0.0, True, False)
    assert not ex.busy
    assert ex.result() == ExecutionResult(
        kind="stop", mode=mode, commanded=0.0, achieved=0.0, duration_s=0.0, timed_out=False
    )


def test_idle_and_result_lifecycle():
    ex = ActionExecutor("closed_loop", ExecutorParams())
    assert ex.step(0.0, Pose2D(0, 0, 0)) == Setpoint(0.0, 0.0, 0.0, True, False)
    assert ex.result() is None
    ex.start(Turn(30 * DEG), 0.0, Pose2D(0, 0, 0))
    ex.step(0.0, Pose2D(0, 0, 0))
    assert ex.result() is None  # running
    ex.start(Stop(), 0.1, Pose2D(0, 0, 0))  # replaces the turn
    assert ex.step(0.1, Pose2D(0, 0, 0)).done and ex.result().kind == "stop"


@pytest.mark.parametrize("bad", [Pose2D(math.nan, 0, 0), Pose2D(0, 0, math.inf)])
def test_non_finite_pose_aborts_with_zero(bad):
    ex = ActionExecutor("closed_loop", ExecutorParams())
    ex.start(Forward(0.5), 0.0, Pose2D(0, 0, 0))
    sp = ex.step(0.02, bad)
    assert sp.done and sp[:3] == (0.0, 0.0, 0.0)
    assert ex.result().error and math.isnan(ex.result().achieved)


def test_negative_forward_walks_backwards():
    p = ExecutorParams()
    plant = Plant()
    res, sps = run(ActionExecutor("closed_loop", p), Forward(-0.5), plant)
    assert abs(res.achieved + 0.5) < p.distance_tol_m and all(s.vx <= 0 for s in sps)


def test_params_validation():
    with pytest.raises(ValidationError):
        ExecutorParams(forward_spd=1.0)  # extra="forbid"
    with pytest.raises(ValidationError):
        ExecutorParams(forward_speed_m_s=0.0)
    with pytest.raises(ValidationError):
        ExecutorParams(angle_tol_rad=math.nan)
    p = ExecutorParams()
    with pytest.raises(ValidationError):
        p.settle_s = 1.0  # frozen
    assert p.forward_speed_m_s == 0.5 and p.turn_rate_rad_s == pytest.approx(math.pi / 6)
    with pytest.raises(ValueError):
        ActionExecutor("teleport", p)


@settings(max_examples=200, deadline=None)
@given(
    mode=st.sampled_from(["open_loop", "closed_loop"]),
    action=st.one_of(st.floats(-3, 3).map(Forward), st.floats(-2 * math.pi, 2 * math.pi).map(Turn), st.just(Stop())),
    poses=st.lists(
        st.tuples(st.floats(-50, 50), st.floats(-50, 50), st.floats(-math.pi, math.pi)), min_size=1, max_size=30
    ),
    dts=st.lists(st.floats(0.0, 0.5), min_size=30, max_size=30),
)
def test_setpoints_always_finite_and_limited(mode, action, poses, dts):
    """Whatever the pose estimate does (jumps, noise) and however the clock ticks, commands stay within limits."""
    p = ExecutorParams()
    ex = ActionExecutor(mode, p)
    t = 0.0
    ex.start(action, t, Pose2D(*poses[0]))
    for pose, dt in zip(poses, dts):
        sp = ex.step(t, Pose2D(*pose))
        assert all(math.isfinite(v) for v in sp[:3])
        assert abs(sp.vx) <= p.forward_speed_m_s and sp.vy == 0
        assert abs(sp.wz) <= max(p.turn_rate_rad_s, p.max_heading_rate_rad_s)
        if sp.done:
            assert sp[:3] == (0.0, 0.0, 0.0) and ex.result() is not None
            break
        t += dt


def test_estimate_so_far_and_last_pose():
    ex = ActionExecutor("closed_loop", ExecutorParams())
    assert ex.estimate_so_far() == 0.0 and ex.last_pose == Pose2D(0.0, 0.0, 0.0)
    ex.start(Forward(0.75), 0.0, Pose2D(1.0, 1.0, math.pi / 2))
    ex.step(0.1, Pose2D(1.05, 1.3, math.pi / 2))
    assert ex.estimate_so_far() == pytest.approx(0.3) and ex.last_pose == Pose2D(1.05, 1.3, math.pi / 2)
    ex.start(Turn(-math.pi), 1.0, Pose2D(0, 0, -3.0))
    ex.step(1.1, Pose2D(0, 0, 3.0))  # 6.0 rad apart when wrapped: −0.28 rad
    assert ex.estimate_so_far() == pytest.approx(6.0 - 2 * math.pi)


def test_start_rejects_non_actions_without_changing_state():
    ex = ActionExecutor("closed_loop", ExecutorParams())
    with pytest.raises(TypeError):
        ex.start("move forward", 0.0, Pose2D(0, 0, 0))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ex.start(Forward(math.nan), 0.0, Pose2D(0, 0, 0))
    assert not ex.busy and ex.step(0.0, Pose2D(0, 0, 0)).done
