"""Typed robot state and joint command, and the RobotIO protocol every robot driver implements.

Arrays are float64 numpy, joints in SDK order (drivers.go2.constants.JOINT_NAMES_SDK). Construction validates shapes,
so a misspelled or mis-sized field fails at the boundary, not at the motor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from drivers.go2.constants import NUM_JOINTS


def _vec(x, n: int, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if a.shape != (n,):
        raise ValueError(f"{name}: expected {n} values, got shape {np.shape(x)}")
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class RobotState:
    """One LowState, converted. `recv_mono_s` is the receiver's time.monotonic() at arrival."""

    q: np.ndarray  # rad
    dq: np.ndarray  # rad/s
    tau: np.ndarray  # N·m (motor estimate)
    quat_wxyz: np.ndarray  # IMU orientation
    gyro: np.ndarray  # rad/s, body frame
    accel: np.ndarray  # m/s², body frame
    foot_force: np.ndarray  # FR, FL, RR, RL (raw sensor units)
    tick: int
    recv_mono_s: float
    wireless_remote: bytes = b""  # the 40 bytes of the Unitree remote (drivers.go2.remote); b"" when absent

    def __post_init__(self):
        object.__setattr__(self, "wireless_remote", bytes(self.wireless_remote))
        for name, n in (
            ("q", NUM_JOINTS),
            ("dq", NUM_JOINTS),
            ("tau", NUM_JOINTS),
            ("quat_wxyz", 4),
            ("gyro", 3),
            ("accel", 3),
            ("foot_force", 4),
        ):
            object.__setattr__(self, name, _vec(getattr(self, name), n, name))

    def is_finite(self) -> bool:
        return all(np.isfinite(getattr(self, n)).all() for n in ("q", "dq", "quat_wxyz", "gyro"))


@dataclass(frozen=True)
class JointCommand:
    """Per-joint PD targets: tau_motor = tau + kp·(q − q_meas) + kd·(dq − dq_meas)."""

    q: np.ndarray
    dq: np.ndarray = field(default_factory=lambda: np.zeros(NUM_JOINTS))
    kp: np.ndarray = field(default_factory=lambda: np.zeros(NUM_JOINTS))
    kd: np.ndarray = field(default_factory=lambda: np.zeros(NUM_JOINTS))
    tau: np.ndarray = field(default_factory=lambda: np.zeros(NUM_JOINTS))

    def __post_init__(self):
        for name in ("q", "dq", "kp", "kd", "tau"):
            object.__setattr__(self, name, _vec(getattr(self, name), NUM_JOINTS, name))

    def is_finite(self) -> bool:
        return all(np.isfinite(getattr(self, n)).all() for n in ("q", "dq", "kp", "kd", "tau"))

    @staticmethod
    def damping(kd: float) -> "JointCommand":
        """Zero stiffness, viscous damping: the safe fallback, sent every cycle."""
        z = np.zeros(NUM_JOINTS)
        return JointCommand(q=z, dq=z, kp=z, kd=np.full(NUM_JOINTS, kd), tau=z)


class RobotIO(Protocol):
    """What the control loop needs from a robot (real Go2 over DDS, or the simulator over the same DDS)."""

    def latest_state(self) -> RobotState | None:
        """Newest state received, without blocking; None before the first one."""

    def write(self, cmd: JointCommand) -> JointCommand:
        """Send one command; returns what was actually sent."""

    @property
    def remote_estop_latched(self) -> bool:
        """The driver saw the remote's e-stop combination and damps every write from then on (False if it has none)."""

    def close(self) -> None: ...
