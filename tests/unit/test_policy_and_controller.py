from __future__ import annotations

import numpy as np
import pytest

from drivers.go2.constants import JOINT_NAMES_LEGGED_GYM, JOINT_NAMES_SDK, reorder_index, soft_limits
from edge.common.config import ConfigError, ControlConfig, SafetyConfig
from edge.controls.controller import Controller
from edge.controls.locomotion import ObservationBuilder, Policy, load_policy_config
from engines.runtime import TensorSpec
from tests.fakes.robot import STAND_Q, robot_state

CFG = load_policy_config("configs/policies/go2_robot_lab.yaml")


def state(t=0.0, q=STAND_Q, quat=(1, 0, 0, 0), **kw):
    return robot_state(t=t, q=q, quat_wxyz=quat, **kw)


class ConstantModel:
    """Typed stand-in for a TensorModel with the real policy's I/O."""

    backend = "test"
    inputs = (TensorSpec("obs", (1, 45), np.dtype(np.float32)),)
    outputs = (TensorSpec("actions", (1, 12), np.dtype(np.float32)),)

    def __init__(self, value):
        self.value = value
        self.calls = 0

    def run(self, feeds):
        assert feeds["obs"].shape == (1, 45)
        self.calls += 1
        return {"actions": np.full((1, 12), self.value, dtype=np.float32)}


