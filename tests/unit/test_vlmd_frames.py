"""vlmd's camera history for `history: primitive`: a time span (RECENT_S), thinned to RECENT_SPACING_S, whatever the
camera's rate (it was the 64 newest frames: 2.1 s at 30 fps, shorter than a long move)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.vlm.vlmd import RECENT_S, RECENT_SPACING_S, CameraFrames


def _feed(frames: CameraFrames, fps: float, seconds: float) -> dict[int, int]:
    """Frames 0, 1, … at `fps` for `seconds`; returns id → arrival ns."""
    arrival = {}
    for i in range(int(seconds * fps)):
        t = int(i / fps * 1e9)
        frames.set(i, np.full((24, 32, 3), i % 256, np.uint8), t)
        arrival[i] = t
    return arrival


@pytest.mark.parametrize("fps", [5.0, 30.0, 90.0])
def test_history_is_a_time_span_thinned_by_spacing(fps):
    frames = CameraFrames()
    arrival = _feed(frames, fps, 15.0)
    now, newest = max(arrival.values()), max(arrival)
    times = [t for t, _ in frames.kept.values()]
    assert now - min(times) <= RECENT_S * 1e9 and now - min(times) >= (RECENT_S - 2 * RECENT_SPACING_S) * 1e9
    assert np.all(np.diff(times) >= RECENT_SPACING_S * 1e9 - 1)  # ≤ 100 frames whatever the rate
    assert len(frames.kept) <= RECENT_S / min(RECENT_SPACING_S, 1 / fps) + 1
    assert frames(newest).frame_id == newest  # the current frame, always
    # a frame 6 s ago (a 3 m move at 0.5 m/s): that frame or the newest kept before it, at most the spacing older
    for want in [i for i, t in arrival.items() if now - t <= 6e9][:: max(1, int(fps) // 3)]:
        got = frames(want)
        assert got.frame_id <= want and arrival[want] - arrival[got.frame_id] < RECENT_SPACING_S * 1e9 + 1
        assert got.rgb.shape == (384, 384, 3) and got.rgb[0, 0, 0] == got.frame_id % 256
    with pytest.raises(KeyError, match="older than"):
        frames(min(i for i, t in arrival.items() if now - t > RECENT_S * 1e9 + 1e9))


def test_a_repeated_frame_is_not_kept_twice_and_converts_once():
    frames = CameraFrames()
    rgb = np.zeros((24, 32, 3), np.uint8)
    frames.set(7, rgb, 0)
    frames.set(7, rgb, int(0.5e9))
    first = frames(7)
    assert frames(7) is first and not frames.kept
    frames.set(8, rgb, int(1e9))
    assert list(frames.kept) == [7] and frames(7) is first  # the converted frame moved into the history
