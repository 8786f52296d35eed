"""Locomotion policy: its contract (from a per-policy YAML), the observation builder and one policy step.

Everything robot-facing is in SDK joint order; the policy's own joint order is resolved by name from its config.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from drivers.geometry import projected_gravity
from drivers.go2.constants import JOINT_NAMES_SDK, NUM_JOINTS, reorder_index
from drivers.robot_io import JointCommand, RobotState
from edge.common.config import Frozen, load_yaml_model, resolve_path
from edge.common.realtime import DT_CONTROL
from engines.loader import load_tensor_model
from engines.runtime import TensorModel

TERM_SIZES = {
    "base_ang_vel": 3,
    "projected_gravity": 3,
    "velocity_command": 3,
    "joint_pos_rel": NUM_JOINTS,
    "joint_vel": NUM_JOINTS,
    "last_action": NUM_JOINTS,
}


class ObsTerm(Frozen):
    term: Literal["base_ang_vel", "projected_gravity", "velocity_command", "joint_pos_rel", "joint_vel", "last_action"]
    scale: float | list[float] = 1.0


class PolicyConfig(Frozen):
    name: str
    model: str
    input: str = "obs"
    output: str = "actions"
    rate_hz: float = Field(50.0, gt=0)  # must be the control loop's (1 / DT_CONTROL)
    joint_order: list[str]
    default_pose: list[float]
    action_scale: list[float]
    action_clip: float = Field(100.0, gt=0)
    obs_clip: float = Field(100.0, gt=0)
    observation: list[ObsTerm]
    # hard bounds, as safety.max_kp / max_kd (edge/common/config.py); the controller re-checks against the config's
    kp: float = Field(gt=0, le=100, allow_inf_nan=False)
    kd: float = Field(ge=0, le=10, allow_inf_nan=False)

    @model_validator(mode="after")
    def _check(self):
        if abs(self.rate_hz * DT_CONTROL - 1.0) > 1e-9:
            raise ValueError(f"rate_hz = {self.rate_hz:g}: must be {1 / DT_CONTROL:g} (the control loop's rate)")
        if sorted(self.joint_order) != sorted(JOINT_NAMES_SDK):
            raise ValueError(f"joint_order must name each of {JOINT_NAMES_SDK} once")
        for name in ("default_pose", "action_scale"):
            if len(getattr(self, name)) != NUM_JOINTS:
                raise ValueError(f"{name} needs {NUM_JOINTS} values")
        for t in self.observation:
            if isinstance(t.scale, list) and len(t.scale) != TERM_SIZES[t.term]:
                raise ValueError(f"{t.term}: scale needs {TERM_SIZES[t.term]} values")
        return self

    @property
    def obs_size(self) -> int:
        return sum(TERM_SIZES[t.term] for t in self.observation)


def load_policy_config(path) -> PolicyConfig:
    return load_yaml_model(PolicyConfig, resolve_path(str(path)))


class ObservationBuilder:
    def __init__(self, cfg: PolicyConfig):
        self.cfg = cfg
        self.policy_from_sdk = reorder_index(tuple(cfg.joint_order), JOINT_NAMES_SDK)
        self.default_policy = np.asarray(cfg.default_pose)
        self.out = np.zeros((1, cfg.obs_size), dtype=np.float32)

    def build(self, state: RobotState, command: np.ndarray, last_action: np.ndarray) -> np.ndarray:
        """command = [vx, vy, wz]; last_action in policy order. Returns a reused (1, N) float32 buffer."""
        p = self.policy_from_sdk
        i = 0
        for t in self.cfg.observation:
            if t.term == "base_ang_vel":
                v = state.gyro
            elif t.term == "projected_gravity":
                v = projected_gravity(state.quat_wxyz)
            elif t.term == "velocity_command":
                v = command
            elif t.term == "joint_pos_rel":
                v = state.q[p] - self.default_policy
            elif t.term == "joint_vel":
                v = state.dq[p]
            else:
                v = last_action
            n = TERM_SIZES[t.term]
            self.out[0, i : i + n] = np.asarray(v) * np.asarray(t.scale)
            i += n
        np.clip(self.out, -self.cfg.obs_clip, self.cfg.obs_clip, out=self.out)
        return self.out


class Policy:
    """obs → action → joint targets. Raises FloatingPointError on non-finite obs or action (caller damps)."""

    def __init__(self, cfg: PolicyConfig, model: TensorModel | None = None, backend: str = "onnxruntime"):
        self.cfg = cfg
        self.model = model or load_tensor_model(resolve_path(cfg.model), backend)
        names = {s.name for s in self.model.inputs}, {s.name for s in self.model.outputs}
        if cfg.input not in names[0] or cfg.output not in names[1]:
            raise ValueError(f"policy {cfg.name}: model I/O {names} lacks {cfg.input!r}/{cfg.output!r}")
        shape = next(s.shape for s in self.model.inputs if s.name == cfg.input)
        if isinstance(shape[-1], int) and shape[-1] != cfg.obs_size:
            raise ValueError(f"policy {cfg.name}: model takes {shape[-1]} inputs, config builds {cfg.obs_size}")
        self.obs = ObservationBuilder(cfg)
        self.sdk_from_policy = reorder_index(JOINT_NAMES_SDK, tuple(cfg.joint_order))
        self.scale = np.asarray(cfg.action_scale)
        self.default_policy = np.asarray(cfg.default_pose)
        self.default_sdk = self.default_policy[self.sdk_from_policy]
        self.last_action = np.zeros(NUM_JOINTS)

    def reset(self) -> None:
        self.last_action[:] = 0.0

    def warm_up(self) -> None:
        """One inference on a zero observation, no state changed: the runtime's first-run costs (allocations, with
        memory locked each one faulted in at once) are paid at load, not in the first tick that runs the policy."""
        self.model.run({self.cfg.input: np.zeros_like(self.obs.out)})

    def step(self, state: RobotState, command: np.ndarray) -> JointCommand:
        obs = self.obs.build(state, command, self.last_action)
        if not np.isfinite(obs).all():
            raise FloatingPointError("non-finite observation")
        action = self.model.run({self.cfg.input: obs})[self.cfg.output].reshape(-1).astype(np.float64)
        if action.shape != (NUM_JOINTS,) or not np.isfinite(action).all():
            raise FloatingPointError(f"non-finite or mis-shaped policy output {action.shape}")
        np.clip(action, -self.cfg.action_clip, self.cfg.action_clip, out=action)
        self.last_action = action
        target_policy = self.default_policy + action * self.scale
        kp, kd = np.full(NUM_JOINTS, self.cfg.kp), np.full(NUM_JOINTS, self.cfg.kd)
        return JointCommand(q=target_policy[self.sdk_from_policy], kp=kp, kd=kd)
