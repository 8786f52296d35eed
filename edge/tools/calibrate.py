"""`edge calibrate …`: measure this robot before its first walk and store it per robot (calibration.store).

    edge calibrate camera [--playback FILE.db3] [--height M --pitch DEG]   intrinsics from the device, mount vs the
                                                                           model's training view
    edge calibrate imu [--seconds 3]       gyro bias at rest (LowState over DDS)
    edge calibrate joints [--seconds 1]    joint zero offsets, robot lying down, motors passive
    edge calibrate show                    what is stored, checked

The simulator profile runs the same commands: LowState comes from simd over DDS on loopback (start `edge run --only
simd` first), the camera is the simulator's head camera (its depth sees the floor). On the robot: the Go2 on domain 0
over its NIC, the RealSense (or a recording, --playback). Measurements: calibration.measure.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from calibration.measure import camera_calibration, compare_with_training_view, gyro_bias, joint_offsets
from calibration.store import CalibrationError, load_calibration, update_calibration
from edge.common.config import EdgeConfig, resolve_path
from edge.tools.checks import Check, Status

log = logging.getLogger("calibrate")


def _path(cfg: EdgeConfig) -> Path:
    return resolve_path(cfg.calibration.file)


def _family(cfg: EdgeConfig) -> str:
    return cfg.vlm.model if cfg.vlm.model in ("navila", "streamvln") else "navila"


def sim_frame(cfg: EdgeConfig):
    """One head-camera frame (colour + depth) of the simulated Go2 standing, as simcamd renders it."""
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; must precede the mujoco import (as simcamd)
    from drivers.sim.go2_physics import Go2Sim
    from drivers.sim.head_camera import SimHeadCamera

    sim = Go2Sim(physics_dt=cfg.sim.physics_dt, landmarks=False, start="standing")
    with SimHeadCamera(sim.model, sim.data, cfg.sim.camera_width, cfg.sim.camera_height, depth=True) as cam:
        return cam.render()


def realsense_frame(cfg: EdgeConfig, playback: str | None):
    from drivers.realsense import RealSenseCamera

    c = cfg.camera
    cam = RealSenseCamera(
        serial=None if playback else c.serial,
        playback=playback,
        width=c.width,
        height=c.height,
        fps=c.fps,
        depth=True,
        real_time=playback is None,
    )
    cam.open()
    try:
        frame = cam.wait_new(10.0)
    finally:
        cam.close()
    if frame is None:
        raise CalibrationError(f"no frame from RealSense {playback or c.serial or '(first device)'} within 10 s")
    return frame


def cmd_camera(cfg: EdgeConfig, args) -> list[str]:
    if args.playback:
        frame, source = realsense_frame(cfg, args.playback), f"playback {args.playback}"
    elif cfg.profile == "sim":
        frame, source = sim_frame(cfg), "simulator head_cam"
    else:
        frame, source = realsense_frame(cfg, None), f"RealSense {cfg.camera.serial or '(first device)'}"
    cam = camera_calibration(frame, source, args.height, args.pitch)
    update_calibration(_path(cfg), cfg.calibration.robot, cfg.profile, camera=cam)
    lines = [
        f"camera {source}: {cam.width}x{cam.height}, fx {cam.fx:.1f} fy {cam.fy:.1f}, HFOV {cam.hfov_deg:.1f}° "
        f"VFOV {cam.vfov_deg:.1f}°; mount {cam.mount_height_m:.2f} m, pitch {cam.mount_pitch_deg:+.1f}° "
        f"({cam.mount_source})"
    ]
    lines += [f"WARNING: {w}" for w in compare_with_training_view(cam, _family(cfg))]
    return lines


def _lowstate(cfg: EdgeConfig, seconds: float):
    from drivers.unitree.go2 import collect_lowstate

    return collect_lowstate(cfg.robot.dds_domain, cfg.robot.interface, seconds, first_within_s=15.0)


def cmd_imu(cfg: EdgeConfig, args) -> list[str]:
    imu = gyro_bias(_lowstate(cfg, args.seconds))
    update_calibration(_path(cfg), cfg.calibration.robot, cfg.profile, imu=imu)
    b = ", ".join(f"{x * 1e3:+.2f}" for x in imu.gyro_bias_rad_s)
    return [
        f"gyro bias [{b}] mrad/s over {imu.samples} samples ({imu.seconds:.1f} s), |accel| {imu.accel_norm_m_s2:.2f}"
    ]


def cmd_joints(cfg: EdgeConfig, args) -> list[str]:
    j = joint_offsets(_lowstate(cfg, args.seconds))
    update_calibration(_path(cfg), cfg.calibration.robot, cfg.profile, joints=j)
    off = ", ".join(f"{x:+.3f}" for x in j.offsets_rad)
    dev = max(abs(x) for x in j.deviation_rad)
    return [f"joint offsets [{off}] rad (calves vs their stop); largest deviation from the lying pose {dev:.3f} rad"]


def cmd_show(cfg: EdgeConfig, args) -> list[str]:
    cal = load_calibration(_path(cfg))
    return [f"{_path(cfg)}: robot {cal.robot} ({cal.profile})", *(f"  {c.name}: {c.detail}" for c in checks_of(cfg))]


def checks_of(cfg: EdgeConfig):
    path = _path(cfg)
    if not path.is_file():
        status: Status = "fail" if cfg.calibration.required or cfg.profile == "robot" else "warn"
        return [Check("calibration", "file", status, f"{path} missing", "edge calibrate camera / imu / joints")]
    try:
        cal = load_calibration(path)
    except CalibrationError as e:
        return [Check("calibration", "file", "fail", str(e), "re-run edge calibrate")]
    out = [Check("calibration", "file", "pass", f"{path}: robot {cal.robot} ({cal.profile})")]
    for part in ("imu", "joints", "camera"):
        if getattr(cal, part) is None:
            out.append(Check("calibration", part, "fail", "not measured", f"edge calibrate {part}"))
    if cal.imu is not None:
        out.append(
            Check("calibration", "imu", "pass", f"gyro bias {cal.imu.gyro_bias_rad_s} rad/s ({cal.imu.created_utc})")
        )
    if cal.joints is not None:
        out.append(Check("calibration", "joints", "pass", f"offsets within bounds ({cal.joints.created_utc})"))
    if cal.camera is not None:
        warnings = compare_with_training_view(cal.camera, _family(cfg))
        c = cal.camera
        detail = f"HFOV {c.hfov_deg:.0f}°, height {c.mount_height_m} m, pitch {c.mount_pitch_deg}°"
        out.append(
            Check(
                "calibration",
                "camera vs training view",
                "warn" if warnings else "pass",
                "; ".join(warnings) if warnings else detail,
                "mount the camera as trained, or expect worse navigation" if warnings else "",
            )
        )
    return out


def calibration_checks(cfg: EdgeConfig):
    """For `edge doctor`."""
    return checks_of(cfg)


COMMANDS = {"camera": cmd_camera, "imu": cmd_imu, "joints": cmd_joints, "show": cmd_show}


def main(args) -> int:
    from edge.common.config import load_config
    from edge.system.process_main import parse_overrides

    cfg = load_config(args.config, parse_overrides(args.set))
    try:
        lines = COMMANDS[args.what](cfg, args)
    except CalibrationError as e:
        print(f"calibrate {args.what}: {e}")
        return 1
    print("\n".join(lines))
    if args.what != "show":
        print(f"stored in {_path(cfg)}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("calibrate", help="measure camera, IMU and joints before the first walk (stored per robot)")
    p.add_argument("what", choices=sorted(COMMANDS))
    p.add_argument("--playback", metavar="FILE.db3", help="camera: a RealSense recording instead of the device")
    p.add_argument("--height", type=float, help="camera: mount height above the floor, m (else from depth)")
    p.add_argument("--pitch", type=float, help="camera: mount pitch, degrees, positive looking down (else from depth)")
    p.add_argument("--seconds", type=float, default=3.0, help="imu / joints: how long to listen to LowState")
    p.set_defaults(fn=main)
