"""camerad as a process, playing back the synthetic recording: cameraFrame messages decode to the recorded pixels."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyrealsense2")

from drivers.realsense import synthetic_intrinsics, synthetic_pixels
from edge.camera.frames import image_from_message

REPO = Path(__file__).resolve().parents[2]
CLIP = str(REPO / "tests" / "artifacts" / "camera_64x48.db3")
W, H = 64, 48


def start_camerad(run_dir: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "edge.camera.camerad", "--set", f"bus.run_dir={run_dir}", "--playback", CLIP, *args],
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    return proc.returncode, out


def test_camerad_publishes_rgb_and_depth_that_decode_to_the_recorded_pixels(bus, run_dir):
    sub = bus.sub("cameraFrame", conflate=False)  # every message: pair z16 and rgb8 by frame_id
    latest = bus.sub("cameraFrame")  # latest-only, as a VLM would read it
    proc = start_camerad(run_dir, "--loop", "--depth", "--no-align")
    try:
        got = {"rgb8": {}, "z16": {}}
        end = time.monotonic() + 15
        while time.monotonic() < end and min(len(v) for v in got.values()) < 20:
            for r in sub.wait(0.2):
                got[r.msg.encoding][r.msg.frame_id] = (r.msg, image_from_message(r.msg, r.payload))
        assert min(len(v) for v in got.values()) >= 20, proc.poll()
        for fid, (head, rgb) in got["rgb8"].items():
            color, depth = synthetic_pixels(fid, W, H)
            np.testing.assert_array_equal(rgb, color)
            assert head.intrinsics.fx == pytest.approx(synthetic_intrinsics(W, H).fx, abs=1e-4)
            if fid in got["z16"]:
                np.testing.assert_array_equal(got["z16"][fid][1], depth)
                assert got["z16"][fid][0].sensor_time_ns == head.sensor_time_ns
        r = latest.latest()
        assert r is not None and r.age_s() < 1.0
    finally:
        rc, out = stop(proc)
        sub.close()
        latest.close()
    assert rc == 0, out
    assert "stopped: published" in out


def test_camerad_exits_with_an_error_naming_a_missing_file(run_dir, tmp_path):
    missing = str(tmp_path / "nothing.db3")
    proc = subprocess.run(
        [sys.executable, "-m", "edge.camera.camerad", "--set", f"bus.run_dir={run_dir}", "--playback", missing],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1
    assert "nothing.db3" in proc.stderr + proc.stdout
