"""Policy step (observation + model + targets) on ONNX Runtime vs TorchScript, same real Go2 weights.

Run: .venv/bin/python -m pytest tests/benchmarks/test_bench_policy_backends.py --benchmark-only -s
The TorchScript model is the robot_lab policy.onnx's weights rebuilt as nn.Sequential and scripted.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from drivers.robot_io import RobotState
from edge.common.config import resolve_path
from edge.controls.locomotion import Policy, load_policy_config
from engines.ort_runner import OrtModel
from tests.fakes.robot import robot_state

pytest.importorskip("torch")
from engines.torch_runner import TorchModel
from exporters.policy import actor_from_onnx_mlp, save_torchscript

CFG = load_policy_config("configs/policies/go2_robot_lab.yaml")


def _state() -> RobotState:
    rng = np.random.default_rng(0)
    return robot_state(
        q=np.array(CFG.default_pose) + rng.normal(0, 0.05, 12), dq=rng.normal(0, 0.5, 12), gyro=rng.normal(0, 0.1, 3)
    )


@pytest.fixture(scope="module")
def policies(tmp_path_factory):
    jit = save_torchscript(actor_from_onnx_mlp(resolve_path(CFG.model)), tmp_path_factory.mktemp("b") / "policy.jit")
    return {
        "onnxruntime": Policy(CFG, model=OrtModel(resolve_path(CFG.model))),
        "torchscript": Policy(CFG, model=TorchModel(jit, threads=1)),
    }


@pytest.mark.parametrize("backend", ["onnxruntime", "torchscript"])
def test_bench_policy_step(benchmark, policies, backend):
    benchmark.group = "policy step"
    cmd = benchmark(policies[backend].step, _state(), np.array([0.5, 0.0, 0.0]))
    assert cmd.is_finite()


def test_policy_step_ratio_torchscript_over_onnxruntime(policies):
    """Both backends give the same targets; report median per-step time and the ratio (TorchScript / ORT)."""
    s, cmd = _state(), np.array([0.5, 0.0, 0.0])
    med = {}
    for name, p in policies.items():
        p.reset()
        for _ in range(200):
            p.step(s, cmd)
        t = np.empty(2000)
        for i in range(len(t)):
            t0 = time.perf_counter_ns()
            p.step(s, cmd)
            t[i] = time.perf_counter_ns() - t0
        med[name] = float(np.median(t)) / 1e3
    a = [p.reset() or p.step(s, cmd).q for p in policies.values()]
    np.testing.assert_allclose(a[0], a[1], atol=1e-5)
    ratio = med["torchscript"] / med["onnxruntime"]
    print(
        f"\npolicy step median: onnxruntime {med['onnxruntime']:.1f} µs, torchscript {med['torchscript']:.1f} µs, "
        f"ratio torchscript/onnxruntime {ratio:.2f}"
    )
    assert ratio > 0
