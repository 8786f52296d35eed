"""Camera frames and the interface a live camera offers (RealSense; the simulator's head camera renders the same
Frame).

On the bus (topic cameraFrame, header + raw bytes, see edge.msg.bus) a Frame becomes one rgb8 message and, when it has
depth, one z16 message with the same frame_id and sensor time. The z16 message is published FIRST, so the newest
message on the topic after a frame is always its rgb8: a conflated (latest-only) subscriber that wants colour sees
rgb8 except in the short window between the two sends, and must check `encoding`. A consumer that wants depth
subscribes with conflate=False, drains, and pairs the two by frame_id. z16 pixels are little-endian uint16 in
millimetres (depth_scale_m = 0.001; other device scales are converted to mm when published).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

DEPTH_BUS_SCALE_M = 0.001  # z16 on the bus is always millimetres


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels (principal point cx, cy; focal lengths fx, fy)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float


class CameraError(RuntimeError):
    """A camera that cannot be opened (missing device, missing or invalid recording)."""


@dataclass(frozen=True)
class Frame:
    color: np.ndarray  # H×W×3 uint8, RGB
    depth: np.ndarray | None  # H×W uint16 in units of depth_scale_m (aligned to colour when so configured)
    depth_scale_m: float  # metres per depth unit
    intrinsics: Intrinsics  # of the colour image (and of depth once aligned)
    frame_id: int  # device frame number (may restart after a reconnect)
    sensor_time_ns: int  # device / simulation timestamp
    recv_mono_ns: int  # time.monotonic_ns() when the driver received it
    depth_intrinsics: Intrinsics | None = None  # only when depth is not aligned to colour

    def age_s(self, now_ns: int) -> float:
        return (now_ns - self.recv_mono_ns) * 1e-9


class Camera(Protocol):
    """A live camera (drivers.realsense.RealSenseCamera; the camera process takes any Camera). The simulator's head
    camera is not one: it renders on demand from a given pose (drivers.sim.head_camera) into the same Frame."""

    def open(self) -> None:
        """Start streaming; raises CameraError if the device or recording cannot be opened."""

    def read_latest(self, max_age_s: float = 0.5) -> Frame | None:
        """The newest frame if younger than max_age_s, else None. Never blocks; the same frame may be returned
        again (compare frame_id / recv_mono_ns)."""

    def wait_new(self, timeout_s: float) -> Frame | None:
        """Block up to timeout_s for a frame newer than the last one returned; None on timeout."""

    def status(self) -> dict:
        """Counters for the log (frames, reconnects, ...)."""

    def close(self) -> None: ...


def depth_to_mm(depth: np.ndarray, depth_scale_m: float) -> np.ndarray:
    """Depth in device units → uint16 millimetres (saturating at 65.535 m)."""
    if abs(depth_scale_m - DEPTH_BUS_SCALE_M) < 1e-9:
        return np.ascontiguousarray(depth, dtype=np.uint16)
    mm = np.rint(depth.astype(np.float64) * (depth_scale_m / DEPTH_BUS_SCALE_M))
    return np.clip(mm, 0, 65535).astype(np.uint16)
