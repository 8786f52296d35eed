"""Calibration before the first walk: measurements refuse what they cannot measure from, the store is per robot and
bounded, the control loop applies it, the camera is compared with the model's training view. The simulator's head
camera (floor fit vs MuJoCo's ground truth) and the recorded RealSense file run the real camera paths."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.measure import (
    REFERENCED,
    camera_calibration,
    compare_with_training_view,
    floor_mount,
    gyro_bias,
    joint_offsets,
)
from calibration.store import (
    CalibrationError,
    RobotCalibration,
    StateCorrection,
    load_calibration,
    save_calibration,
    update_calibration,
)
from drivers.go2.constants import POSE_LYING, Q_MAX, Q_MIN
from drivers.robot_io import JointCommand
from edge.controls.calibrated import CalibratedRobot
from tests.fakes.robot import FakeRobot, robot_state

CLIP = "tests/artifacts/camera_64x48.db3"


def _rest(n=200, bias=(0.002, -0.004, 0.001), noise=0.001, q=POSE_LYING, seed=0):
    rng = np.random.default_rng(seed)
    return [robot_state(q=q, gyro=np.asarray(bias) + rng.normal(0, noise, 3), t=i * 0.005, tick=i) for i in range(n)]


def test_gyro_bias_at_rest_and_refused_when_moving():
    imu = gyro_bias(_rest())
    assert np.allclose(imu.gyro_bias_rad_s, (0.002, -0.004, 0.001), atol=3e-4) and imu.samples == 200
    with pytest.raises(CalibrationError, match="moving"):
        gyro_bias(_rest(noise=0.2))
    with pytest.raises(CalibrationError, match="need ≥ 50"):
        gyro_bias(_rest(n=10))


def test_joint_offsets_from_the_lying_pose():
    q = POSE_LYING.copy()
    q[list(REFERENCED)] = Q_MIN[list(REFERENCED)] + 0.03  # calves 0.03 rad off their stop
    j = joint_offsets(_rest(q=q))
    assert np.allclose(np.asarray(j.offsets_rad)[list(REFERENCED)], 0.03)
    assert np.count_nonzero(j.offsets_rad) == len(REFERENCED)  # hips / thighs: deviation only
    standing = np.array([0.0, 0.8, -1.5] * 4)
    with pytest.raises(CalibrationError, match="not lying down"):
        joint_offsets(_rest(q=standing))


def test_store_is_per_robot_bounded_and_merges_sections(tmp_path):
    path = tmp_path / "go2.yaml"
    update_calibration(path, "go2-a", "robot", imu=gyro_bias(_rest()))
    cal = update_calibration(path, "go2-a", "robot", joints=joint_offsets(_rest()))
    assert cal.imu is not None and cal.joints is not None and load_calibration(path) == cal
    with pytest.raises(CalibrationError, match="belongs to robot 'go2-a'"):
        update_calibration(path, "go2-b", "robot", imu=gyro_bias(_rest()))
    bad = cal.model_dump(mode="json")
    bad["joints"]["offsets_rad"][2] = 0.3
    path.write_text(__import__("yaml").safe_dump(bad))
    with pytest.raises(CalibrationError, match="re-zero the motor"):
        load_calibration(path)


def test_control_loop_sees_corrected_state_and_motors_get_their_frame():
    q = POSE_LYING.copy()
    q[list(REFERENCED)] = Q_MIN[list(REFERENCED)] + 0.05
    cal = RobotCalibration(robot="r", profile="robot", imu=gyro_bias(_rest()), joints=joint_offsets(_rest(q=q)))
    fake = FakeRobot(robot_state(q=q, gyro=(0.002, -0.004, 0.001)))
    robot = CalibratedRobot(fake, StateCorrection(cal))
    s = robot.latest_state()
    assert np.allclose(s.gyro, 0, atol=3e-4) and np.allclose(s.q[list(REFERENCED)], Q_MIN[list(REFERENCED)])
    robot.write(JointCommand(q=s.q, kp=np.full(12, 20.0)))
    assert np.allclose(fake.written[-1].q, q)  # back in the motors' frame
    robot.write(JointCommand(q=Q_MIN - 0.0))  # at the hard limit: the offset may not push beyond it
    assert (fake.written[-1].q >= Q_MIN - 1e-9).all() and (fake.written[-1].q <= Q_MAX + 1e-9).all()


def test_simulator_camera_mount_from_the_floor_matches_ground_truth():
    """The sim head camera sees a flat floor: the fit must find MuJoCo's camera height and a level pitch."""
    import mujoco

    from edge.common.config import load_config
    from edge.tools.calibrate import sim_frame

    cfg = load_config(None)
    frame = sim_frame(cfg)
    cam = camera_calibration(frame, "simulator head_cam")
    from drivers.sim.go2_physics import Go2Sim

    sim = Go2Sim(landmarks=False, start="standing")
    truth = sim.data.cam_xpos[mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_CAMERA, "head_cam")][2]
    assert abs(cam.mount_height_m - truth) < 0.01 and abs(cam.mount_pitch_deg) < 1.0
    assert abs(cam.hfov_deg - 90.0) < 0.1  # the simulator's head camera is the NaVILA-Bench HFOV
    assert compare_with_training_view(cam, "navila") == [
        f"camera height {cam.mount_height_m:.2f} m vs 1.25 m trained (NaVILA R2R-CE Habitat camera: HFOV 90°, "
        "1.25 m, level)"
    ]


