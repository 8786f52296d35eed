"""vlmd's camera history for `history: primitive`: a time span (RECENT_S) thinned to one frame per RECENT_SPACING_S
whatever the camera's rate (it was the 64 newest frames: 2.1 s at 30 fps, shorter than a long move), and the pure
VlmCore picks exactly the frames the live CameraFrames keeps (so `edge replay` sees the same ids)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.common.config import EdgeConfig
from edge.msg.messages import VlmStep
from edge.vlm.vlmd import RECENT_S, RECENT_SPACING_S, CameraFrames, VlmCore

T0 = 10**12


def _rgb(i: int) -> np.ndarray:
    return np.full((24, 32, 3), i % 256, np.uint8)


def _run(fps: float, seconds: float, restart_at: int | None = None):
    """Frames at `fps` through both CameraFrames (as vlmd's loop) and VlmCore.step (no instruction: only the camera
    bookkeeping runs). Returns (frames, core, [(arrival ns, frame id)])."""
    frames = CameraFrames()
    core = VlmCore(EdgeConfig(), "fixed", False, frames)
    arrivals = []
    for k in range(int(seconds * fps)):
        fid = k if restart_at is None or k < restart_at else k - restart_at
        now = T0 + int(k / fps * 1e9)
        frames.set(fid, _rgb(fid), now)
        core.step(VlmStep(tick=k, start_s=now * 1e-9, now_ns=now, family="fixed", frame_id=fid))
        arrivals.append((now, fid))
    return frames, core, arrivals


@pytest.mark.parametrize("fps", [5.0, 30.0, 90.0])
def test_history_is_a_time_span_thinned_by_spacing(fps):
    frames, core, arrivals = _run(fps, 15.0)
    now, newest = arrivals[-1]
    times = [t for t, _ in frames.kept.values()]
    assert RECENT_S * 1e9 >= now - min(times) >= (RECENT_S - 2 * max(RECENT_SPACING_S, 1 / fps)) * 1e9
    assert np.all(np.diff(times) >= RECENT_SPACING_S * 1e9 - 1)  # ≤ 100 frames whatever the rate
    assert len(frames.kept) <= RECENT_S / max(RECENT_SPACING_S, 1 / fps) + 1
    assert frames(newest).frame_id == newest  # the current frame, always
    # VlmCore's bookkeeping is the same set: the kept frames, then the current one
    assert [f for _, f in core.seen] == [*frames.kept, newest]
    # any time in the last 6 s (a 3 m move at 0.5 m/s): frame_at gives a kept frame, at most the spacing older than
    # the frame the process had then, and CameraFrames gives exactly that frame
    for t, had in arrivals[::3]:
        if now - t > 6e9:
            continue
        fid = core.frame_at(t)
        got = frames(fid)
        assert got.frame_id == fid <= had and t - dict((f, a) for a, f in arrivals)[fid] < RECENT_SPACING_S * 1e9 + 1
        assert got.rgb.shape == (384, 384, 3) and got.rgb[0, 0, 0] == fid % 256
    with pytest.raises(KeyError, match="last 10 s"):
        frames(arrivals[0][1])


def test_a_camera_restart_drops_the_old_numbering():
    """A reconnect may restart the device's frame numbers (drivers/camera.py): old ids must not stand for new frames."""
    frames, core, arrivals = _run(30.0, 4.0, restart_at=60)
    assert min(frames.kept) >= 0 and max(frames.kept) < arrivals[-1][1]
    assert all(t >= T0 + int(60 / 30.0 * 1e9) for t, _ in frames.kept.values())  # only frames after the restart
    assert [f for _, f in core.seen] == [*frames.kept, arrivals[-1][1]]
    assert core.frame_at(T0 + int(1.0e9)) is None  # before the restart: nothing that frame id could name


def test_a_repeated_frame_is_not_kept_twice_and_converts_once():
    frames = CameraFrames()
    frames.set(7, _rgb(7), 0)
    frames.set(7, _rgb(7), int(0.5e9))
    first = frames(7)
    assert frames(7) is first and not frames.kept
    frames.set(8, _rgb(8), int(1e9))
    assert list(frames.kept) == [7] and frames(7) is first  # the converted frame moved into the history
