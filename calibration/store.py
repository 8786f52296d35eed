"""Per-robot calibration: what `edge calibrate …` measured, stored as one YAML per robot, checked at load, applied
by the stack (gyro bias and joint zero offsets in the control loop; the camera mount compared with the model's
training view by the VLM process and `edge doctor`).

Bounds are safety bounds: a stored value beyond them is refused at load (a robot with a 0.3 rad motor zero error
needs Unitree's motor calibration, not a software offset). Sources: docs/deployment.md §Calibration.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from drivers.go2.constants import NUM_JOINTS
from drivers.robot_io import RobotState

MAX_GYRO_BIAS_RAD_S = 0.05  # ≈ 2.9 °/s: more is a moving robot or a faulty IMU, not a bias
MAX_JOINT_OFFSET_RAD = 0.1  # more: re-zero the motor (Unitree's tool), never compensate in software


class CalibrationError(ValueError):
    """A calibration file is missing, malformed or out of bounds; the message names the file and the field."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class CameraCalibration(_Frozen):
    """Intrinsics of the colour stream as the device reports them, and the mount (height above the floor, pitch;
    positive pitch looks down)."""

    source: str  # "RealSense <serial>", "playback <file>", "simulator head_cam"
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    fx: float = Field(gt=0)
    fy: float = Field(gt=0)
    cx: float
    cy: float
    mount_height_m: float | None = Field(None, gt=0, lt=3)
    mount_pitch_deg: float | None = Field(None, ge=-90, le=90)
    mount_source: str = ""  # "depth floor fit over N pixels", "operator", ...
    created_utc: str = Field(default_factory=_now)

    @property
    def hfov_deg(self) -> float:
        return math.degrees(2 * math.atan(self.width / (2 * self.fx)))

    @property
    def vfov_deg(self) -> float:
        return math.degrees(2 * math.atan(self.height / (2 * self.fy)))


class ImuCalibration(_Frozen):
    gyro_bias_rad_s: list[float]  # subtracted from LowState's gyroscope
    gyro_std_rad_s: list[float]
    accel_norm_m_s2: float
    samples: int = Field(gt=0)
    seconds: float = Field(gt=0)
    created_utc: str = Field(default_factory=_now)

    @field_validator("gyro_bias_rad_s", "gyro_std_rad_s")
    @classmethod
    def _three(cls, v: list[float]) -> list[float]:
        if len(v) != 3 or not all(math.isfinite(x) for x in v):
            raise ValueError("needs 3 finite values (x, y, z)")
        return v

    @field_validator("gyro_bias_rad_s")
    @classmethod
    def _bounded(cls, v: list[float]) -> list[float]:
        if max(abs(x) for x in v) > MAX_GYRO_BIAS_RAD_S:
            raise ValueError(f"|bias| {max(abs(x) for x in v):.3f} rad/s > {MAX_GYRO_BIAS_RAD_S} (robot moving?)")
        return v


class JointCalibration(_Frozen):
    """Zero offsets (measured − reference, SDK order) from the lying pose: applied where the lying pose has a
    mechanical reference (calves folded against their stop); 0 elsewhere, with the deviation kept for the report."""

    offsets_rad: list[float]
    lying_q_rad: list[float]
    deviation_rad: list[float]  # measured − nominal lying pose, every joint
    samples: int = Field(gt=0)
    created_utc: str = Field(default_factory=_now)

    @field_validator("offsets_rad", "lying_q_rad", "deviation_rad")
    @classmethod
    def _twelve(cls, v: list[float]) -> list[float]:
        if len(v) != NUM_JOINTS or not all(math.isfinite(x) for x in v):
            raise ValueError(f"needs {NUM_JOINTS} finite values (SDK order)")
        return v

    @field_validator("offsets_rad")
    @classmethod
    def _bounded(cls, v: list[float]) -> list[float]:
        if max(abs(x) for x in v) > MAX_JOINT_OFFSET_RAD:
            raise ValueError(f"|offset| {max(abs(x) for x in v):.3f} rad > {MAX_JOINT_OFFSET_RAD}: re-zero the motor")
        return v


class RobotCalibration(_Frozen):
    schema_version: Literal[1] = 1
    robot: str  # robot id (the file is per robot)
    profile: Literal["sim", "robot"]
    camera: CameraCalibration | None = None
    imu: ImuCalibration | None = None
    joints: JointCalibration | None = None


def load_calibration(path: str | Path) -> RobotCalibration:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise CalibrationError(f"calibration file not found: {path} (run `edge calibrate …`)") from None
    except yaml.YAMLError as e:
        raise CalibrationError(f"{path}: not valid YAML: {e}") from None
    try:
        return RobotCalibration.model_validate(data)
    except ValidationError as e:
        lines = [f"{path}: {'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()]
        raise CalibrationError("\n".join(lines)) from None


def save_calibration(cal: RobotCalibration, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(cal.model_dump(mode="json"), sort_keys=False))
    tmp.replace(path)  # never a half-written file
    return path


def update_calibration(path: str | Path, robot: str, profile: str, **parts) -> RobotCalibration:
    """Replace the given sections (camera / imu / joints) of the robot's file, keeping the others."""
    path = Path(path)
    old = load_calibration(path) if path.is_file() else RobotCalibration(robot=robot, profile=profile)  # type: ignore[arg-type]
    if old.robot != robot:
        raise CalibrationError(f"{path} belongs to robot {old.robot!r}, not {robot!r}")
    new = old.model_copy(update=parts)
    save_calibration(new, path)
    return new


class StateCorrection:
    """What the control loop applies to every LowState: gyro − bias, q − joint offsets. Identity without data."""

    def __init__(self, cal: RobotCalibration | None):
        self.gyro_bias = np.asarray(cal.imu.gyro_bias_rad_s) if cal and cal.imu else np.zeros(3)
        self.q_offset = np.asarray(cal.joints.offsets_rad) if cal and cal.joints else np.zeros(NUM_JOINTS)
        self.active = bool(np.any(self.gyro_bias) or np.any(self.q_offset))

    def state(self, s: RobotState) -> RobotState:
        if not self.active:
            return s
        return RobotState(
            q=s.q - self.q_offset,
            dq=s.dq,
            tau=s.tau,
            quat_wxyz=s.quat_wxyz,
            gyro=s.gyro - self.gyro_bias,
            accel=s.accel,
            foot_force=s.foot_force,
            tick=s.tick,
            recv_mono_s=s.recv_mono_s,
        )

    def command_q(self, q: np.ndarray) -> np.ndarray:
        """A joint target in the corrected frame → the motor's frame."""
        return q + self.q_offset if self.active else q
