"""Go2 leg forward kinematics from the constants in drivers.go2.constants (SDK order FR, FL, RR, RL)."""

from __future__ import annotations

import numpy as np

from drivers.go2.constants import CALF_LENGTH, FOOT_OFFSET, HIP_OFFSETS, LEGS_SDK, THIGH_LATERAL, THIGH_LENGTH

_HIP = np.array([HIP_OFFSETS[leg] for leg in LEGS_SDK], dtype=np.float64)  # (4, 3)
_LAT = np.array([THIGH_LATERAL[leg] for leg in LEGS_SDK], dtype=np.float64)  # (4,)
_FOOT = np.asarray(FOOT_OFFSET, dtype=np.float64)  # calf frame
assert abs(abs(FOOT_OFFSET[2]) - CALF_LENGTH) < 1e-9  # the foot sits CALF_LENGTH below the knee


def foot_positions(q_sdk) -> np.ndarray:
    """Body-frame foot-sphere centres (4, 3) for FR, FL, RR, RL from 12 joint angles in SDK order.

    Chain per leg: hip abduction about x at HIP_OFFSETS → thigh lateral offset → thigh pitch about y →
    THIGH_LENGTH down to the knee → calf pitch about y → FOOT_OFFSET in the calf frame.
    """
    return leg_kinematics(q_sdk)[0]


def leg_kinematics(q_sdk) -> tuple[np.ndarray, np.ndarray]:
    """Foot-sphere centres (4, 3) and calf-frame orientations (4, 3, 3), both in the body frame."""
    a = np.array(q_sdk, dtype=np.float64).reshape(4, 3)
    a[:, 2] += a[:, 1]  # calf frame pitch = thigh + knee
    s, c = np.sin(a).T, np.cos(a).T
    sa, s1, sb = s
    ca, c1, cb = c
    fx, fz = float(_FOOT[0]), float(_FOOT[2])
    # In the thigh-lateral frame (after abduction): x, z in the sagittal plane, y = lateral offset (+ FOOT_OFFSET y).
    px = -THIGH_LENGTH * s1 + cb * fx + sb * fz
    pz = -THIGH_LENGTH * c1 - sb * fx + cb * fz
    py = _LAT + _FOOT[1]
    feet = np.empty((4, 3))
    feet[:, 0] = _HIP[:, 0] + px
    feet[:, 1] = _HIP[:, 1] + ca * py - sa * pz
    feet[:, 2] = _HIP[:, 2] + sa * py + ca * pz
    z = np.zeros(4)
    calf = np.stack([cb, z, sb, sa * sb, ca, -sa * cb, -ca * sb, sa, ca * cb], axis=1).reshape(4, 3, 3)  # Rx(a)·Ry(b)
    return feet, calf
