"""Run records in MCAP (https://mcap.dev, the `mcap` library), the robotics ecosystem's log format, opened by Foxglove
as is. Written by edge.system.recordd; read by the report and `edge replay`.

Layout of a recording:
- one channel per bus topic, named as the topic, message encoding `json`, schema encoding `jsonschema`; the schema
  (`edge.<Model>`) is generated from the topic's pydantic model, flattened to what Foxglove's JSON-schema reader takes
  (every property typed, no `$ref` / `anyOf` / `prefixItems`). A message is the bus message's JSON, unchanged.
- camera pixels on `<topic>/image` as `foxglove.CompressedImage` (JPEG, rgb8 frames) or `<topic>/depth` as
  `foxglove.RawImage` (`16UC1`, z16 frames), decimated as the topic registry says (`Topic.record_payload_hz`).
- times: MCAP wants one epoch for log_time and publish_time, and Foxglove's timeline is Unix time (docs/design.md,
  "Run records"). The bus stamps with CLOCK_MONOTONIC, so the recorder reads the wall clock ONCE at start and
  stamps `publish_time = sender mono_ns + offset`, `log_time = receive mono_ns + offset`; the offset is in the
  metadata record `edge.clock`, so the monotonic stamps come back exactly. `sequence` is the bus sequence number.
- crash safety: no chunks (each record goes to the file as it is added; the recorder flushes after every batch), so
  a recorder or stack killed with SIGKILL loses nothing it had taken off the bus; such a file has no summary or
  footer and is read to its last whole record.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mcap.exceptions import McapError
from mcap.records import Channel, Footer, Message, Metadata
from mcap.stream_reader import StreamReader
from mcap.well_known import MessageEncoding, SchemaEncoding
from mcap.writer import Writer
from pydantic import BaseModel

from edge.msg.messages import TOPICS, CameraFrame, Topic

SCHEMA_PREFIX = "edge."
CLOCK_METADATA = "edge.clock"  # {"unix_minus_monotonic_ns": "<int>"}
CONFIG_METADATA = "edge.config"  # {"json": EdgeConfig as JSON} — the configuration the run used
PROFILE = ""  # no MCAP profile: JSON channels are self-describing through their JSON schemas


def unix_minus_monotonic_ns() -> int:
    """Offset from CLOCK_MONOTONIC to Unix time, read once per recording (for Foxglove's timeline only; ages and
    deadlines never use the wall clock)."""
    return time.clock_gettime_ns(time.CLOCK_REALTIME) - time.monotonic_ns()


# ---- schemas ------------------------------------------------------------------------------------------------


def foxglove_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema (pydantic), self-contained and flattened for Foxglove: `$ref` inlined, unions of
    string enums merged, homogeneous tuples as `items`. Raises ValueError naming the field for anything Foxglove's
    reader could not type (other unions, `X | None`: Foxglove types no nulls)."""
    root = model.model_json_schema()
    defs = root.pop("$defs", {})
    out = _flat(root, defs, model.__name__)
    out["title"] = SCHEMA_PREFIX + model.__name__
    return out


def _flat(node: dict[str, Any], defs: dict[str, Any], where: str) -> dict[str, Any]:
    node = dict(node)
    if "$ref" in node:
        node = {**defs[node.pop("$ref").rsplit("/", 1)[-1]], **node}
    if "anyOf" in node:
        alts = [_flat(a, defs, where) for a in node.pop("anyOf")]
        if all(a.get("type") == "string" and ("enum" in a or "const" in a) for a in alts):
            node = {"type": "string", "enum": [v for a in alts for v in a.get("enum", [a.get("const")])], **node}
        else:  # X | None included: Foxglove types no nulls; use a default, or a tuple of none or one
            raise ValueError(f"{where}: a union of {[a.get('type') for a in alts]} has no Foxglove type")
    kind = node.get("type")
    if kind == "object":
        node["properties"] = {k: _flat(v, defs, f"{where}.{k}") for k, v in node.get("properties", {}).items()}
    elif kind == "array":
        if "prefixItems" in node:
            items = [_flat(i, defs, f"{where}[]") for i in node.pop("prefixItems")]
            if any(i != items[0] for i in items):
                raise ValueError(f"{where}: a tuple of mixed types has no Foxglove type")
            node["items"] = items[0]
        else:
            node["items"] = _flat(node["items"], defs, f"{where}[]")
    elif kind not in ("string", "number", "integer", "boolean"):
        raise ValueError(f"{where}: JSON type {kind!r} has no Foxglove type")
    return node


