"""A camera Frame (drivers.camera) ⇄ cameraFrame bus messages (header + raw pixels); see drivers/camera.py for the
ordering and units (z16 first, in millimetres)."""

from __future__ import annotations

import dataclasses

import numpy as np

from drivers.camera import Frame, Intrinsics, depth_to_mm
from edge.msg.messages import CameraFrame, CameraIntrinsics


def intrinsics_msg(i: Intrinsics) -> CameraIntrinsics:
    return CameraIntrinsics(**dataclasses.asdict(i))


def frame_to_messages(frame: Frame) -> list[tuple[CameraFrame, bytes]]:
    """(header, pixels) pairs to publish in order: z16 first when the frame has depth, rgb8 last."""
    h, w = frame.color.shape[:2]
    color = np.ascontiguousarray(frame.color, dtype=np.uint8)
    out = []
    if frame.depth is not None:
        dh, dw = frame.depth.shape
        out.append(
            (
                CameraFrame(
                    frame_id=frame.frame_id,
                    sensor_time_ns=frame.sensor_time_ns,
                    width=dw,
                    height=dh,
                    encoding="z16",
                    intrinsics=intrinsics_msg(frame.depth_intrinsics or frame.intrinsics),
                ),
                depth_to_mm(frame.depth, frame.depth_scale_m).astype("<u2", copy=False).tobytes(),
            )
        )
    out.append(
        (
            CameraFrame(
                frame_id=frame.frame_id,
                sensor_time_ns=frame.sensor_time_ns,
                width=w,
                height=h,
                encoding="rgb8",
                intrinsics=intrinsics_msg(frame.intrinsics),
            ),
            color.tobytes(),
        )
    )
    return out


def image_from_message(header: CameraFrame, payload: bytes | memoryview) -> np.ndarray:
    """Pixels of a received cameraFrame message: H×W×3 uint8 (rgb8) or H×W uint16 mm (z16). Copies."""
    if header.encoding == "rgb8":
        return np.frombuffer(payload, np.uint8).reshape(header.height, header.width, 3).copy()
    return np.frombuffer(payload, "<u2").reshape(header.height, header.width).astype(np.uint16)
