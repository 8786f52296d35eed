"""RealSenseCamera on the real pyrealsense2 pipeline, playing back a recorded .db3 (no camera needed).

tests/artifacts/camera_64x48.db3 is 30 frames of drivers.realsense.synthetic_pixels (colour 64×48 rgb8 + depth z16,
1 mm units) recorded from an rs.software_device; regenerate with
    write_synthetic_db3("tests/artifacts/camera_64x48.db3", n=30, pace=True)
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyrealsense2")

from drivers.camera import CameraError
from drivers.realsense import (
    RealSenseCamera,
    synthetic_intrinsics,
    synthetic_pixels,
    write_synthetic_db3,
)

CLIP = str(Path(__file__).resolve().parents[1] / "artifacts" / "camera_64x48.db3")
N, W, H = 30, 64, 48


def wait_until(cond, timeout_s: float = 10.0) -> bool:
    end = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.005)
    return True


def passes(frames) -> list[list[int]]:
    """Frame ids split into playback passes (a reopen restarts the file)."""
    out = []
    for f in frames:
        if not out or f.frame_id <= out[-1][-1]:
            out.append([])
        out[-1].append(f.frame_id)
    return out


def assert_intrinsics(got, want):
    assert (got.width, got.height) == (want.width, want.height)
    for k in ("fx", "fy", "cx", "cy"):
        assert getattr(got, k) == pytest.approx(getattr(want, k), abs=1e-4)


def test_playback_delivers_every_frame_in_order_with_pixels_and_intrinsics():
    frames = []
    with RealSenseCamera(playback=CLIP, real_time=False, depth=True, align_depth=False, on_frame=frames.append) as cam:
        assert wait_until(lambda: cam.reconnects >= 1 and len(frames) >= 2 * N)
    # Every pass runs to the end without a gap. librealsense 2.59 may skip the first frames of a pass when another
    # process plays a recording at the same moment (start-up race inside the SDK), so one complete pass is required.
    runs = passes(frames)[:2]
    assert all(r == list(range(r[0], N)) for r in runs), runs
    assert list(range(N)) in runs, runs
    for f in frames:
        color, depth = synthetic_pixels(f.frame_id, W, H)
        assert f.color.dtype == np.uint8 and f.color.shape == (H, W, 3)
        np.testing.assert_array_equal(f.color, color)
        np.testing.assert_array_equal(f.depth, depth)
        assert f.depth_scale_m == pytest.approx(0.001)
        assert abs(f.sensor_time_ns - f.frame_id * 1e9 / 30) < 1e3
    assert_intrinsics(frames[0].intrinsics, synthetic_intrinsics(W, H))
    assert_intrinsics(frames[0].depth_intrinsics, synthetic_intrinsics(W, H))


def test_aligned_depth_has_colour_geometry():
    frames = []
    with RealSenseCamera(playback=CLIP, real_time=False, depth=True, on_frame=frames.append):
        assert wait_until(lambda: len(frames) >= 5)
    for f in frames[:5]:
        assert f.depth.shape == f.color.shape[:2] and f.depth_intrinsics is None
        # rs.align reprojects pixel by pixel; it may leave a thin line of holes (0), never wrong values
        assert set(np.unique(f.depth)) <= {0, 1000 + f.frame_id}
        assert (f.depth != 0).mean() > 0.9


def test_write_synthetic_db3_roundtrip_colour_only(tmp_path):
    path = str(tmp_path / "small.db3")
    write_synthetic_db3(path, n=5, width=32, height=24, fps=15, depth=False)
    frames = []
    with RealSenseCamera(playback=path, real_time=False, on_frame=frames.append):
        assert wait_until(lambda: any(f.frame_id == 4 for f in frames))
    assert frames[0].depth is None and frames[0].color.shape == (24, 32, 3)
    for f in frames:
        np.testing.assert_array_equal(f.color, synthetic_pixels(f.frame_id, 32, 24)[0])
    assert_intrinsics(frames[0].intrinsics, synthetic_intrinsics(32, 24))


def test_read_latest_returns_the_newest_frame_and_supersedes_older_ones():
    hold, at_end = threading.Event(), threading.Event()

    def on_frame(f):  # park the capture thread on the last frame of the file
        if f.frame_id == N - 1:
            at_end.set()
            hold.wait(10)

    cam = RealSenseCamera(playback=CLIP, real_time=False, on_frame=on_frame)
    cam.open()
    try:
        assert at_end.wait(10)
        f = cam.read_latest(max_age_s=5)
        assert f.frame_id == N - 1
        np.testing.assert_array_equal(f.color, synthetic_pixels(N - 1, W, H)[0])
        st = cam.status()
        assert st["frames"] >= 2 and st["superseded"] == st["frames"] - 1 and st["dropped"] == 0
        assert cam.read_latest(max_age_s=5).frame_id == N - 1  # newest again, not an older one
        assert cam.wait_new(0.05) is None  # nothing newer has arrived
        time.sleep(0.01)
        assert cam.read_latest(max_age_s=0.001) is None  # too old
    finally:
        hold.set()
        cam.close()


@pytest.mark.parametrize("content", [None, b"not a database"])
def test_missing_or_invalid_file_names_the_file(tmp_path, content):
    path = tmp_path / "clip.db3"
    if content is not None:
        path.write_bytes(content)
    cam = RealSenseCamera(playback=str(path))
    with pytest.raises(CameraError, match="clip.db3"):
        cam.open()
    cam.close()


def test_bag_extension_is_refused_with_a_reason(tmp_path):
    with pytest.raises(CameraError, match=r"\.db3"):
        RealSenseCamera(playback=str(tmp_path / "x.bag")).open()


def test_reconnects_after_end_of_recording_with_backoff():
    frames = []
    with RealSenseCamera(playback=CLIP, real_time=False, loop=False, on_frame=frames.append) as cam:
        assert wait_until(lambda: cam.reconnects >= 2 and len(passes(frames)) >= 3)
        st = cam.status()
    runs = passes(frames)[:3]
    assert all(r[-1] == N - 1 and r == list(range(r[0], N)) for r in runs[:2]), runs  # each pass to the end
    assert st["last_error"] == "end of recording" and st["dropped"] == 0
    end = len(runs[0])
    pause_s = (frames[end].recv_mono_ns - frames[end - 1].recv_mono_ns) * 1e-9
    assert pause_s >= 0.1  # first backoff step


def test_reconnects_after_pipeline_stops_underneath():
    """Stand-in for a USB loss: the pipeline dies under the capture thread (real-time, looping playback)."""
    with RealSenseCamera(playback=CLIP, real_time=True, loop=True) as cam:
        assert wait_until(lambda: cam.frames >= 3)
        cam._pipe.stop()  # noqa: SLF001 — what a device loss does to the pipeline
        assert wait_until(lambda: cam.reconnects == 1)
        n = cam.frames
        assert wait_until(lambda: cam.frames >= n + 3)  # frames flow again
        assert cam.read_latest(max_age_s=1.0) is not None
        assert "pipeline error" in cam.status()["last_error"]


def test_reopen_backs_off_while_the_device_is_gone_then_recovers(tmp_path):
    path = tmp_path / "clip.db3"
    shutil.copy(CLIP, path)
    with RealSenseCamera(playback=str(path), real_time=False, loop=False) as cam:
        assert wait_until(lambda: cam.status()["last_error"] == "end of recording")
        path.rename(tmp_path / "gone.db3")  # "unplugged": every reopen fails
        assert wait_until(lambda: cam.status()["last_error"].startswith("reopen failed"), 3)
        time.sleep(0.5)  # backoff 0.1 → 0.2 → 0.4 …: few attempts, no raise
        assert cam.reconnects == 0 and not cam.status()["streaming"]
        (tmp_path / "gone.db3").rename(path)  # "plugged back in"
        n = cam.frames
        assert wait_until(lambda: cam.reconnects >= 1 and cam.frames >= n + 10)


def test_recording_without_a_requested_stream_names_both(tmp_path):
    """librealsense says only "Couldn't resolve requests"; the error names what was asked for and what the file
    holds."""
    path = str(tmp_path / "colour_only.db3")
    write_synthetic_db3(path, n=3, depth=False)
    cam = RealSenseCamera(playback=path, depth=True)
    with pytest.raises(CameraError) as e:
        cam.open()
    cam.close()
    msg = str(e.value)
    assert "colour_only.db3" in msg and "requested colour rgb8 and depth z16" in msg
    assert f"the recording holds Color {W}x{H} rgb8 @30fps" in msg


def test_next_free_path_never_names_an_existing_file(tmp_path):
    from drivers.realsense import next_free_path

    base = str(tmp_path / "run.db3")
    assert next_free_path(base) == (base, 0)
    Path(base).write_bytes(b"session 1")
    assert next_free_path(base) == (str(tmp_path / "run-1.db3"), 1)
    (tmp_path / "run-1.db3").write_bytes(b"session 2")
    (tmp_path / "run-3.db3").write_bytes(b"someone else's")
    assert next_free_path(base, 1) == (str(tmp_path / "run-2.db3"), 2)
    assert next_free_path(base, 3) == (str(tmp_path / "run-4.db3"), 4)


class _Config:
    """The two rs.config methods a live, recording start uses (no device can run here)."""

    def __init__(self, log):
        self.log = log

    def enable_stream(self, *args):
        pass

    def enable_record_to_file(self, path):
        self.log.append(path)


def test_each_reconnect_records_to_a_new_file(tmp_path, monkeypatch):
    """A live camera that reconnects used to record to the same path again, overwriting the session before."""
    import drivers.realsense as realsense

    rs = realsense._rs()
    paths: list[str] = []

    class Pipeline:
        def start(self, cfg):  # the recorder creates its file when streaming starts
            Path(paths[-1]).write_bytes(b"recorded")
            raise RuntimeError("No device connected")  # then the device is gone again

    members = {"config": lambda: _Config(paths), "pipeline": Pipeline, "stream": rs.stream, "format": rs.format}
    fake = type("rs", (), members)
    monkeypatch.setattr(realsense, "_rs", lambda: fake)
    cam = RealSenseCamera(record=str(tmp_path / "cam.db3"))
    for _ in range(3):  # open, then two reconnect attempts
        with pytest.raises(RuntimeError):
            cam._start()
    assert paths == [str(tmp_path / n) for n in ("cam.db3", "cam-1.db3", "cam-2.db3")]
    assert cam.status()["recordings"] == paths and all(Path(p).read_bytes() == b"recorded" for p in paths)
