"""MCAP run records (edge/msg/recording.py): Foxglove-readable schemas, exact round trip, a file cut anywhere reads
back to its last whole record, camera frames as Foxglove images."""

from __future__ import annotations

import base64
import io
import json
from typing import Literal

import jsonschema
import numpy as np
import pytest
from PIL import Image
from pydantic import BaseModel

from edge.msg.messages import (
    TOPICS,
    ActionResult,
    CameraFrame,
    CameraIntrinsics,
    NavigatorStatus,
    NavigatorStep,
    Odometry,
    VlmAnswerIn,
    VlmStep,
)
from edge.msg.recording import (
    COMPRESSED_IMAGE,
    RAW_IMAGE,
    RecordingError,
    RecordWriter,
    foxglove_schema,
    image_message,
    read_recording,
)

FOXGLOVE_SCALARS = {"boolean", "string", "number", "integer"}


def assert_foxglove_typed(schema: dict, where: str = "") -> None:
    """The rules of Foxglove's JSON-schema reader (foxglove/studio packages/mcap-support/src/parseJsonSchema.ts):
    an object with properties, each property typed (scalar, object, or array with typed items), no references."""
    assert schema.get("type") == "object", f"{where}: not an object"
    for name, prop in schema.get("properties", {}).items():
        path = f"{where}.{name}"
        assert not {"$ref", "anyOf", "oneOf", "prefixItems"} & set(prop), f"{path}: {sorted(prop)}"
        kind = prop.get("type")
        if kind == "object":
            assert_foxglove_typed(prop, path)
        elif kind == "array":
            item = prop["items"]
            assert item.get("type") in FOXGLOVE_SCALARS | {"object"}, f"{path}[]: {item}"
            if item["type"] == "object":
                assert_foxglove_typed(item, path + "[]")
        else:
            assert kind in FOXGLOVE_SCALARS, f"{path}: type {kind!r}"


@pytest.mark.parametrize("name", sorted(TOPICS))
def test_every_topic_schema_is_valid_json_schema_and_foxglove_typed(name):
    schema = foxglove_schema(TOPICS[name].schema)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["title"] == f"edge.{TOPICS[name].schema.__name__}"
    assert_foxglove_typed(schema, name)


def test_foxglove_images_schemas_are_valid():
    for s in (COMPRESSED_IMAGE, RAW_IMAGE):
        jsonschema.Draft202012Validator.check_schema(s)
        assert_foxglove_typed(s, s["title"])


def test_a_union_foxglove_cannot_type_is_refused_naming_the_field():
    class Mixed(BaseModel):
        value: int | str

    class MixedTuple(BaseModel):
        pair: tuple[int, str]

    with pytest.raises(ValueError, match=r"Mixed\.value"):
        foxglove_schema(Mixed)
    with pytest.raises(ValueError, match=r"MixedTuple\.pair"):
        foxglove_schema(MixedTuple)

    class Nullable(BaseModel):
        maybe: float | None = None

    with pytest.raises(ValueError, match=r"Nullable\.maybe"):
        foxglove_schema(Nullable)

    class Fine(BaseModel):
        mode: Literal["a", "b"] | Literal[""] = ""

    mode = foxglove_schema(Fine)["properties"]["mode"]
    assert (mode["type"], mode["enum"]) == ("string", ["a", "b", ""])


def _status() -> NavigatorStatus:
    return NavigatorStatus(state="executing", execution="closed_loop", queue_len=1, current_text="move")


def _result() -> ActionResult:
    return ActionResult(
        action_id=3,
        text="move forward 50 cm",
        kind="forward",
        execution="closed_loop",
        commanded=0.5,
        estimated=0.493,
        start_mono_ns=10,
        end_mono_ns=20,
        outcome="completed",
    )


EXAMPLES = [
    ("odometry", Odometry(x_m=0.1, y_m=-0.2, yaw_rad=3.1, stance=(True, False, True, False))),
    ("navigatorStep", NavigatorStep(tick=4, start_s=12.25, now_ns=12_250_000_123, pose_fresh=True, x_m=1.0)),
    (
        "vlmStep",
        VlmStep(
            tick=9,
            start_s=1.5,
            now_ns=1_500_000_000,
            family="navila",
            instructions=("walk to the door",),
            frame_id=17,
            control_mode="walk",
            status=(_status(),),
            status_mono_ns=1_499_000_000,
            results=(_result(),),
            answers=(VlmAnswerIn(query_id=2, ok=True, text="The next action is stop.", frame_ids=(-1, 17)),),
        ),
    ),
    ("vlmStep", VlmStep(tick=0, start_s=0.0, now_ns=1, family="fixed")),  # no status, no answer
    ("actionResult", _result()),
]


def _write(stream, examples, offset_ns=1_700_000_000_000_000_000):
    w = RecordWriter(stream, [TOPICS[n] for n in sorted({n for n, _ in examples})], offset_ns, '{"profile":"sim"}')
    for i, (name, msg) in enumerate(examples):
        w.add(name, seq=i + 1, mono_ns=1_000 + i, recv_mono_ns=2_000 + i, msg=msg)
    return w


def test_round_trip_is_exact_and_messages_match_their_channel_schema(tmp_path):
    path = tmp_path / "run.mcap"
    with path.open("wb") as f:
        _write(f, EXAMPLES).finish()
    rec = read_recording(path)
    assert rec.complete and rec.count() == len(EXAMPLES) and rec.config_json() == '{"profile":"sim"}'
    got = [m for name in ("odometry", "navigatorStep", "vlmStep", "actionResult") for m in rec.topics[name]]
    got.sort(key=lambda m: m["seq"])
    for i, ((name, msg), m) in enumerate(zip(EXAMPLES, got)):
        assert (m["topic"], m["seq"], m["mono_ns"], m["log_mono_ns"]) == (name, i + 1, 1_000 + i, 2_000 + i)
        assert TOPICS[name].schema.model_validate(m["msg"]) == msg  # exact, floats included
        jsonschema.validate(m["msg"], foxglove_schema(TOPICS[name].schema))


