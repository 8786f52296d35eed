"""Safety of the control loop, in one place: the state machine, the checks on what comes in (LowState, IMU quaternion,
velocity command), the guards on what goes out (velocity limits and slew, joint-target clamp and step, gain bounds)
and the one damping routine. Every number comes from SafetyConfig (config section `safety`, edge/common/config.py)
by name; nothing here is a bare literal.

    passive ──stand──▶ stand_up ──ramp done──▶ hold ◀──zero/stale velocity for a while, or a lag event── walk
                                                 └────────── fresh non-zero velocity ─────────────────────▶┘
    any mode but passive: LowState stale / non-finite, tilt over limit, policy fault, e-stop ──▶ damp (latched)

Passive sends damping (kp 0, kd safety.damp_kd), as Unitree's Go2 deploy does in its "Passive" state (docs/go2.md
§11), so a restarted control takes over from the LowCmd watchdog's damping without a gap. Stand-up is accepted only
with the robot lying level and still, on a LowState stream that has been fresh for a while (LowState gaps before the
robot is commanded are waited out in passive, never latched). A tick that starts late beyond the bound (a stall,
missed deadlines) turns walk into hold for safety.lag_hold_s; one so late that the LowCmd stream paused longer than
safety.watchdog_timeout_s (the watchdog has damped the motors) latches damp. Damp is left only by restarting the
process (which re-enters passive and ramps from the measured pose).
The state machine is pure (time comes in, mode and reason go out); the guards are pure but for the last target.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from drivers.go2.constants import soft_limits
from drivers.robot_io import JointCommand, RobotIO, RobotState
from edge.common.config import ConfigError, SafetyConfig
from edge.common.realtime import DT_CONTROL, Ratekeeper
from edge.msg.messages import ControlMode

log = logging.getLogger(__name__)


# ---- inputs ----------------------------------------------------------------------------------------------------


def state_is_sane(state: RobotState, safety: SafetyConfig) -> bool:
    """Finite joints and IMU, and an IMU quaternion of plausible norm: a degenerate one (e.g. all zeros) would read
    as a level robot."""
    n = float(state.quat_wxyz @ state.quat_wxyz)
    return state.is_finite() and safety.quat_norm_sq_min < n < safety.quat_norm_sq_max


def is_moving(velocity: np.ndarray, safety: SafetyConfig) -> bool:
    """A velocity command that asks the robot to walk (any component above the threshold)."""
    return bool(np.any(np.abs(velocity) > safety.moving_threshold))


def damping(safety: SafetyConfig) -> JointCommand:
    """Zero stiffness, viscous damping: the safe command, sent every cycle."""
    return JointCommand.damping(safety.damp_kd)


# ---- state machine ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SafetyInputs:
    now_s: float
    state_age_s: float | None  # None: no LowState received yet
    state_finite: bool = True  # finite and a sane IMU quaternion (state_is_sane)
    roll_rad: float = 0.0
    pitch_rad: float = 0.0
    estop: bool = False
    estop_source: str = ""  # who asked ("operator: …", "remote L2+B"), for the reason
    stand_requested: bool = False
    gyro_rad_s: float = 0.0  # |body angular rate|
    lateness_s: float = 0.0  # how late this tick started after the first deadline it served (missed ones count)
    send_gap_s: float = 0.0  # since the previous tick started (≈ since our previous LowCmd); 0 on the first tick
    velocity_fresh: bool = False  # a velocity command younger than safety.command_max_age_s
    velocity_nonzero: bool = False
    policy_fault: str = ""  # non-empty: last policy step failed (non-finite output, exception)


class SafetyStateMachine:
    def __init__(self, *, safety: SafetyConfig, stand_duration_s: float):
        self.safety = safety
        self.stand_duration_s = stand_duration_s
        self.mode: ControlMode = "passive"
        self.reason = "waiting for LowState"
        self.entered_s = 0.0
        self.idle_since_s: float | None = None  # walk: since when the velocity has been zero or stale
        self.steady_since_s: float | None = None  # since when LowState has been fresh without a gap
        self.walk_after_s = -float("inf")  # a lag event holds until then
        self.lag_events = 0
        self.last_lag_s = 0.0  # lateness of the latest lag event

    def _go(self, mode: ControlMode, reason: str, now_s: float) -> None:
        if mode != self.mode:
            self.mode, self.entered_s = mode, now_s
            self.idle_since_s = None
        self.reason = reason

    def fault(self, reason: str, now_s: float) -> None:
        """Latch damp now, for faults found outside step() (a non-finite command, an exception in the tick)."""
        self._go("damp", reason, now_s)

    def step(self, i: SafetyInputs) -> ControlMode:
        lim = self.safety
        if self.mode == "damp":
            return self.mode
        if i.estop:
            self._go("damp", f"e-stop ({i.estop_source})" if i.estop_source else "e-stop", i.now_s)
            return self.mode
        stale = i.state_age_s is None or i.state_age_s > lim.lowstate_max_age_s
        if stale:
            self.steady_since_s = None
        elif self.steady_since_s is None:
            self.steady_since_s = i.now_s
        tilt = max(abs(i.roll_rad), abs(i.pitch_rad))
        lag = i.lateness_s > lim.max_tick_lateness_s
        if lag:
            self.lag_events += 1
            self.last_lag_s = i.lateness_s
        if self.mode == "passive":
            self._go("passive", self._stand_refusal(i, stale, tilt) or "waiting for stand", i.now_s)
            if i.stand_requested and not self._stand_refusal(i, stale, tilt):
                self._go("stand_up", "stand requested", i.now_s)
            return self.mode
        tilted = tilt > lim.max_tilt_rad
        if stale:
            age = "never" if i.state_age_s is None else f"{i.state_age_s * 1e3:.0f} ms"
            self._go("damp", f"LowState stale ({age})", i.now_s)
        elif not i.state_finite:
            self._go("damp", "LowState not finite", i.now_s)
        elif tilted:
            self._go(
                "damp",
                f"tilt over {lim.max_tilt_rad:.2f} rad (roll {i.roll_rad:.2f}, pitch {i.pitch_rad:.2f})",
                i.now_s,
            )
        elif i.policy_fault:
            self._go("damp", f"policy fault: {i.policy_fault}", i.now_s)
        elif i.send_gap_s > lim.watchdog_timeout_s:
            # our LowCmd stream paused longer than the watchdog waits: it has damped the motors (the robot may lie on
            # its belly now), so resuming hold targets would be an unramped stand-up; latch damp like the watchdog
            self._go(
                "damp",
                f"stalled: no LowCmd for ≈ {i.send_gap_s * 1e3:.0f} ms, over the watchdog's "
                f"{lim.watchdog_timeout_s * 1e3:.0f} ms (it damped the motors)",
                i.now_s,
            )
        elif self.mode == "stand_up":
            if i.now_s - self.entered_s >= self.stand_duration_s:
                self._go("hold", "stand-up done", i.now_s)
        elif self.mode == "hold":
            if i.velocity_fresh and i.velocity_nonzero and i.now_s >= self.walk_after_s:
                self._go("walk", "velocity command", i.now_s)
        elif self.mode == "walk":
            if lag:
                self.walk_after_s = i.now_s + lim.lag_hold_s
                self._go(
                    "hold",
                    f"lag: tick started {i.lateness_s * 1e3:.0f} ms late (bound {lim.max_tick_lateness_s * 1e3:.0f} "
                    f"ms): holding {lim.lag_hold_s:g} s",
                    i.now_s,
                )
            elif i.velocity_fresh and i.velocity_nonzero:
                self.idle_since_s = None
                self.reason = "velocity command"
            else:
                if self.idle_since_s is None:
                    self.idle_since_s = i.now_s
                self.reason = "velocity zero" if i.velocity_fresh else "velocity stale: zero command"
                if i.now_s - self.idle_since_s >= lim.zero_then_hold_s:
                    self._go("hold", self.reason + ", holding", i.now_s)
        return self.mode

    def _stand_refusal(self, i: SafetyInputs, stale: bool, tilt: float) -> str:
        """Why a stand-up would be refused now ("" = it would be accepted): it needs fresh, sane LowState that has
        been steady for stand_min_steady_s, and the robot lying level (|roll|, |pitch| ≤ stand_max_tilt_rad) and still
        (|gyro| ≤ stand_max_gyro_rad_s)."""
        lim = self.safety
        if stale:
            return "waiting for LowState"
        if not i.state_finite:
            return "LowState not finite"
        steady = i.now_s - (i.now_s if self.steady_since_s is None else self.steady_since_s)
        if steady < lim.stand_min_steady_s:
            return f"LowState steady for {steady:.2f} s of {lim.stand_min_steady_s:g} s"
        if tilt > lim.stand_max_tilt_rad:
            return (
                f"not lying level: roll {i.roll_rad:.2f}, pitch {i.pitch_rad:.2f} rad (stand-up needs ≤ "
                f"{lim.stand_max_tilt_rad:g})"
            )
        if i.gyro_rad_s > lim.stand_max_gyro_rad_s:
            return f"still moving: {i.gyro_rad_s:.2f} rad/s (stand-up needs ≤ {lim.stand_max_gyro_rad_s:g})"
        return ""


# ---- outputs ---------------------------------------------------------------------------------------------------


class VelocityLimiter:
    """The velocity fed to the policy: clipped to the command limits and slew-limited per tick; zero at once when the
    command is stale (None)."""

    def __init__(self, safety: SafetyConfig):
        self.limits = np.array([safety.max_vx_m_s, safety.max_vy_m_s, safety.max_wz_rad_s])
        self.slew = np.array([safety.slew_vx_m_s, safety.slew_vy_m_s, safety.slew_wz_rad_s])
        self.velocity = np.zeros(3)

    def zero(self) -> None:
        self.velocity[:] = 0.0

    def step(self, goal: np.ndarray | None) -> np.ndarray:
        if goal is None:
            self.zero()
        else:
            target = np.clip(goal, -self.limits, self.limits)
            self.velocity += np.clip(target - self.velocity, -self.slew, self.slew)
        return self.velocity


class JointGuard:
    """Last line before the motors: position targets inside the soft joint limits and at most max_target_step_rad from
    the previous target per tick; kp, kd within the gain bounds. Damping and zero-torque commands pass (and reset the
    step limit)."""

    def __init__(self, safety: SafetyConfig):
        self.safety = safety
        self.q_lo, self.q_hi = soft_limits(safety.soft_limit_factor)
        self.last_target: np.ndarray | None = None

    def check_gains(self, what: str, kp: float, kd: float) -> None:
        """Refuse gains beyond the bounds, e.g. a policy contract's, at load time: ConfigError, one line naming the
        field, the value and the bound."""
        for name, value, bound_name, bound in (
            ("kp", kp, "safety.max_kp", self.safety.max_kp),
            ("kd", kd, "safety.max_kd", self.safety.max_kd),
        ):
            if not 0 <= value <= bound:
                raise ConfigError(f"{what} {name} = {value:g}: outside [0, {bound:g}] ({bound_name})")

    def reset(self) -> None:
        self.last_target = None

    def clamp_pose(self, q: np.ndarray) -> np.ndarray:
        return np.clip(q, self.q_lo, self.q_hi)

    def guard(self, cmd: JointCommand, mode: ControlMode) -> JointCommand:
        """The last step before the driver: gains re-checked in every mode (damping must have kp 0 and kd within
        the bound), position targets clamped and step-limited in the position modes."""
        if mode in ("passive", "damp"):
            self.last_target = None
            if np.any(cmd.kp != 0) or np.any(cmd.kd > self.safety.max_kd) or np.any(cmd.kd < 0):
                return damping(self.safety)
            return cmd
        q = np.clip(cmd.q, self.q_lo, self.q_hi)
        if self.last_target is not None:
            step = self.safety.max_target_step_rad
            q = np.clip(q, self.last_target - step, self.last_target + step)
        self.last_target = q
        return JointCommand(
            q=q,
            dq=cmd.dq,
            kp=np.clip(cmd.kp, 0.0, self.safety.max_kp),
            kd=np.clip(cmd.kd, 0.0, self.safety.max_kd),
            tau=cmd.tau,
        )


# ---- damping on the way out ------------------------------------------------------------------------------------


def send_damping(
    robot: RobotIO, safety: SafetyConfig, *, duration_s: float, stop: threading.Event | None = None
) -> int:
    """The one damping routine for leaving control: damping every control period for duration_s (or until stop is
    set), a failed write logged and retried next period. Used by controlsd on its way out and by edge.controls.damp
    (systemd ExecStopPost=) after any stop. Returns the number of commands sent."""
    cmd = damping(safety)
    rk = Ratekeeper(DT_CONTROL)
    end = time.monotonic() + duration_s
    sent = 0
    while time.monotonic() < end and not (stop is not None and stop.is_set()):
        rk.wait()
        try:
            robot.write(cmd)
            sent += 1
        except Exception:  # keep damping: the next period tries again
            log.exception("damping write failed")
    return sent


__all__ = [
    "JointGuard",
    "SafetyInputs",
    "SafetyStateMachine",
    "VelocityLimiter",
    "damping",
    "is_moving",
    "send_damping",
    "state_is_sane",
]
