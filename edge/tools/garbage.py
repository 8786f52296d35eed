"""Malformed and out-of-bounds bus messages: what the garbage test feeds every process and the fault suite floods
the running stack with (edge.tools.fault_bench). Bytes, sent on the raw sockets, never through edge.msg.bus.encode's
checks.

GARBAGE: for any topic (empty, truncated and lying length prefixes, random bytes, a valid message of another topic,
NaN where a number belongs). OUT_OF_BOUNDS: per topic, well-formed JSON that the topic's schema refuses (a 0×0 or
negative camera frame — one such frame once killed the VLM process — NaN odometry, negative counts).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterator

from edge.msg.bus import encode
from edge.msg.messages import TOPICS, Odometry


def raw(topic: str, msg: dict, payload: bytes = b"") -> bytes:
    head = json.dumps({"topic": topic, "seq": 1, "mono_ns": time.monotonic_ns(), "msg": msg}).encode()
    return len(head).to_bytes(4, "little") + head + payload


INTR = {"width": 4, "height": 2, "fx": 1.0, "fy": 1.0, "cx": 2.0, "cy": 1.0}
_FRAME = {"frame_id": 1, "sensor_time_ns": 1, "encoding": "rgb8", "intrinsics": INTR}
_CONTROL = {
    "mode": "hold",
    "reason": "",
    "tick": 1,
    "missed_ticks": 0,
    "period_ms": 20.0,
    "lateness_ms": 0.0,
    "work_ms": 1.0,
    "vx_m_s": 0.0,
    "vy_m_s": 0.0,
    "wz_rad_s": 0.0,
}
GARBAGE = [
    b"",
    b"\x00",
    b"\xff\xff\xff\xff",
    b"\x03\x00\x00\x00{}}",
    b"\x02\x00\x00\x00{}" + b"\x00" * 5,
    b"\x40\x00\x00\x00" + b'{"topic":"x","seq":1}' * 3,
    os.urandom(64),
    os.urandom(5000),
    # a well-formed message of another topic, and one with NaN where a number belongs
    encode(TOPICS["odometry"], 1, 1, Odometry(x_m=0, y_m=0, yaw_rad=0)),
    b'\x60\x00\x00\x00{"topic":"velocityCommand","seq":1,"mono_ns":1,"msg":{"vx_m_s":NaN,"wz_rad_s":0}}' + b" " * 11,
]
# well-formed, schema-refused: per topic
OUT_OF_BOUNDS = {
    "cameraFrame": [
        raw("cameraFrame", {**_FRAME, "width": 0, "height": 0, "intrinsics": {**INTR, "width": 0, "height": 0}}),
        raw("cameraFrame", {**_FRAME, "width": -4, "height": -2}),
        raw("cameraFrame", {**_FRAME, "width": 4, "height": 2, "intrinsics": {**INTR, "fx": 0.0}}, b"\x00" * 24),
        raw("cameraFrame", {**_FRAME, "width": 1 << 20, "height": 1}),
    ],
    "odometry": [raw("odometry", {"x_m": float("nan"), "y_m": 0, "yaw_rad": 0})],
    "controlState": [
        raw("controlState", {**_CONTROL, "period_ms": float("inf")}),
        raw("controlState", {**_CONTROL, "tick": -1}),
    ],
    "navigatorStatus": [raw("navigatorStatus", {"state": "idle", "execution": "open_loop", "queue_len": -5})],
    "actionText": [raw("actionText", {"text": "The next action is move forward 75 cm.", "query_id": -9})],
    "simTruth": [
        raw(
            "simTruth",
            {
                "sim_time_s": 0,
                "x_m": float("nan"),
                "y_m": 0,
                "z_m": 0,
                "roll_rad": 0,
                "pitch_rad": 0,
                "yaw_rad": 0,
                "fallen": False,
            },
        )
    ],
}


def malformed(topic: str) -> Iterator[bytes]:
    """Endless malformed messages for `topic`: GARBAGE and its OUT_OF_BOUNDS, in turn."""
    return itertools.cycle([*GARBAGE, *OUT_OF_BOUNDS.get(topic, [])])