_TIME = {
    "type": "object",
    "title": "time",
    "properties": {"sec": {"type": "integer", "minimum": 0}, "nsec": {"type": "integer", "minimum": 0}},
}
# The fields of Foxglove's image schemas (github.com/foxglove/foxglove-sdk, schemas/jsonschema/CompressedImage.json
# and RawImage.json); Foxglove's Image panel needs these exact schema names.
COMPRESSED_IMAGE = {
    "title": "foxglove.CompressedImage",
    "type": "object",
    "properties": {
        "timestamp": _TIME,
        "frame_id": {"type": "string"},
        "data": {"type": "string", "contentEncoding": "base64"},
        "format": {"type": "string"},
    },
    "required": ["timestamp", "frame_id", "data", "format"],
}
RAW_IMAGE = {
    "title": "foxglove.RawImage",
    "type": "object",
    "properties": {
        "timestamp": _TIME,
        "frame_id": {"type": "string"},
        "width": {"type": "integer", "minimum": 0},
        "height": {"type": "integer", "minimum": 0},
        "encoding": {"type": "string"},
        "step": {"type": "integer", "minimum": 0},
        "data": {"type": "string", "contentEncoding": "base64"},
    },
}
CAMERA_FRAME_ID = "camera"  # coordinate frame of the images (Foxglove frame_id)


