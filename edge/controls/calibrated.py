"""The robot as the control loop sees it after calibration (calibration/store.py): LowState with the gyro bias and
the joint zero offsets removed; joint targets put back in the motors' frame and kept within the hard joint limits."""

from __future__ import annotations

import logging

import numpy as np

from calibration.store import CalibrationError, RobotCalibration, StateCorrection, load_calibration
from drivers.go2.constants import Q_MAX, Q_MIN
from drivers.robot_io import JointCommand, RobotIO, RobotState
from edge.common.config import CalibrationConfig, resolve_path

log = logging.getLogger(__name__)


class CalibratedRobot:
    """A RobotIO over another one, applying a StateCorrection both ways."""

    def __init__(self, robot: RobotIO, correction: StateCorrection):
        self.robot, self.correction = robot, correction
        self._raw: RobotState | None = None
        self._fixed: RobotState | None = None

    def latest_state(self) -> RobotState | None:
        raw = self.robot.latest_state()
        if raw is not self._raw:  # correct each new state once
            self._raw, self._fixed = raw, None if raw is None else self.correction.state(raw)
        return self._fixed

    def write(self, cmd: JointCommand) -> JointCommand:
        if not self.correction.active:
            return self.robot.write(cmd)
        q = np.clip(self.correction.command_q(cmd.q), Q_MIN, Q_MAX)
        return self.robot.write(JointCommand(q=q, dq=cmd.dq, kp=cmd.kp, kd=cmd.kd, tau=cmd.tau))

    @property
    def remote_estop_latched(self) -> bool:
        return self.robot.remote_estop_latched

    def close(self) -> None:
        self.robot.close()


def load_for_control(cfg: CalibrationConfig, profile: str) -> RobotCalibration | None:
    """The robot's calibration for the control loop: None when there is none and none is required; raises
    CalibrationError when required (the robot profile) and missing or invalid — control then does not start."""
    path = resolve_path(cfg.file)
    if not path.is_file():
        if cfg.required:
            raise CalibrationError(
                f"calibration required but {path} is missing: run `edge calibrate imu` and "
                "`edge calibrate joints` with the robot lying down"
            )
        log.info("no calibration file %s: raw gyro and joint readings", path)
        return None
    cal = load_calibration(path)
    if cal.profile != profile:
        raise CalibrationError(f"{path} was measured on the {cal.profile} profile, this is {profile}")
    log.info("calibration %s: gyro bias %s, joint offsets %s", path, cal.imu is not None, cal.joints is not None)
    return cal
