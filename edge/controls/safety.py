"""The control loop's safety state machine (pure: time comes in, mode and reason go out).

    passive ──stand──▶ stand_up ──ramp done──▶ hold ◀──zero/stale velocity for a while── walk
                                                 └────────── fresh non-zero velocity ───────▶┘
    any mode but passive: LowState stale / non-finite, tilt over limit, policy fault, e-stop ──▶ damp (latched)

Damp is left only by restarting the process (which re-enters passive and ramps from the measured pose).
"""
from __future__ import annotations

from dataclasses import dataclass

from edge.msg.messages import ControlMode


@dataclass(frozen=True)
class SafetyInputs:
    now_s: float
    state_age_s: float | None      # None: no LowState received yet
    state_finite: bool = True
    roll_rad: float = 0.0
    pitch_rad: float = 0.0
    estop: bool = False
    stand_requested: bool = False
    velocity_fresh: bool = False   # a velocity command younger than its max age
    velocity_nonzero: bool = False
    policy_fault: str = ""         # non-empty: last policy step failed (non-finite output, exception)


@dataclass(frozen=True)
class SafetyLimits:
    lowstate_max_age_s: float = 0.05
    max_tilt_rad: float = 1.0
    stand_duration_s: float = 2.0
    zero_then_hold_s: float = 1.0


class SafetyStateMachine:
    def __init__(self, limits: SafetyLimits):
        self.limits = limits
        self.mode: ControlMode = "passive"
        self.reason = "waiting for LowState"
        self.entered_s = 0.0
        self.idle_since_s: float | None = None   # walk: since when the velocity has been zero or stale

    def _go(self, mode: ControlMode, reason: str, now_s: float) -> None:
        if mode != self.mode:
            self.mode, self.entered_s = mode, now_s
            self.idle_since_s = None
        self.reason = reason

    def fault(self, reason: str, now_s: float) -> None:
        """Latch damp now, for faults found outside step() (a non-finite command, an exception in the tick)."""
        self._go("damp", reason, now_s)

    def step(self, i: SafetyInputs) -> ControlMode:
        lim = self.limits
        if self.mode == "damp":
            return self.mode
        if i.estop:
            self._go("damp", "e-stop", i.now_s)
            return self.mode
        stale = i.state_age_s is None or i.state_age_s > lim.lowstate_max_age_s
        tilted = max(abs(i.roll_rad), abs(i.pitch_rad)) > lim.max_tilt_rad
        if self.mode == "passive":
            if stale:
                self._go("passive", "waiting for LowState", i.now_s)
            elif not i.state_finite:
                self._go("passive", "LowState not finite", i.now_s)
            elif tilted:
                self._go("passive", "robot tilted: refusing to stand", i.now_s)
            elif i.stand_requested:
                self._go("stand_up", "stand requested", i.now_s)
            else:
                self._go("passive", "waiting for stand", i.now_s)
            return self.mode
        if stale:
            age = "never" if i.state_age_s is None else f"{i.state_age_s * 1e3:.0f} ms"
            self._go("damp", f"LowState stale ({age})", i.now_s)
        elif not i.state_finite:
            self._go("damp", "LowState not finite", i.now_s)
        elif tilted:
            self._go("damp", f"tilt over {lim.max_tilt_rad:.2f} rad (roll {i.roll_rad:.2f}, pitch {i.pitch_rad:.2f})",
                     i.now_s)
        elif i.policy_fault:
            self._go("damp", f"policy fault: {i.policy_fault}", i.now_s)
        elif self.mode == "stand_up":
            if i.now_s - self.entered_s >= lim.stand_duration_s:
                self._go("hold", "stand-up done", i.now_s)
        elif self.mode == "hold":
            if i.velocity_fresh and i.velocity_nonzero:
                self._go("walk", "velocity command", i.now_s)
        elif self.mode == "walk":
            if i.velocity_fresh and i.velocity_nonzero:
                self.idle_since_s = None
                self.reason = "velocity command"
            else:
                if self.idle_since_s is None:
                    self.idle_since_s = i.now_s
                self.reason = "velocity zero" if i.velocity_fresh else "velocity stale: zero command"
                if i.now_s - self.idle_since_s >= lim.zero_then_hold_s:
                    self._go("hold", self.reason + ", holding", i.now_s)
        return self.mode
