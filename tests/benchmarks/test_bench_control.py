"""One control step: observation + policy (ONNX Runtime) + LowCmd packing + CRC, and its parts.

Run: .venv/bin/python -m pytest tests/benchmarks --benchmark-enable --benchmark-only
"""

from __future__ import annotations

import numpy as np
import pytest

from edge.common.config import ControlConfig, SafetyConfig
from edge.controls.controller import Controller
from edge.controls.locomotion import Policy, load_policy_config
from tests.fakes.robot import robot_state

unitree = pytest.importorskip("drivers.unitree.go2")

CFG = load_policy_config("configs/policies/go2_robot_lab.yaml")


def _state(t):
    rng = np.random.default_rng(0)
    return robot_state(
        q=np.array(CFG.default_pose) + rng.normal(0, 0.05, 12),
        dq=rng.normal(0, 0.5, 12),
        gyro=rng.normal(0, 0.1, 3),
        t=t,
    )


@pytest.fixture(scope="module")
def policy():
    return Policy(CFG)


def test_bench_policy_only(benchmark, policy):
    s = _state(0.0)
    benchmark(policy.step, s, np.array([0.5, 0.0, 0.0]))


def test_bench_lowcmd_pack_and_crc(benchmark, policy):
    cmd = policy.step(_state(0.0), np.zeros(3))
    msg = unitree.make_lowcmd(cmd)
    benchmark(unitree.fill_lowcmd, msg, cmd)
    assert unitree.crc_ok(msg)


def test_bench_control_step(benchmark, policy):
    """Safety state machine + observation + policy + limits + LowCmd fill + CRC, in walk mode."""
    ctrl = Controller(control=ControlConfig(), safety=SafetyConfig(), policy=policy)
    t = 0.0
    for i in range(150):  # steady LowState 0.5 s, stand up 2 s, hold, start walking
        t = i * 0.02
        ctrl.tick(t, _state(t), np.array([0.5, 0, 0]) if i > 140 else None, stand_requested=True)
    assert ctrl.mode == "walk"
    msg = unitree.make_lowcmd(ctrl.tick(t, _state(t), np.array([0.5, 0, 0])).command)
    clock = [t]

    def step():
        clock[0] += 0.02
        res = ctrl.tick(clock[0], _state(clock[0]), np.array([0.5, 0.0, 0.0]))
        unitree.fill_lowcmd(msg, res.command)

    benchmark(step)
    assert ctrl.mode == "walk" and unitree.crc_ok(msg)
