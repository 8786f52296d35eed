"""Typed actions → body velocity setpoints over time. Pure: the caller passes the clock and the pose.

The pose is the robot's OWN estimate (yaw from the IMU, x/y from leg odometry), never simulator truth.

* open_loop — NaVILA Isaac semantics (docs/vln-models.md §1.8): a constant velocity (0.5 m/s or ±π/6 rad/s) for
  distance/speed or |angle|/rate seconds on the given clock, then zero. On the Go2 policy this lands short on
  distance and long on left turns (docs/go2.md §8); the result reports what odometry saw.
* closed_loop — Forward: proportional speed on the distance remaining ALONG THE START HEADING, clipped to
  [min, max] (the policy barely moves below ≈0.2 m/s), plus P heading hold on the start yaw; Turn: proportional
  yaw rate on the remaining angle, clipped to [min, max], zero inside the tolerance. Yaw is unwrapped by
  accumulating wrapped per-step deltas, so targets past ±π and multi-turn amounts work. On reaching the target the
  executor holds (vx = 0, yaw held) for ``settle_s`` and finishes once inside the tolerance; a Forward never
  reverses (an overshoot ends it). A timeout (factor × nominal duration + margin) ends any action, and an action
  that makes no progress (less than ``stall_min_forward_m`` / ``stall_min_turn_rad`` towards its target within
  ``stall_window_s``, e.g. walking into a wall or a landmark) ends at once as blocked: pushing on for the whole
  timeout tips the robot (docs/results.md, the stack evaluation's fall). The stall clock runs only while control
  walks (a lag hold is not a stall). Training's kinematic execution stops a move at contact (docs/navigation.md §2);
  the robot stops stall_window_s after its last progress.

Usage: ``ex.start(action, now, pose)`` then ``sp = ex.step(now, pose)`` every tick until ``sp.done``;
``ex.result()`` then describes the finished action.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple, Optional

from pydantic import BaseModel, ConfigDict, Field

from edge.navigation.parse import Action, Forward, Stop, Turn

ExecutionMode = Literal["open_loop", "closed_loop"]


class ExecutorParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    forward_speed_m_s: float = Field(0.5, gt=0, allow_inf_nan=False)  # open-loop speed, closed-loop max
    turn_rate_rad_s: float = Field(math.pi / 6, gt=0, allow_inf_nan=False)  # open-loop rate, closed-loop max
    kp_distance: float = Field(1.5, gt=0, allow_inf_nan=False)  # (m/s) per m remaining
    kp_turn: float = Field(2.0, gt=0, allow_inf_nan=False)  # (rad/s) per rad remaining
    kp_heading: float = Field(3.0, ge=0, allow_inf_nan=False)  # heading hold while walking / settling
    max_heading_rate_rad_s: float = Field(0.5, ge=0, allow_inf_nan=False)
    min_speed_m_s: float = Field(0.25, ge=0, allow_inf_nan=False)  # policy: 0.1 → 0.02, 0.25 → 0.14 m/s
    min_turn_rate_rad_s: float = Field(0.2, ge=0, allow_inf_nan=False)
    distance_tol_m: float = Field(0.02, gt=0, allow_inf_nan=False)
    angle_tol_rad: float = Field(math.radians(1.5), gt=0, allow_inf_nan=False)
    timeout_factor: float = Field(3.0, ge=1, allow_inf_nan=False)  # × nominal open-loop duration
    timeout_margin_s: float = Field(2.0, ge=0, allow_inf_nan=False)
    settle_s: float = Field(0.25, ge=0, allow_inf_nan=False)  # closed loop: hold before done
    # closed loop, blocked: at the minimum forward command (0.25 m/s) the policy walks ≈ 0.14 m/s (docs/go2.md §8):
    # ≈ 0.2 m per window, 4× the minimum; turns are commanded at ≥ 0.2 rad/s (0.3 rad per window, 6× the minimum)
    stall_window_s: float = Field(1.5, gt=0, allow_inf_nan=False)
    stall_min_forward_m: float = Field(0.05, gt=0, allow_inf_nan=False)
    stall_min_turn_rad: float = Field(math.radians(3.0), gt=0, allow_inf_nan=False)


class Pose2D(NamedTuple):
    x: float
    y: float
    yaw: float


class Setpoint(NamedTuple):
    vx: float
    vy: float
    wz: float
    done: bool
    timed_out: bool = False


@dataclass(frozen=True)
class ExecutionResult:
    kind: Literal["forward", "turn", "stop"]
    mode: ExecutionMode
    commanded: float  # m for forward, rad for turn, 0 for stop
    achieved: float  # from the pose estimate: distance along the start heading / accumulated yaw
    duration_s: float
    timed_out: bool
    lateral_m: float = 0.0  # displacement across the start heading
    yaw_change_rad: float = 0.0
    error: str = ""  # e.g. a non-finite pose aborted the action
    blocked: bool = False  # closed loop: no progress within stall_window_s (ended early, not timed out)


def wrap_angle(a: float) -> float:
    """→ [-π, π)."""
    return (a + math.pi) % (2.0 * math.pi) - math.pi


def _clip_mag(value: float, lo: float, hi: float) -> float:
    """sign(value) · clip(|value|, lo, hi)."""
    return math.copysign(min(max(abs(value), lo), hi), value)


_ZERO_DONE = Setpoint(0.0, 0.0, 0.0, True)


class ActionExecutor:
    def __init__(self, mode: ExecutionMode = "closed_loop", params: Optional[ExecutorParams] = None) -> None:
        if mode not in ("open_loop", "closed_loop"):
            raise ValueError(f"mode must be open_loop or closed_loop, got {mode!r}")
        self.mode: ExecutionMode = mode
        self.params = params if params is not None else ExecutorParams()
        self._action: Optional[Action] = None
        self._result: Optional[ExecutionResult] = None
        self.last_pose = Pose2D(0.0, 0.0, 0.0)  # the newest pose given to start() / step()

    @property
    def busy(self) -> bool:
        return self._action is not None

    def start(self, action: Action, now_s: float, pose: Pose2D) -> None:
        """Begin an action (replacing any running one); call step() on the same tick for the first setpoint.
        Raises TypeError / ValueError (state unchanged) for something that is not a finite Forward / Turn / Stop."""
        p = self.params
        kind: Literal["forward", "turn", "stop"]
        if isinstance(action, Forward):
            kind, target, nominal = "forward", float(action.distance_m), abs(action.distance_m) / p.forward_speed_m_s
        elif isinstance(action, Turn):
            kind, target, nominal = "turn", float(action.angle_rad), abs(action.angle_rad) / p.turn_rate_rad_s
        elif isinstance(action, Stop):
            kind, target, nominal = "stop", 0.0, 0.0
        else:
            raise TypeError(f"not an action: {action!r}")
        if not math.isfinite(target):
            raise ValueError(f"non-finite action amount: {action!r}")
        self._action, self._result, self._kind, self._target = action, None, kind, target
        self._t0 = self._t_reached = now_s
        self._reached = False
        self._start, self._last_yaw, self._yaw_acc = pose, pose.yaw, 0.0
        self._progress_ref, self._t_progress = 0.0, now_s
        self.last_pose = pose
        self._nominal_s = nominal
        self._timeout_s = p.timeout_factor * nominal + p.timeout_margin_s

    def step(self, now_s: float, pose: Pose2D, walking: bool = True) -> Setpoint:
        """The setpoint for this tick; done=True (with zero velocity) once the action is over. Idle → zero, done.
        walking: control is executing velocity commands; while it is not (a lag hold, the first ticks of a move)
        the robot cannot make progress, so the stall clock restarts."""
        if self._action is None:
            return _ZERO_DONE
        if not all(math.isfinite(v) for v in (now_s, *pose, *self._start)):
            return self._finish(now_s, self._start, error="non-finite pose or time")
        self._yaw_acc += wrap_angle(pose.yaw - self._last_yaw)
        self._last_yaw, self.last_pose = pose.yaw, pose
        elapsed = now_s - self._t0
        if self._kind == "stop":
            return self._finish(now_s, pose)
        if self.mode == "open_loop":
            if elapsed >= self._nominal_s - 1e-9:
                return self._finish(now_s, pose)
            p = self.params
            if self._kind == "forward":
                return Setpoint(math.copysign(p.forward_speed_m_s, self._target), 0.0, 0.0, False)
            return Setpoint(0.0, 0.0, math.copysign(p.turn_rate_rad_s, self._target), False)
        if elapsed >= self._timeout_s:
            return self._finish(now_s, pose, timed_out=True)
        if not walking:
            self._t_progress = now_s
        return self._closed_loop(now_s, pose)

    def result(self) -> Optional[ExecutionResult]:
        """The last finished action's result; None while running or before any."""
        return self._result

    def estimate_so_far(self) -> float:
        """The running action's achieved amount from the newest pose (m along the start heading / accumulated yaw);
        0 when idle or for a Stop. For reporting a preempted action."""
        if self._action is None or self._kind == "stop":
            return 0.0
        return self._along_across(self.last_pose)[0] if self._kind == "forward" else self._yaw_acc

    # ---- internals ---------------------------------------------------------------------------------------------

    def _along_across(self, pose: Pose2D) -> tuple[float, float]:
        dx, dy = pose.x - self._start.x, pose.y - self._start.y
        c, s = math.cos(self._start.yaw), math.sin(self._start.yaw)
        return dx * c + dy * s, -dx * s + dy * c

    def _stalled(self, progress: float, now_s: float) -> bool:
        """Progress (m or rad towards the target) advanced less than the minimum within stall_window_s."""
        p = self.params
        step = p.stall_min_forward_m if self._kind == "forward" else p.stall_min_turn_rad
        if self._reached or progress - self._progress_ref >= step:
            self._progress_ref, self._t_progress = progress, now_s
            return False
        return now_s - self._t_progress >= p.stall_window_s

    def _closed_loop(self, now_s: float, pose: Pose2D) -> Setpoint:
        p = self.params
        sign = 1.0 if self._target >= 0 else -1.0
        along = self._along_across(pose)[0]
        if self._stalled(sign * (along if self._kind == "forward" else self._yaw_acc), now_s):
            return self._finish(now_s, pose, blocked=True)
        if self._kind == "forward":
            remaining = abs(self._target) - sign * along
            wz = _clip_mag(-p.kp_heading * self._yaw_acc, 0.0, p.max_heading_rate_rad_s)
            in_tol = remaining < p.distance_tol_m  # includes an overshoot: never reverse
            self._mark_reached(in_tol, now_s)
            vx = (
                0.0
                if self._reached
                else sign * min(max(p.kp_distance * remaining, p.min_speed_m_s), p.forward_speed_m_s)
            )
        else:
            err = self._target - self._yaw_acc
            in_tol = abs(err) < p.angle_tol_rad
            self._mark_reached(in_tol, now_s)
            vx = 0.0
            hold = abs(err) < 0.5 * p.angle_tol_rad  # aim inside the tolerance: the policy drifts when idle
            wz = 0.0 if hold else _clip_mag(p.kp_turn * err, p.min_turn_rate_rad_s, p.turn_rate_rad_s)
        if self._reached and in_tol and now_s - self._t_reached >= p.settle_s - 1e-9:
            return self._finish(now_s, pose)
        return Setpoint(vx, 0.0, wz, False)

    def _mark_reached(self, in_tol: bool, now_s: float) -> None:
        """The first time the target is within tolerance starts the settle hold."""
        if in_tol and not self._reached:
            self._reached, self._t_reached = True, now_s

    def _finish(
        self, now_s: float, pose: Pose2D, timed_out: bool = False, error: str = "", blocked: bool = False
    ) -> Setpoint:
        along, across = self._along_across(pose)
        achieved = math.nan if error else {"forward": along, "turn": self._yaw_acc, "stop": 0.0}[self._kind]
        self._result = ExecutionResult(
            kind=self._kind,
            mode=self.mode,
            commanded=self._target,
            achieved=achieved,
            duration_s=now_s - self._t0 if math.isfinite(now_s) else math.nan,
            timed_out=timed_out,
            lateral_m=across,
            yaw_change_rad=self._yaw_acc,
            error=error,
            blocked=blocked,
        )
        self._action = None
        return Setpoint(0.0, 0.0, 0.0, True, timed_out)