def test_a_file_cut_anywhere_reads_back_to_its_last_whole_record(tmp_path):
    """What a SIGKILL leaves: no summary, no footer, possibly half a record at the end."""
    examples = [("odometry", Odometry(x_m=float(i), y_m=0.0, yaw_rad=0.0)) for i in range(12)]
    buf = io.BytesIO()
    _write(buf, examples)
    data = buf.getvalue()  # not finished: as a killed recorder leaves it
    path = tmp_path / "cut.mcap"
    counts = []
    # every 7th byte through the header, schemas and channels; every byte through the messages (the last 1200 bytes)
    for cut in sorted(set(range(0, len(data), 7)) | set(range(len(data) - 1200, len(data) + 1))):
        path.write_bytes(data[:cut])
        try:
            rec = read_recording(path)
        except RecordingError:
            assert not counts, f"a cut at byte {cut} after a readable prefix was refused"
            continue
        assert not rec.complete
        xs = [m["msg"]["x_m"] for m in rec.topics.get("odometry", [])]
        assert xs == [float(i) for i in range(len(xs))]  # a prefix, in order, nothing invented
        counts.append(len(xs))
    assert counts == sorted(counts) and counts[-1] == len(examples)


def test_not_a_recording_is_one_clear_error(tmp_path):
    bad = tmp_path / "notes.mcap"
    bad.write_text("hello")
    with pytest.raises(RecordingError, match="notes.mcap"):
        read_recording(bad)


def _frame(encoding: Literal["rgb8", "z16"], w=32, h=24) -> CameraFrame:
    k = CameraIntrinsics(width=w, height=h, fx=30.0, fy=30.0, cx=w / 2, cy=h / 2)
    return CameraFrame(frame_id=5, sensor_time_ns=0, width=w, height=h, encoding=encoding, intrinsics=k)


def test_camera_frames_become_foxglove_images():
    rgb = np.zeros((24, 32, 3), np.uint8)
    rgb[:, 16:] = (255, 0, 0)
    msg = image_message(_frame("rgb8"), rgb.tobytes(), stamp_ns=1_700_000_001_250_000_000, jpeg_quality=90)
    jsonschema.validate(msg, COMPRESSED_IMAGE)
    assert msg["format"] == "jpeg" and msg["timestamp"] == {"sec": 1_700_000_001, "nsec": 250_000_000}
    back = np.asarray(Image.open(io.BytesIO(base64.b64decode(msg["data"]))))
    assert back.shape == (24, 32, 3) and back[12, 28, 0] > 200 and back[12, 4, 0] < 50

    depth = (np.arange(24 * 32, dtype="<u2") * 7).reshape(24, 32)
    msg = image_message(_frame("z16"), depth.tobytes(), stamp_ns=5, jpeg_quality=90)
    jsonschema.validate(msg, RAW_IMAGE)
    assert (msg["encoding"], msg["step"], msg["width"], msg["height"]) == ("16UC1", 64, 32, 24)
    assert np.array_equal(np.frombuffer(base64.b64decode(msg["data"]), "<u2").reshape(24, 32), depth)


def test_images_go_on_their_own_channel_and_are_not_bus_messages(tmp_path):
    path = tmp_path / "img.mcap"
    with path.open("wb") as f:
        w = RecordWriter(f, [TOPICS["cameraFrame"]], offset_ns=0)
        frame = _frame("rgb8")
        w.add("cameraFrame", 1, 10, 11, frame)
        w.add_image("cameraFrame", 10, 11, image_message(frame, bytes(32 * 24 * 3), 10, 80))
        w.finish()
    rec = read_recording(path)
    assert rec.images == 1 and [m["msg"]["frame_id"] for m in rec.topics["cameraFrame"]] == [5]
    schemas = {json.loads(s)["title"] for s in _schemas(path)}
    assert {"foxglove.CompressedImage", "edge.CameraFrame"} <= schemas


def _schemas(path):
    from mcap.reader import make_reader

    with open(path, "rb") as f:
        summary = make_reader(f).get_summary()
        return [s.data for s in summary.schemas.values()]


def test_why_no_chunks_the_default_chunked_writer_loses_everything_unfinished(tmp_path):
    """The mcap Writer's default (1 MiB ZSTD chunks) keeps messages in memory until a chunk is full or finish():
    a killed recorder would lose them all. RecordWriter writes unchunked records (and recordd flushes per batch)."""
    from mcap.writer import Writer

    path = tmp_path / "chunked.mcap"
    with path.open("wb") as f:
        w = Writer(f)  # library defaults
        w.start()
        w.add_metadata("edge.clock", {"unix_minus_monotonic_ns": "0"})
        sid = w.register_schema("edge.Odometry", "jsonschema", json.dumps(foxglove_schema(Odometry)).encode())
        cid = w.register_channel("odometry", "json", sid)
        for i in range(101):
            w.add_message(
                cid, log_time=i, publish_time=i, data=Odometry(x_m=i, y_m=0, yaw_rad=0).model_dump_json().encode()
            )
        f.flush()  # everything the writer handed to the file; no finish(): as after SIGKILL
    assert read_recording(path).count() == 0

    with path.open("wb") as f:
        w2 = RecordWriter(f, [TOPICS["odometry"]], offset_ns=0)
        for i in range(101):
            w2.add("odometry", i + 1, i, i, Odometry(x_m=i, y_m=0, yaw_rad=0))
        f.flush()
    assert read_recording(path).count() == 101