def image_message(frame: CameraFrame, pixels: bytes | memoryview, stamp_ns: int, jpeg_quality: int) -> dict:
    """A camera frame as a Foxglove image: rgb8 → foxglove.CompressedImage (JPEG, Pillow); z16 → foxglove.RawImage
    `16UC1` (little-endian uint16, as the RealSense z16 format)."""
    stamp = {"sec": stamp_ns // 1_000_000_000, "nsec": stamp_ns % 1_000_000_000}
    if frame.encoding == "rgb8":
        from PIL import Image

        buf = io.BytesIO()
        Image.frombuffer("RGB", (frame.width, frame.height), bytes(pixels)).save(buf, "JPEG", quality=jpeg_quality)
        data = base64.b64encode(buf.getvalue()).decode()
        return {"timestamp": stamp, "frame_id": CAMERA_FRAME_ID, "data": data, "format": "jpeg"}
    return {
        "timestamp": stamp,
        "frame_id": CAMERA_FRAME_ID,
        "width": frame.width,
        "height": frame.height,
        "encoding": "16UC1",
        "step": frame.width * 2,
        "data": base64.b64encode(pixels).decode(),
    }


def decode_image(image: dict):
    """A Foxglove image message (image_message's output, as JSON) back to pixels: CompressedImage → H×W×3 uint8
    RGB (Pillow), RawImage 16UC1 → H×W uint16."""
    import numpy as np

    data = base64.b64decode(image["data"])
    if "format" in image:
        from PIL import Image

        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return np.frombuffer(data, "<u2").reshape(image["height"], image["width"])


# ---- writing ------------------------------------------------------------------------------------------------


class RecordWriter:
    """Appends bus messages to an MCAP stream, record by record (no chunks: see the module doc). The caller flushes
    the file after each batch and calls finish() on a clean stop (summary, statistics, footer)."""

    def __init__(self, stream: IO[bytes], topics: Iterable[Topic], offset_ns: int, config_json: str = ""):
        self.offset_ns = offset_ns
        self.writer = Writer(stream, use_chunking=False)
        self.writer.start(PROFILE, library="edge-vln recordd (mcap-python)")
        self.writer.add_metadata(CLOCK_METADATA, {"unix_minus_monotonic_ns": str(offset_ns)})
        if config_json:
            self.writer.add_metadata(CONFIG_METADATA, {"json": config_json})
        self.channels: dict[str, int] = {}
        for t in topics:  # every channel up front: Foxglove lists a topic even if nothing came on it
            self.channels[t.name] = self._channel(t.name, foxglove_schema(t.schema))

    def _channel(self, name: str, schema: dict) -> int:
        sid = self.writer.register_schema(schema["title"], SchemaEncoding.JSONSchema, json.dumps(schema).encode())
        return self.writer.register_channel(name, MessageEncoding.JSON, sid)

    def add(self, topic: str, seq: int, mono_ns: int, recv_mono_ns: int, msg: BaseModel) -> int:
        """One bus message; returns the bytes of message data written."""
        data = msg.model_dump_json().encode()
        self.writer.add_message(
            self.channels[topic],
            log_time=recv_mono_ns + self.offset_ns,
            publish_time=mono_ns + self.offset_ns,
            data=data,
            sequence=seq & 0xFFFFFFFF,
        )
        return len(data)

    def add_image(self, topic: str, mono_ns: int, recv_mono_ns: int, image: dict) -> int:
        """A Foxglove image (image_message) on `<topic>/image` or `<topic>/depth`."""
        compressed = "format" in image
        name = f"{topic}/image" if compressed else f"{topic}/depth"
        if name not in self.channels:
            self.channels[name] = self._channel(name, COMPRESSED_IMAGE if compressed else RAW_IMAGE)
        data = json.dumps(image).encode()
        self.writer.add_message(
            self.channels[name],
            log_time=recv_mono_ns + self.offset_ns,
            publish_time=mono_ns + self.offset_ns,
            data=data,
        )
        return len(data)

    def finish(self) -> None:
        self.writer.finish()


# ---- reading ------------------------------------------------------------------------------------------------


@dataclass
class Recording:
    """A recording's bus messages by topic, each {"topic", "seq", "mono_ns", "log_mono_ns", "msg"} in file order
    (= receive order); msg is the message as JSON (a dict). complete: the file ended cleanly (summary and footer);
    False for a recorder killed mid-run, which is read to its last whole record."""

    path: Path
    topics: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    complete: bool = False
    images: int = 0  # Foxglove image messages
    # with read_recording(..., images=True): per image channel ("cameraFrame/image"), each {"mono_ns", "image"}
    # (mono_ns = the camera frame header's stamp, as on its bus message; image = the Foxglove message as JSON, data
    # still base64); else empty
    image_msgs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def config_json(self) -> str | None:
        return self.metadata.get(CONFIG_METADATA, {}).get("json")

    def count(self) -> int:
        return sum(len(v) for v in self.topics.values())


class RecordingError(ValueError):
    pass


def read_recording(path: str | Path, images: bool = False) -> Recording:
    """Every bus message of an MCAP recording, in one pass over its records (mcap StreamReader); with images=True the
    Foxglove image messages too (Recording.image_msgs). A file cut short (recorder killed) is read to its last whole
    record. Raises RecordingError for a file that is not an edge recording."""
    path = Path(path)
    rec = Recording(path)
    offset: int | None = None
    channels: dict[int, str] = {}
    with path.open("rb") as f:
        try:
            for record in StreamReader(f).records:
                if isinstance(record, Channel):
                    channels[record.id] = record.topic
                elif isinstance(record, Metadata):
                    rec.metadata[record.name] = dict(record.metadata)
                    if record.name == CLOCK_METADATA:
                        offset = int(record.metadata["unix_minus_monotonic_ns"])
                elif isinstance(record, Message):
                    if offset is None:
                        raise RecordingError(f"{path}: no {CLOCK_METADATA} metadata: not an edge recording")
                    topic = channels[record.channel_id]
                    if topic not in TOPICS:
                        rec.images += 1
                        if images:
                            msg = {"mono_ns": record.publish_time - offset, "image": json.loads(record.data)}
                            rec.image_msgs.setdefault(topic, []).append(msg)
                        continue
                    rec.topics.setdefault(topic, []).append(
                        {
                            "topic": topic,
                            "seq": record.sequence,
                            "mono_ns": record.publish_time - offset,
                            "log_mono_ns": record.log_time - offset,
                            "msg": json.loads(record.data),
                        }
                    )
                elif isinstance(record, Footer):
                    rec.complete = True
        except (McapError, struct.error, ValueError, KeyError) as e:
            if isinstance(e, RecordingError):
                raise
            if offset is None:
                raise RecordingError(f"{path}: not a readable edge MCAP recording ({type(e).__name__}: {e})") from None
            # cut short (a killed recorder): everything before the cut is kept; complete stays False
    return rec
