"""Leg odometry: the Go2's planar pose and velocity from LowState alone (IMU quaternion, joint angles, foot forces).

Low-level mode gives no base velocity, and simulator ground truth is never an input. Orientation comes from the IMU
quaternion (w, x, y, z; docs/go2.md §2.2); translation from kinematics: a foot in contact stays fixed in the
world, so between two updates the base moves by −(R_t·p_t − R_{t−1}·p_{t−1}) (p = body-frame foot position), averaged
over the feet in stance at both updates. The foot is a sphere that rolls: its centre advances by r·Δθ (Δθ = world
rotation of the calf), which is added back — without it the distance walked reads ~7 % short (r / leg length).

Odometry frame: origin at the base position at the first update (or the pose given to `reset`), z up, x along the
heading at that moment — i.e. yaw is relative to the IMU yaw at the first update, so the estimate starts at (0, 0, 0).
All arrays in SDK order (FR, FL, RR, RL).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from drivers.geometry import quat_to_matrix
from drivers.go2.constants import FOOT_CONTACT_THRESHOLD, FOOT_RADIUS
from drivers.go2.kinematics import leg_kinematics
from drivers.robot_io import RobotState
from edge.common.config import EdgeConfig


# --- odometry -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OdomEstimate:
    """Planar pose in the odometry frame and velocity. vx, vy: heading frame (world velocity rotated by −yaw, i.e.
    forward / left of the robot, ignoring tilt), m/s; wz: world yaw rate from the gyro, rad/s."""

    x: float
    y: float
    yaw: float
    vx: float
    vy: float
    wz: float
    stance: tuple[bool, ...]  # FR, FL, RR, RL contact at this update


class LegOdometry:
    """Kinematic leg odometry, one `update` per LowState (every control cycle, ~20 ms).

    contact_threshold: foot_force above which a foot is in stance, in the robot's units (per profile:
        drivers.go2.constants.FOOT_CONTACT_THRESHOLD; `leg_odometry(cfg)` picks it).
    fallback_feet: if > 0 and no foot exceeds the threshold, the `fallback_feet` feet with the largest positive
        force count as in stance instead (for uncalibrated or drifting sensors). 0 disables.
    vel_tau_s: time constant of the first-order low-pass on vx, vy (0 = raw per-update displacement / dt).
    foot_radius: rolling correction radius, m (0 treats the sphere centre as fixed in the world).
    hold_s: with no foot in stance at both updates (gait transition, flight phase, robot lifted) the position keeps
        integrating the last world velocity for up to `hold_s` seconds; after that the velocity is zero and the
        position holds.
    Non-finite input (q, quaternion, gyro, foot_force) or a zero quaternion: the update is skipped, the last estimate
    returned and `skipped` incremented.
    """

    def __init__(
        self,
        *,
        contact_threshold: float,
        fallback_feet: int = 0,
        vel_tau_s: float = 0.05,
        hold_s: float = 0.2,
        foot_radius: float = FOOT_RADIUS,
    ):
        self.contact_threshold = float(contact_threshold)
        self.fallback_feet = int(fallback_feet)
        self.vel_tau_s = float(vel_tau_s)
        self.hold_s = float(hold_s)
        self.foot_radius = float(foot_radius)
        self.skipped = 0
        self.reset()

    def reset(self, x: float = 0.0, y: float = 0.0, yaw: float = 0.0) -> None:
        """Forget history; the next update re-anchors the frame so that the estimate reads (x, y, yaw)."""
        self._pos = np.array([x, y, 0.0])
        self._yaw_init = float(yaw)
        self._rz0: np.ndarray | None = None  # world ← IMU-world rotation (about z), fixed at the first update
        self._prev_feet: np.ndarray | None = None  # R·p of the last update, (4, 3)
        self._prev_calf = np.zeros((4, 3, 3))  # calf orientations in the odometry frame
        self._prev_stance = np.zeros(4, dtype=bool)
        self._prev_t = 0.0
        self._v_world = np.zeros(3)
        self._hold_left = 0.0
        self._last = OdomEstimate(float(x), float(y), float(yaw), 0.0, 0.0, 0.0, (False,) * 4)

    @property
    def last(self) -> OdomEstimate:
        return self._last

    def contacts(self, foot_force) -> np.ndarray:
        """Stance mask (4,) from foot forces, with the optional largest-force fallback."""
        f = np.asarray(foot_force, dtype=np.float64)
        stance = f > self.contact_threshold
        if not stance.any() and self.fallback_feet > 0:
            top = np.argsort(f)[-self.fallback_feet :]
            stance[top[f[top] > 0]] = True
        return stance

    def update(self, state: RobotState) -> OdomEstimate:
        quat, ff = state.quat_wxyz, state.foot_force
        if not np.isfinite(np.concatenate((state.q, quat, state.gyro, ff))).all() or not np.dot(quat, quat) > 1e-12:
            self.skipped += 1
            return self._last

        r_imu = quat_to_matrix(quat)
        if self._rz0 is None:  # anchor: IMU yaw now ↦ requested yaw
            a = self._yaw_init - math.atan2(r_imu[1, 0], r_imu[0, 0])
            self._rz0 = np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0, 0, 1.0]])
        rot = self._rz0 @ r_imu
        p, calf = leg_kinematics(state.q)
        feet = p @ rot.T  # R·p per foot, odometry-frame orientation
        calf = rot @ calf  # (4, 3, 3)
        stance = self.contacts(ff)
        t = state.recv_mono_s

        if self._prev_feet is not None:
            dt = t - self._prev_t
            both = stance & self._prev_stance
            if both.any():
                d = -(feet[both] - self._prev_feet[both]).mean(axis=0)
                if self.foot_radius > 0:  # rolling: centre moves by ω × r·ẑ = r·(Δθy, −Δθx, 0)
                    dr = calf[both] @ self._prev_calf[both].transpose(0, 2, 1)  # ≈ I + [Δθ]×
                    d[0] += self.foot_radius * 0.5 * (dr[:, 0, 2] - dr[:, 2, 0]).mean()
                    d[1] -= self.foot_radius * 0.5 * (dr[:, 2, 1] - dr[:, 1, 2]).mean()
                self._pos += d
                if dt > 0:
                    k = 1.0 if self.vel_tau_s <= 0 else dt / (self.vel_tau_s + dt)
                    self._v_world += k * (d / dt - self._v_world)
                self._hold_left = self.hold_s
            elif dt > 0:
                step = min(dt, max(self._hold_left, 0.0))
                self._pos += self._v_world * step
                self._hold_left -= dt
                if self._hold_left <= 0:
                    self._v_world[:] = 0.0

        self._prev_feet, self._prev_calf, self._prev_stance, self._prev_t = feet, calf, stance, t
        yaw = math.atan2(rot[1, 0], rot[0, 0])
        c, s = math.cos(yaw), math.sin(yaw)
        vx, vy = c * self._v_world[0] + s * self._v_world[1], -s * self._v_world[0] + c * self._v_world[1]
        wz = float(rot[2] @ state.gyro)  # body angular rate → world z
        self._last = OdomEstimate(
            float(self._pos[0]), float(self._pos[1]), yaw, float(vx), float(vy), wz, tuple(bool(b) for b in stance)
        )
        return self._last


def leg_odometry(cfg: EdgeConfig) -> LegOdometry:
    """The odometry for this config's robot: its foot-contact threshold (odometry.contact_threshold, else the
    profile's: simulator newtons or the real Go2's raw sensor units)."""
    threshold = cfg.odometry.contact_threshold
    return LegOdometry(contact_threshold=FOOT_CONTACT_THRESHOLD[cfg.profile] if threshold is None else threshold)
