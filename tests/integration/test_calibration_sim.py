"""`edge calibrate imu` / `joints` against the simulated Go2 lying down (simd over DDS on loopback), the same
commands as on the robot; then the control process starts with what they stored, and `edge doctor` checks it."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import tempfile

import pytest

from calibration.store import load_calibration
from edge.system.manager import Manager
from edge.system.process_config import procs_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def _edge(overrides, *args):
    sets = [a for o in overrides for a in ("--set", o)]
    return subprocess.run(
        [sys.executable, "-m", "edge.tools.cli", *sets, *args], capture_output=True, text=True, timeout=120
    )


def test_calibrate_imu_and_joints_on_the_simulator(tmp_path):
    run_dir = tempfile.mkdtemp(prefix="edge-c-", dir="/tmp")
    cal = tmp_path / "sim.yaml"
    overrides = [
        f"bus.run_dir={run_dir}",
        f"robot.dds_domain={random.randint(91, 160)}",
        "sim.camera_hz=0",
        f"calibration.file={cal}",
    ]
    mgr = Manager(procs_for("sim", only=["simd"]), None, overrides)
    mgr.start()
    try:
        imu = _edge(overrides, "calibrate", "imu", "--seconds", "2")
        assert imu.returncode == 0, imu.stdout + imu.stderr
        joints = _edge(overrides, "calibrate", "joints", "--seconds", "1")
        assert joints.returncode == 0, joints.stdout + joints.stderr
        stored = load_calibration(cal)
        assert stored.imu.samples > 100 and max(abs(x) for x in stored.imu.gyro_bias_rad_s) < 0.02
        assert stored.joints is not None and max(abs(x) for x in stored.joints.offsets_rad) < 0.05
        doctor = _edge(overrides, "doctor", "--skip-robot", "--engines", str(tmp_path))
        assert "PASS  calibration imu" in doctor.stdout and "PASS  calibration joints" in doctor.stdout
        assert "FAIL  calibration camera: not measured" in doctor.stdout
    finally:
        mgr.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
