"""Calibration measurements from data (LowState samples, a camera frame): pure functions, tested on the simulator
and the recorded RealSense file. Each refuses data it cannot measure from (a moving robot, a robot not lying, no
floor in view) with the reason. Facts: docs/deployment.md §Calibration, docs/vln-models.md §3 (training views)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from calibration.store import CalibrationError, CameraCalibration, ImuCalibration, JointCalibration
from drivers.camera import Frame, Intrinsics
from drivers.go2.constants import JOINT_NAMES_SDK, POSE_LYING, Q_MIN
from drivers.robot_io import RobotState

G = 9.81
REST_GYRO_STD_RAD_S = 0.02  # above: the robot is moving, no bias can be read
REST_ACCEL_TOL_M_S2 = 1.0  # |accel| must read g ± this at rest
# How close to the nominal lying pose each joint must read for "lying down": calves fold against their stop, thighs
# and hips rest where the floor leaves them (a passive simulated Go2 splays its rear hips by ≈0.4 rad within seconds).
LYING_TOL_RAD = {"hip": 0.6, "thigh": 0.6, "calf": 0.25}
LYING_MAX_DQ_RAD_S = 0.05
# Joints whose lying reading has a mechanical reference: the calves fold against their lower stop (Q_MIN) when the
# Go2 lies on its belly. Hips and thighs rest where contact leaves them (measured in the simulator: up to 0.1 rad from
# the nominal pose), so they get no offset, only a reported deviation. [Reference unverified on hardware.]
REFERENCED = tuple(i for i, n in enumerate(JOINT_NAMES_SDK) if n.endswith("calf"))


def gyro_bias(states: list[RobotState], min_samples: int = 50) -> ImuCalibration:
    """Mean gyroscope reading at rest. Raises CalibrationError when too few samples or the robot moves."""
    if len(states) < min_samples:
        raise CalibrationError(f"{len(states)} LowState samples, need ≥ {min_samples}: is LowState arriving?")
    gyro = np.array([s.gyro for s in states])
    accel = np.linalg.norm(np.array([s.accel for s in states]), axis=1)
    std = gyro.std(axis=0)
    if std.max() > REST_GYRO_STD_RAD_S:
        raise CalibrationError(
            f"gyro std {std.max():.3f} rad/s > {REST_GYRO_STD_RAD_S}: the robot is moving; calibrate it at rest"
        )
    if abs(accel.mean() - G) > REST_ACCEL_TOL_M_S2:
        raise CalibrationError(f"|accel| {accel.mean():.2f} m/s² is not g at rest: check the IMU / the robot is still")
    span = states[-1].recv_mono_s - states[0].recv_mono_s
    return ImuCalibration(
        gyro_bias_rad_s=[float(x) for x in gyro.mean(axis=0)],
        gyro_std_rad_s=[float(x) for x in std],
        accel_norm_m_s2=float(accel.mean()),
        samples=len(states),
        seconds=max(span, 1e-3),
    )


def joint_offsets(states: list[RobotState], min_samples: int = 20) -> JointCalibration:
    """Joint zero offsets from the lying pose (see REFERENCED). Raises CalibrationError when the robot is not lying
    still."""
    if len(states) < min_samples:
        raise CalibrationError(f"{len(states)} LowState samples, need ≥ {min_samples}: is LowState arriving?")
    q = np.array([s.q for s in states])
    dq = np.abs(np.array([s.dq for s in states])).max(axis=0)
    mean = q.mean(axis=0)
    tol = np.array([LYING_TOL_RAD[n.split("_")[1]] for n in JOINT_NAMES_SDK])
    far = [
        f"{JOINT_NAMES_SDK[i]} ({mean[i] - POSE_LYING[i]:+.2f} rad)"
        for i in np.flatnonzero(np.abs(mean - POSE_LYING) > tol)
    ]
    if far:
        raise CalibrationError(f"not lying down: {', '.join(far)} from the lying pose (tolerance {LYING_TOL_RAD})")
    if dq.max() > LYING_MAX_DQ_RAD_S:
        raise CalibrationError(f"joints moving (|dq| up to {dq.max():.2f} rad/s): calibrate lying still, motors off")
    offsets = np.zeros(len(mean))
    offsets[list(REFERENCED)] = mean[list(REFERENCED)] - Q_MIN[list(REFERENCED)]
    return JointCalibration(
        offsets_rad=[float(x) for x in offsets],
        lying_q_rad=[float(x) for x in mean],
        deviation_rad=[float(x) for x in mean - POSE_LYING],
        samples=len(states),
    )


def floor_mount(depth_m: np.ndarray, intr: Intrinsics, rows: float = 1 / 3) -> tuple[float, float, int]:
    """(camera height above the floor m, pitch deg — positive looking down —, pixels used) from a depth image whose
    lower `rows` fraction sees the floor: least-squares plane in the camera frame (x right, y down, z forward), one
    pass dropping points over 2 cm off. Raises CalibrationError when that plane is not a floor (normal > 45° from
    the camera's up)."""
    h, w = depth_m.shape
    v, u = np.mgrid[int(h * (1 - rows)) : h, 0:w]
    z = depth_m[int(h * (1 - rows)) :, :]
    ok = np.isfinite(z) & (z > 0.05)
    if ok.sum() < 50:
        raise CalibrationError("no depth in the lower part of the image: point the camera at a clear floor")
    x = (u[ok] - intr.cx) / intr.fx * z[ok]
    y = (v[ok] - intr.cy) / intr.fy * z[ok]
    pts = np.stack([x, y, z[ok]], axis=1)
    for _ in range(2):
        centre = pts.mean(axis=0)
        normal = np.linalg.svd(pts - centre, full_matrices=False)[2][-1]
        resid = np.abs((pts - centre) @ normal)
        keep = resid < 0.02
        if keep.sum() < 50:
            break
        pts = pts[keep]
    centre = pts.mean(axis=0)
    normal = np.linalg.svd(pts - centre, full_matrices=False)[2][-1]
    up = -normal if normal[1] > 0 else normal  # world up points along the camera's −y
    if math.degrees(math.acos(min(1.0, -up[1]))) > 45:
        raise CalibrationError("the plane in the lower image is not a floor (a wall?): give --height and --pitch")
    height = float(abs(centre @ up))
    pitch = float(math.degrees(math.asin(np.clip(-up[2], -1, 1))))  # forward axis tilted below the horizon
    return height, pitch, int(len(pts))


def camera_calibration(
    frame: Frame, source: str, height_m: float | None = None, pitch_deg: float | None = None
) -> CameraCalibration:
    """Intrinsics from the frame (as the device reports them); the mount from the operator's values, else from the
    floor seen in the frame's depth."""
    i = frame.intrinsics
    how = "operator"
    if height_m is None or pitch_deg is None:
        if frame.depth is None:
            raise CalibrationError("no depth stream: measure the mount and give --height and --pitch")
        h, p, n = floor_mount(frame.depth.astype(np.float64) * frame.depth_scale_m, i)
        height_m = h if height_m is None else height_m
        pitch_deg = p if pitch_deg is None else pitch_deg
        how = f"depth floor fit over {n} pixels"
    return CameraCalibration(
        source=source,
        width=i.width,
        height=i.height,
        fx=i.fx,
        fy=i.fy,
        cx=i.cx,
        cy=i.cy,
        mount_height_m=height_m,
        mount_pitch_deg=pitch_deg,
        mount_source=how,
    )


@dataclass(frozen=True)
class TrainingView:
    """The camera the model was trained on (docs/vln-models.md §3) and how far a robot's may stray before the model
    is likely to fail silently."""

    hfov_deg: float
    height_m: float
    pitch_deg: float
    source: str
    hfov_tol_deg: float = 15.0
    height_tol_m: float = 0.4
    pitch_tol_deg: float = 15.0


TRAINING_VIEWS = {
    # NaVILA: Habitat R2R-CE, RGB HFOV 90° (navila evaluation/habitat_extensions/config/vlnce_task.yaml), sensor at
    # habitat-lab's default position 1.25 m, level.
    "navila": TrainingView(90.0, 1.25, 0.0, "NaVILA R2R-CE Habitat camera: HFOV 90°, 1.25 m, level"),
    # StreamVLN: Habitat R2R-CE / RxR-CE, RGB 640×480 HFOV 79° (StreamVLN config/vln_r2r.yaml), same sensor height.
    "streamvln": TrainingView(79.0, 1.25, 0.0, "StreamVLN R2R-CE Habitat camera: HFOV 79°, 1.25 m, level"),
}


def compare_with_training_view(cam: CameraCalibration, family: str) -> list[str]:
    """Warnings (empty when the camera matches) — VLN models do not complain about a different view, they just
    navigate worse."""
    view = TRAINING_VIEWS.get(family)
    if view is None:
        return []
    out = []
    if abs(cam.hfov_deg - view.hfov_deg) > view.hfov_tol_deg:
        out.append(f"horizontal FOV {cam.hfov_deg:.0f}° vs {view.hfov_deg:.0f}° trained ({view.source})")
    if cam.mount_height_m is not None and abs(cam.mount_height_m - view.height_m) > view.height_tol_m:
        out.append(f"camera height {cam.mount_height_m:.2f} m vs {view.height_m:.2f} m trained ({view.source})")
    if cam.mount_pitch_deg is not None and abs(cam.mount_pitch_deg - view.pitch_deg) > view.pitch_tol_deg:
        out.append(f"camera pitch {cam.mount_pitch_deg:+.0f}° vs {view.pitch_deg:+.0f}° trained ({view.source})")
    return out
