"""Quaternion conventions shared by the drivers and the processes: the IMU quaternion is (w, x, y, z), body → world
(docs/go2.md §2.2; unitree_sdk2 `IMUState_.quaternion`)."""

from __future__ import annotations

import math

import numpy as np


def quat_to_matrix(q_wxyz) -> np.ndarray:
    """Rotation matrix (body → world) of a (w, x, y, z) quaternion; normalised first."""
    w, x, y, z = (float(v) for v in q_wxyz)
    n = math.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / n, x / n, y / n, z / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def quat_to_rpy(q_wxyz) -> tuple[float, float, float]:
    """ZYX Euler angles (roll, pitch, yaw), rad."""
    w, x, y, z = (float(v) for v in q_wxyz)
    roll = math.atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    pitch = math.asin(max(-1.0, min(1.0, 2 * (w * y - z * x))))
    yaw = math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return roll, pitch, yaw


def projected_gravity(q_wxyz) -> np.ndarray:
    """Unit gravity in the body frame, R^T·[0, 0, −1]; [0, 0, −1] upright (docs/go2.md §2.2; unit quaternion
    assumed)."""
    w, x, y, z = (float(v) for v in q_wxyz)
    return np.array([2 * (w * y - z * x), -2 * (z * y + w * x), 1 - 2 * (w * w + z * z)])
