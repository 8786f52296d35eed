"""One control tick, free of I/O: robot state + velocity command + operator events → the joint command to send.

The Unitree wireless remote is read here from each fresh LowState (drivers.go2.remote, docs/go2.md §12): L2+B held
damps in the same tick and latches (an e-stop), L2 held while A goes down confirms stand-up (accepted only lying level
with fresh state, like `edge stand`). Used by edge.controls.controlsd (the 50 Hz process) and directly by tests with a
fake clock.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drivers.geometry import quat_to_rpy
from drivers.go2.constants import NUM_JOINTS
from drivers.go2.remote import ESTOP_COMBO, STAND_COMBO, RemoteError, decode_remote, held, pressed
from drivers.robot_io import JointCommand, RobotState
from edge.common.config import ControlConfig, SafetyConfig
from edge.controls.locomotion import Policy
from edge.controls.safety import (
    JointGuard,
    SafetyInputs,
    SafetyStateMachine,
    VelocityLimiter,
    damping,
    is_moving,
    state_is_sane,
)
from edge.msg.messages import ControlMode


@dataclass(frozen=True)
class TickResult:
    command: JointCommand
    mode: ControlMode
    reason: str
    velocity: np.ndarray  # [vx, vy, wz] fed to the policy (zeros outside walk)
    roll: float
    pitch: float
    remote: frozenset[str] = frozenset()  # wireless-remote keys held in the state used this tick


def smoothstep(s: float) -> float:
    s = min(max(s, 0.0), 1.0)
    return s * s * (3.0 - 2.0 * s)


class Controller:
    """One tick: the safety state machine, the command for its mode, then the guards (edge.controls.safety)."""

    def __init__(self, *, control: ControlConfig, safety: SafetyConfig, policy: Policy):
        self.cfg, self.safety, self.policy = control, safety, policy
        self.sm = SafetyStateMachine(safety=safety, stand_duration_s=control.stand_duration_s)
        self.limiter = VelocityLimiter(safety)
        self.joints = JointGuard(safety)
        self.joints.check_gains(f"policy {policy.cfg.name}", policy.cfg.kp, policy.cfg.kd)
        self.joints.check_gains("control.stand_kp / stand_kd", control.stand_kp, control.stand_kd)
        self.stand_from: np.ndarray | None = None
        self.policy_fault = ""
        self.stand_kp = np.full(NUM_JOINTS, control.stand_kp)
        self.stand_kd = np.full(NUM_JOINTS, control.stand_kd)
        self.remote_keys: frozenset[str] = frozenset()
        self._remote_tick: int | None = None
        self.remote_errors = 0

    @property
    def mode(self) -> ControlMode:
        return self.sm.mode

    def tick(
        self,
        now_s: float,
        state: RobotState | None,
        velocity: np.ndarray | None,
        estop: bool = False,
        stand_requested: bool = False,
        *,
        estop_source: str = "",
        lateness_s: float = 0.0,
        send_gap_s: float = 0.0,
    ) -> TickResult:
        """velocity: the newest fresh [vx, vy, wz] or None when stale/absent. lateness_s: how late this tick started
        (missed deadlines included), for the lag rule; send_gap_s: since the previous tick started (0 on the first),
        for the stall rule."""
        roll = pitch = gyro = 0.0
        sane = True
        age = None if state is None else now_s - state.recv_mono_s
        if state is not None:
            sane = state_is_sane(state, self.safety)
            if sane:
                roll, pitch, _ = quat_to_rpy(state.quat_wxyz)
                gyro = float(np.linalg.norm(state.gyro))
        remote_estop, remote_stand = self._remote(state, age)
        if remote_estop and not estop:
            estop, estop_source = True, "remote " + "+".join(ESTOP_COMBO)
        fresh = velocity is not None and bool(np.isfinite(velocity).all())
        prev_mode = self.sm.mode
        mode = self.sm.step(
            SafetyInputs(
                now_s=now_s,
                state_age_s=age,
                state_finite=sane,
                roll_rad=roll,
                pitch_rad=pitch,
                estop=estop,
                estop_source=estop_source,
                stand_requested=stand_requested or remote_stand,
                gyro_rad_s=gyro,
                lateness_s=lateness_s,
                send_gap_s=send_gap_s,
                velocity_fresh=fresh,
                velocity_nonzero=fresh and velocity is not None and is_moving(velocity, self.safety),
                policy_fault=self.policy_fault,
            )
        )
        if mode != prev_mode:
            self._enter(mode, state)
        cmd = self._command(mode, now_s, state, velocity if fresh else None)
        if mode == "walk" and self.policy_fault:  # the policy failed this tick: damp now, not next tick
            mode, cmd = "damp", self.damp_now(f"policy fault: {self.policy_fault}", now_s)
        cmd = self.joints.guard(cmd, mode)
        if not cmd.is_finite():  # last line of defence: never send NaN
            mode, cmd = "damp", self.damp_now("non-finite command", now_s)
        return TickResult(cmd, mode, self.sm.reason, self.limiter.velocity.copy(), roll, pitch, self.remote_keys)

    def _remote(self, state: RobotState | None, age: float | None) -> tuple[bool, bool]:
        """(e-stop, stand confirmation) from the wireless remote in a fresh LowState: the e-stop on the level (both
        keys held: a missed LowState cannot lose it), the stand confirmation on A going down while L2 is held."""
        if state is None or age is None or age > self.safety.lowstate_max_age_s or not state.wireless_remote:
            return False, False
        if state.tick == self._remote_tick:
            return held(ESTOP_COMBO, self.remote_keys), False
        try:
            keys = decode_remote(state.wireless_remote)
        except RemoteError:
            self.remote_errors += 1
            return False, False
        prev, self.remote_keys, self._remote_tick = self.remote_keys, keys, state.tick
        return held(ESTOP_COMBO, keys), pressed(STAND_COMBO, keys, prev)

    def damp_now(self, reason: str, now_s: float) -> JointCommand:
        """Latch damp at once and return the damping command (to send every cycle from now on)."""
        self.sm.fault(reason, now_s)
        self.limiter.zero()
        return damping(self.safety)

    def _enter(self, mode: ControlMode, state: RobotState | None) -> None:
        if mode == "stand_up" and state is not None:
            self.stand_from = self.joints.clamp_pose(state.q)
            self.joints.reset()
        if mode == "walk":
            self.policy.reset()
        if mode != "walk":
            self.limiter.zero()

    def _command(
        self, mode: ControlMode, now_s: float, state: RobotState | None, velocity: np.ndarray | None
    ) -> JointCommand:
        if mode in ("passive", "damp"):  # passive damps too, as Unitree's Go2 "Passive" state (docs/go2.md §11)
            return damping(self.safety)
        if mode == "stand_up":
            s = smoothstep((now_s - self.sm.entered_s) / self.cfg.stand_duration_s)
            start = self.policy.default_sdk if self.stand_from is None else self.stand_from
            target = (1 - s) * start + s * self.policy.default_sdk
            return JointCommand(q=target, kp=self.stand_kp, kd=self.stand_kd)
        if mode == "hold":
            return JointCommand(q=self.policy.default_sdk, kp=self.stand_kp, kd=self.stand_kd)
        # walk: stale command → zero at once (safety stop); fresh command → limited and slew-limited
        command = self.limiter.step(velocity)
        if state is None:  # cannot walk without a state: the state machine damps first
            return damping(self.safety)
        try:
            return self.policy.step(state, command)
        except (FloatingPointError, ValueError, RuntimeError) as e:
            self.policy_fault = str(e) or type(e).__name__
            return damping(self.safety)