def test_floor_fit_refuses_a_wall():
    from drivers.camera import Intrinsics

    intr = Intrinsics(64, 48, 51.2, 51.2, 32.0, 24.0)
    with pytest.raises(CalibrationError, match="not a floor"):
        floor_mount(np.full((48, 64), 1.0), intr)


def test_recorded_realsense_file_through_the_cli(tmp_path, capsys):
    from edge.tools.cli import main

    path = tmp_path / "rs.yaml"
    args = ["--set", f"calibration.file={path}", "--set", "calibration.robot=go2"]
    assert main([*args, "calibrate", "camera", "--playback", CLIP]) == 1  # its depth is a wall: no floor to fit
    assert "not a floor" in capsys.readouterr().out
    assert main([*args, "calibrate", "camera", "--playback", CLIP, "--height", "0.35", "--pitch", "10"]) == 0
    out = capsys.readouterr().out
    cam = load_calibration(path).camera
    assert (cam.width, cam.height, cam.fx) == (64, 48, pytest.approx(51.2))  # as the file's device reports them
    assert "WARNING: horizontal FOV 64° vs 90° trained" in out and "WARNING: camera height 0.35 m" in out


def test_save_is_atomic(tmp_path):
    p = save_calibration(RobotCalibration(robot="r", profile="sim"), tmp_path / "c.yaml")
    assert p.is_file() and not (tmp_path / "c.tmp").exists()


def test_vlm_process_warns_when_the_camera_differs_from_the_training_view(tmp_path, caplog):
    from calibration.store import CameraCalibration
    from edge.common.config import load_config
    from edge.vlm.vlmd import warn_camera_view

    path = tmp_path / "c.yaml"
    cfg = load_config(None, {"calibration.file": str(path)})
    assert warn_camera_view(cfg, "navila") == [] and "camera not calibrated" in caplog.text
    cam = CameraCalibration(
        source="x", width=640, height=480, fx=457.0, fy=457.0, cx=320, cy=240, mount_height_m=0.35, mount_pitch_deg=0.0
    )
    update_calibration(path, "sim", "sim", camera=cam)
    got = warn_camera_view(cfg, "streamvln")
    assert len(got) == 1 and "camera height 0.35 m vs 1.25 m" in got[0] and "CAMERA VIEW DIFFERS" in caplog.text
