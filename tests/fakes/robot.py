"""The one RobotState builder and the one fake RobotIO of the test suite."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from drivers.robot_io import JointCommand, RobotIO, RobotState

STAND_Q = (0.0, 0.8, -1.5) * 4  # the robot_lab policy's default pose, SDK order (configs/policies)


def robot_state(
    *,
    q: Sequence[float] | np.ndarray = STAND_Q,
    dq: Sequence[float] | np.ndarray | None = None,
    tau: Sequence[float] | np.ndarray | None = None,
    quat_wxyz: Sequence[float] | np.ndarray = (1.0, 0.0, 0.0, 0.0),
    gyro: Sequence[float] | np.ndarray = (0.0, 0.0, 0.0),
    accel: Sequence[float] | np.ndarray = (0.0, 0.0, 9.81),
    foot_force: float | Sequence[float] | np.ndarray = 35.0,
    tick: int = 1,
    t: float = 0.0,
    wireless_remote: bytes = b"",
) -> RobotState:
    """A LowState as the drivers deliver it: standing still and level unless told otherwise; received at t
    (time.monotonic seconds). foot_force: one value for all four feet or four values (FR, FL, RR, RL)."""
    zeros = np.zeros(12)
    return RobotState(
        q=q,
        dq=zeros if dq is None else dq,
        tau=zeros if tau is None else tau,
        quat_wxyz=quat_wxyz,
        gyro=gyro,
        accel=accel,
        foot_force=np.broadcast_to(np.asarray(foot_force, float), (4,)),
        tick=tick,
        recv_mono_s=t,
        wireless_remote=wireless_remote,
    )


class FakeRobot:
    """RobotIO without a robot: serves `state` (or, live, a fresh state stamped now on every read), records every
    command written, and can be told to fail the next writes."""

    def __init__(self, state: RobotState | None = None, live: Callable[[float], RobotState] | None = None):
        self.state, self.live = state, live
        self.written: list[JointCommand] = []
        self.fail_writes = 0
        self.closed = False
        self.remote_estop_latched = False

    def latest_state(self) -> RobotState | None:
        if self.live is not None:
            return self.live(time.monotonic())
        return self.state

    def write(self, cmd: JointCommand) -> JointCommand:
        if self.closed:
            raise RuntimeError("FakeRobot is closed")
        if self.fail_writes > 0:
            self.fail_writes -= 1
            raise RuntimeError("write failed (FakeRobot.fail_writes)")
        self.written.append(cmd)
        return cmd

    def close(self) -> None:
        self.closed = True


def _is_robot_io(r: FakeRobot) -> RobotIO:  # checked by the type checker: the fake has the real interface
    return r