def test_observation_layout_matches_the_policy_contract():
    rng = np.random.default_rng(0)
    q, dq, gyro, last = rng.normal(size=12), rng.normal(size=12), rng.normal(size=3), rng.normal(size=12)
    s = state(q=q, dq=dq, gyro=gyro, quat=(np.cos(0.1), np.sin(0.1), 0, 0))  # rolled 0.2 rad
    obs = ObservationBuilder(CFG).build(s, np.array([0.5, 0.0, -0.3]), last)[0]
    assert obs.shape == (45,) and obs.dtype == np.float32
    np.testing.assert_allclose(obs[0:3], gyro * 0.25, rtol=1e-6)
    np.testing.assert_allclose(obs[3:6], [0, -np.sin(0.2), -np.cos(0.2)], atol=1e-6)  # R^T·[0,0,-1]
    np.testing.assert_allclose(obs[6:9], [0.5, 0, -0.3], rtol=1e-6)
    np.testing.assert_allclose(obs[9:21], q - np.array(CFG.default_pose), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(obs[21:33], dq * 0.05, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(obs[33:45], last, rtol=1e-6)
    big = ObservationBuilder(CFG).build(state(dq=np.full(12, 1e5)), np.zeros(3), np.zeros(12))[0]
    assert big[21:33].max() == 100.0  # obs clip


def test_joint_order_is_resolved_by_name():
    cfg = CFG.model_copy(update={"joint_order": list(JOINT_NAMES_LEGGED_GYM)})
    q = np.arange(12, dtype=float) / 10
    obs = ObservationBuilder(cfg).build(state(q=q), np.zeros(3), np.zeros(12))[0]
    expected = q[reorder_index(JOINT_NAMES_LEGGED_GYM, JOINT_NAMES_SDK)] - np.array(cfg.default_pose)
    np.testing.assert_allclose(obs[9:21], expected, atol=1e-6)
    assert obs[9] == pytest.approx(q[3] - cfg.default_pose[0])  # FL_hip is SDK index 3


def test_real_policy_produces_finite_targets_in_sdk_order():
    p = Policy(CFG)
    cmd = p.step(state(), np.array([0.5, 0, 0]))
    assert cmd.is_finite() and np.all(cmd.kp == 20.0) and np.all(cmd.kd == 0.5)
    np.testing.assert_allclose(cmd.q, np.array(CFG.default_pose) + p.last_action * np.array(CFG.action_scale))


def test_warm_up_runs_the_model_once_and_changes_nothing():
    """controlsd warms the policy at load (its first-run costs out of the stand-up's first tick): one model call,
    the last action and the next step's result as without it."""
    model = ConstantModel(0.1)
    p = Policy(CFG, model=model)
    p.last_action[:] = 0.2
    p.warm_up()
    assert model.calls == 1 and np.all(p.last_action == 0.2)
    cold = Policy(CFG, model=ConstantModel(0.1))
    cold.last_action[:] = 0.2
    np.testing.assert_array_equal(p.step(state(), np.zeros(3)).q, cold.step(state(), np.zeros(3)).q)


def test_non_finite_policy_output_raises():
    p = Policy(CFG, model=ConstantModel(np.nan))
    with pytest.raises(FloatingPointError):
        p.step(state(), np.zeros(3))


def test_model_io_mismatch_is_refused():
    m = ConstantModel(0.0)
    m.inputs = (TensorSpec("obs", (1, 48), np.dtype(np.float32)),)
    with pytest.raises(ValueError, match="48 inputs"):
        Policy(CFG, model=m)


def make_controller(value=0.0, **cfg):
    model = ConstantModel(value)
    return Controller(control=ControlConfig(), safety=SafetyConfig(**cfg), policy=Policy(CFG, model=model)), model


def stand(ctrl, q0):
    """Stand requested every tick: accepted once LowState has been steady for stand_min_steady_s, then the ramp."""
    t = 0.0
    for i in range(160):
        t = i * 0.02
        r = ctrl.tick(t, state(t, q=q0), None, stand_requested=True)
    return t, r


def test_stand_up_ramps_from_measured_pose_to_default_then_holds():
    ctrl, _ = make_controller()
    q0 = np.array([0.0, 1.36, -2.65] * 4)
    r0 = ctrl.tick(0.0, state(0.0, q=q0), None, stand_requested=True)
    assert r0.mode == "passive" and "steady" in r0.reason  # a fresh stream must hold steady first
    assert np.all(r0.command.kp == 0) and np.all(r0.command.kd == SafetyConfig().damp_kd)  # passive damps
    r0 = ctrl.tick(0.5, state(0.5, q=q0), None, stand_requested=True)
    assert r0.mode == "stand_up"
    np.testing.assert_allclose(
        r0.command.q, np.clip(q0, *soft_limits(SafetyConfig().soft_limit_factor)), atol=1e-9
    )  # starts where it is
    t, r = stand(ctrl, q0)
    assert r.mode == "hold"
    np.testing.assert_allclose(r.command.q, CFG.default_pose, atol=1e-9)
    assert np.all(r.command.kp == 50.0)


def test_walk_uses_policy_and_stale_velocity_zeroes_at_once():
    ctrl, model = make_controller(0.2)
    t, _ = stand(ctrl, np.array(CFG.default_pose))
    for i in range(20):
        t += 0.02
        r = ctrl.tick(t, state(t), np.array([0.5, 0, 0]))
    assert r.mode == "walk" and r.velocity[0] == pytest.approx(0.5)  # slew-limited ramp reached the goal
    t += 0.02
    r = ctrl.tick(t, state(t), None)  # velocity went stale
    assert r.mode == "walk" and np.all(r.velocity == 0)
    assert model.calls > 0


def test_nan_policy_output_damps_in_the_same_tick():
    ctrl, _ = make_controller(np.nan)
    t, _ = stand(ctrl, np.array(CFG.default_pose))
    r = ctrl.tick(t + 0.02, state(t + 0.02), np.array([0.5, 0, 0]))
    assert r.mode == "damp" and "policy fault" in r.reason
    assert np.all(r.command.kp == 0) and np.all(r.command.kd > 0)


def test_targets_clamped_and_rate_limited():
    ctrl, _ = make_controller(100.0)  # absurd actions: targets far outside the joint limits
    t, _ = stand(ctrl, np.array(CFG.default_pose))
    lo, hi = soft_limits(SafetyConfig().soft_limit_factor)
    prev = np.array(CFG.default_pose)
    for i in range(30):
        t += 0.02
        r = ctrl.tick(t, state(t), np.array([0.5, 0, 0]))
        assert np.all(r.command.q <= hi + 1e-12) and np.all(r.command.q >= lo - 1e-12)
        assert np.max(np.abs(r.command.q - prev)) <= 0.3 + 1e-9
        prev = r.command.q


def test_estop_and_stale_lowstate_damp():
    ctrl, _ = make_controller()
    t, _ = stand(ctrl, np.array(CFG.default_pose))
    r = ctrl.tick(t + 0.1, state(t), None)  # newest LowState is 0.1 s old
    assert r.mode == "damp" and "stale" in r.reason
    assert np.all(r.command.kp == 0) and np.all(r.command.kd == 3.0)
    ctrl, _ = make_controller()
    t, _ = stand(ctrl, np.array(CFG.default_pose))
    assert ctrl.tick(t + 0.02, state(t + 0.02), None, estop=True).mode == "damp"


def test_degenerate_quaternion_is_not_a_level_robot():
    ctrl, _ = make_controller()
    r = ctrl.tick(0.0, state(0.0, quat=(0, 0, 0, 0)), None, stand_requested=True)
    assert r.mode == "passive" and "not finite" in r.reason  # refuses to stand
    t, _ = stand(ctrl, np.array(CFG.default_pose))
    r = ctrl.tick(t + 0.02, state(t + 0.02, quat=(0, 0, 0, 0)), None)
    assert r.mode == "damp"


def test_gains_beyond_the_safety_bounds_are_refused_and_never_sent():
    with pytest.raises(ConfigError, match=r"^policy go2_robot_lab kp = 20: outside \[0, 10\] \(safety.max_kp\)$"):
        make_controller(max_kp=10.0)
    ctrl, _ = make_controller()
    t, r = stand(ctrl, np.array(CFG.default_pose))
    assert r.mode == "hold" and np.all(r.command.kp <= SafetyConfig().max_kp)
