"""One control tick, free of I/O: robot state + velocity command + operator events → the joint command to send.

Used by edge.controls.controlsd (the 50 Hz process) and directly by tests with a fake clock.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drivers.robot_io import JointCommand, RobotState
from edge.common.config import ControlConfig
from edge.msg.messages import ControlMode
from drivers.geometry import quat_to_rpy
from edge.controls.locomotion import Policy
from drivers.go2.constants import NUM_JOINTS, soft_limits
from edge.controls.safety import SafetyInputs, SafetyLimits, SafetyStateMachine


@dataclass(frozen=True)
class TickResult:
    command: JointCommand
    mode: ControlMode
    reason: str
    velocity: np.ndarray      # [vx, vy, wz] fed to the policy (zeros outside walk)
    roll: float
    pitch: float


def smoothstep(s: float) -> float:
    s = min(max(s, 0.0), 1.0)
    return s * s * (3.0 - 2.0 * s)


class Controller:
    def __init__(self, cfg: ControlConfig, policy: Policy):
        self.cfg = cfg
        self.policy = policy
        self.sm = SafetyStateMachine(SafetyLimits(cfg.lowstate_max_age_s, cfg.max_tilt_rad, cfg.stand_duration_s,
                                                  cfg.zero_then_hold_s))
        self.q_lo, self.q_hi = soft_limits(cfg.soft_limit_factor)
        self.cmd_limits = np.asarray(cfg.cmd_limits)
        self.slew = np.asarray(cfg.cmd_slew_per_tick)
        self.velocity = np.zeros(3)
        self.stand_from: np.ndarray | None = None
        self.last_target: np.ndarray | None = None
        self.policy_fault = ""
        self.stand_kp = np.full(NUM_JOINTS, cfg.stand_kp)
        self.stand_kd = np.full(NUM_JOINTS, cfg.stand_kd)

    @property
    def mode(self) -> ControlMode:
        return self.sm.mode

    def tick(self, now_s: float, state: RobotState | None, velocity: np.ndarray | None, estop: bool = False,
             stand_requested: bool = False) -> TickResult:
        """velocity: the newest fresh [vx, vy, wz] or None when stale/absent."""
        roll = pitch = 0.0
        finite = True
        if state is not None:
            # a degenerate IMU quaternion would read as level: treat it like a non-finite state
            finite = state.is_finite() and 0.5 < float(state.quat_wxyz @ state.quat_wxyz) < 1.5
            if finite:
                roll, pitch, _ = quat_to_rpy(state.quat_wxyz)
        fresh = velocity is not None and bool(np.isfinite(velocity).all())
        prev_mode = self.sm.mode
        mode = self.sm.step(SafetyInputs(
            now_s=now_s, state_age_s=None if state is None else now_s - state.recv_mono_s, state_finite=finite,
            roll_rad=roll, pitch_rad=pitch, estop=estop, stand_requested=stand_requested,
            velocity_fresh=fresh, velocity_nonzero=fresh and bool(np.any(np.abs(velocity) > 1e-3)),
            policy_fault=self.policy_fault))
        if mode != prev_mode:
            self._enter(mode, state)
        cmd = self._command(mode, now_s, state, velocity if fresh else None)
        if mode == "walk" and self.policy_fault:      # the policy failed this tick: damp now, not next tick
            mode, cmd = "damp", self.damp_now(f"policy fault: {self.policy_fault}", now_s)
        cmd = self._guard(cmd, mode)
        if not cmd.is_finite():                        # last line of defence: never send NaN
            mode, cmd = "damp", self.damp_now("non-finite command", now_s)
        return TickResult(cmd, mode, self.sm.reason, self.velocity.copy(), roll, pitch)

    def damp_now(self, reason: str, now_s: float) -> JointCommand:
        """Latch damp at once and return the damping command (to send every cycle from now on)."""
        self.sm.fault(reason, now_s)
        self.velocity[:] = 0.0
        return JointCommand.damping(self.cfg.damp_kd)

    def _enter(self, mode: ControlMode, state: RobotState | None) -> None:
        if mode == "stand_up" and state is not None:
            self.stand_from = np.clip(state.q, self.q_lo, self.q_hi)
            self.last_target = None
        if mode == "walk":
            self.policy.reset()
        if mode != "walk":
            self.velocity[:] = 0.0

    def _command(self, mode: ControlMode, now_s: float, state: RobotState | None,
                 velocity: np.ndarray | None) -> JointCommand:
        if mode == "passive":
            return JointCommand(q=np.zeros(NUM_JOINTS))          # zero torque: kp = kd = 0
        if mode == "damp":
            return JointCommand.damping(self.cfg.damp_kd)
        if mode == "stand_up":
            s = smoothstep((now_s - self.sm.entered_s) / self.cfg.stand_duration_s)
            target = (1 - s) * self.stand_from + s * self.policy.default_sdk
            return JointCommand(q=target, kp=self.stand_kp, kd=self.stand_kd)
        if mode == "hold":
            return JointCommand(q=self.policy.default_sdk, kp=self.stand_kp, kd=self.stand_kd)
        # walk: stale command → zero at once (safety stop); fresh command → limited and slew-limited
        if velocity is None:
            self.velocity[:] = 0.0
        else:
            goal = np.clip(velocity, -self.cmd_limits, self.cmd_limits)
            self.velocity += np.clip(goal - self.velocity, -self.slew, self.slew)
        try:
            return self.policy.step(state, self.velocity)
        except (FloatingPointError, ValueError, RuntimeError) as e:
            self.policy_fault = str(e) or type(e).__name__
            return JointCommand.damping(self.cfg.damp_kd)

    def _guard(self, cmd: JointCommand, mode: ControlMode) -> JointCommand:
        """Clamp position targets inside the soft joint limits and limit their change per tick."""
        if mode in ("passive", "damp"):
            self.last_target = None
            return cmd
        q = np.clip(cmd.q, self.q_lo, self.q_hi)
        if self.last_target is not None:
            step = self.cfg.max_target_step_rad
            q = np.clip(q, self.last_target - step, self.last_target + step)
        self.last_target = q
        return JointCommand(q=q, dq=cmd.dq, kp=cmd.kp, kd=cmd.kd, tau=cmd.tau)
