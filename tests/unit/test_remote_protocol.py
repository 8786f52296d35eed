"""Remote VLM wire format: round trips, every limit, and hypothesis fuzzing of both parsers (server: requests,
robot: replies) — whatever the bytes, the parser answers with its own refusal (RequestRefused / BadReply) naming the
problem, never another exception, and never accepts something outside the limits."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydantic import ValidationError

from edge.common.config import RemoteConfig
from edge.vlm.remote.protocol import (
    MAGIC,
    PREFIX,
    BadReply,
    Reply,
    RequestRefused,
    decode_frames,
    decode_reply,
    encode_reply,
    encode_request,
    parse_request,
)
from engines.vlm.models import VlmFrame

L = RemoteConfig(
    max_request_bytes=40_000,
    max_header_bytes=2048,
    max_frames=4,
    max_side_px=64,
    max_pixels=8192,
    max_instruction_chars=200,
    max_reply_bytes=4096,
    max_answer_chars=500,
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def frames(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [VlmFrame(i - 1, rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for i, (h, w) in enumerate(shapes)]


def test_request_round_trip_raw_and_jpeg():
    fs = frames([(8, 8), (64, 32), (1, 1)])
    p = parse_request(encode_request(5, "go to the door", fs, 1500, L, reset=True), L)
    assert (p.header.request_id, p.header.instruction, p.header.reset, p.header.budget_ms) == (
        5,
        "go to the door",
        True,
        1500,
    )
    got = decode_frames(p)
    assert [f.frame_id for f in got] == [-1, 0, 1] and all(np.array_equal(a.rgb, b.rgb) for a, b in zip(got, fs))
    j = decode_frames(parse_request(encode_request(6, "go", fs[:2], 10, L, jpeg_quality=95), L))
    assert [f.rgb.shape for f in j] == [(8, 8, 3), (64, 32, 3)]


def test_limits_are_checked_on_both_sides_with_the_limit_named():
    cases = [
        (frames([(1, 1)] * 5), "x", "max_frames"),
        (frames([(65, 1)]), "x", "max_side_px"),
        (frames([(64, 64), (64, 64), (1, 1)]), "x", "max_pixels"),
        (frames([(1, 1)]), "x" * 201, "max_instruction_chars"),
    ]
    wide = RemoteConfig()
    for fs, instruction, limit in cases:
        with pytest.raises(RequestRefused, match=f"remote.{limit}"):
            encode_request(1, instruction, fs, 100, L)
        with pytest.raises(RequestRefused, match=f"remote.{limit}") as e:
            parse_request(encode_request(1, instruction, fs, 100, wide), L)
        assert e.value.request_id == 1
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        encode_request(1, "x", [VlmFrame(1, np.zeros((2, 2), np.uint8))], 100, L)


def test_the_largest_allowed_frame_fits_and_a_config_where_it_cannot_is_refused():
    big = frames([(64, 64)])
    assert len(encode_request(1, "x" * 200, big, 100, L)) <= L.max_request_bytes
    default = RemoteConfig()
    side = default.max_side_px
    assert 8 + default.max_header_bytes + side * side * 3 <= default.max_request_bytes
    with pytest.raises(ValidationError, match="largest frame"):
        RemoteConfig(max_side_px=2100, max_pixels=2100 * 2100)  # 2100² × 3 bytes do not fit in 12 MiB
    with pytest.raises(ValidationError, match="max_reply_bytes"):
        RemoteConfig(max_answer_chars=100_000)


def _jpeg(h, w, **kw):
    out = io.BytesIO()
    Image.new("RGB", (w, h)).save(out, format="JPEG", **kw)
    return out.getvalue()


def _request(header: dict, payload: bytes) -> bytes:
    head = json.dumps(header).encode()
    return PREFIX.pack(MAGIC, len(head)) + head + payload


def test_jpeg_headers_are_checked_before_decoding():
    spec = {"frame_id": 1, "height": 64, "width": 64, "encoding": "jpeg"}
    good = _jpeg(64, 64)
    head = {"request_id": 1, "instruction": "", "budget_ms": 10}
    assert parse_request(_request({**head, "frames": [{**spec, "nbytes": len(good)}]}, good), L)
    prog = _jpeg(64, 64, progressive=True)
    with pytest.raises(RequestRefused, match="progressive"):
        parse_request(_request({**head, "frames": [{**spec, "nbytes": len(prog)}]}, prog), L)
    small = _jpeg(8, 8)
    with pytest.raises(RequestRefused, match="JPEG is 8×8, header says 64×64"):
        parse_request(_request({**head, "frames": [{**spec, "nbytes": len(small)}]}, small), L)
    noisy = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(noisy, "JPEG")
    truncated = noisy.getvalue()[:-2000]  # header intact, entropy data cut: refused when decoded, not a crash
    p = parse_request(_request({**head, "frames": [{**spec, "nbytes": len(truncated)}]}, truncated), L)
    with pytest.raises(RequestRefused, match="undecodable JPEG"):
        decode_frames(p)


def test_reply_round_trip_and_strict_fields():
    r = Reply(request_id=3, ok=True, text="The next action is stop.", frame_ids=(1, 2), total_s=0.5, batch_size=2)
    assert decode_reply([encode_reply(r)], L) == r
    for bad, what in [
        ({"request_id": "3", "ok": True}, "request_id"),
        ({"request_id": 3, "ok": 1}, "ok"),
        ({"request_id": 3, "ok": True, "total_s": -1.0}, "total_s"),
        ({"request_id": 3, "ok": True, "cache_hits": -2}, "cache_hits"),
        ({"request_id": 3, "ok": True, "frame_ids": ["1"]}, "frame_ids"),
        ({"request_id": 3, "ok": True, "surprise": 1}, "surprise"),
        ({"request_id": 3, "ok": False, "code": "whatever"}, "code"),
    ]:
        with pytest.raises(BadReply, match=what):
            decode_reply([json.dumps(bad).encode()], L)
    for token in (b"NaN", b"Infinity", b"-Infinity", b"1e999"):
        with pytest.raises(BadReply, match="vision_s"):
            decode_reply([b'{"request_id": 3, "ok": true, "vision_s": ' + token + b"}"], L)
    with pytest.raises(BadReply, match="2 parts"):
        decode_reply([encode_reply(r), b""], L)


# ---- fuzzing ---------------------------------------------------------------------------------------------------


def _check_accepted_request(p, n: int) -> None:
    h = p.header
    assert n <= L.max_request_bytes and len(h.instruction) <= L.max_instruction_chars
    assert 1 <= len(h.frames) <= L.max_frames and sum(f.height * f.width for f in h.frames) <= L.max_pixels
    assert all(max(f.height, f.width) <= L.max_side_px for f in h.frames)
    assert 0 < h.budget_ms and h.request_id >= 0 and len(p.payloads) == len(h.frames)


@FUZZ
@given(st.binary(max_size=3000))
def test_fuzz_request_bytes(data):
    for blob in (data, MAGIC + data, PREFIX.pack(MAGIC, max(0, len(data) - 8)) + data):
        try:
            p = parse_request(blob, L)
        except RequestRefused:
            continue
        _check_accepted_request(p, len(blob))


_frame_spec = st.fixed_dictionaries(
    {
        "frame_id": st.integers(-(2**64), 2**64),
        "height": st.integers(-2, 80),
        "width": st.integers(-2, 80),
        "encoding": st.sampled_from(["rgb8", "jpeg", "png", 3]),
        "nbytes": st.integers(-1, 20_000),
    }
)
_json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@FUZZ
@given(
    st.fixed_dictionaries(
        {
            "request_id": st.one_of(st.integers(-5, 2**64), st.text(max_size=5), st.floats()),
            "instruction": st.one_of(st.text(max_size=250), st.integers()),
            "budget_ms": st.one_of(st.integers(-5, 700_000), st.floats()),
            "frames": st.lists(_frame_spec, max_size=6),
        },
        optional={"reset": st.one_of(st.booleans(), st.integers(0, 1)), "extra": _json_value},
    ),
    st.binary(max_size=20_000),
    st.integers(-3, 3),
)
def test_fuzz_request_headers(header, payload, skew):
    head = json.dumps(header).encode()
    blob = PREFIX.pack(MAGIC, max(0, len(head) + skew)) + head + payload
    try:
        p = parse_request(blob, L)
    except RequestRefused as e:
        assert str(e)
        return
    _check_accepted_request(p, len(blob))
    try:
        got = decode_frames(p)
    except RequestRefused:
        return
    assert [f.rgb.shape for f in got] == [(f.height, f.width, 3) for f in p.header.frames]


@FUZZ
@given(st.lists(st.binary(max_size=5000), min_size=0, max_size=3))
def test_fuzz_reply_bytes(parts):
    try:
        r = decode_reply(parts, L)
    except BadReply:
        return
    assert len(parts) == 1 and len(r.text) <= L.max_answer_chars


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(list(Reply.model_fields)),
        st.one_of(_json_value, st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=600)),
    ),
    st.integers(0, 2),
)
def test_fuzz_reply_fields(fields, pad_k):
    body = json.dumps(fields).encode() + b" " * (pad_k * 2000)
    try:
        r = decode_reply([body], L)
    except BadReply as e:
        assert str(e)
        return
    assert len(body) <= L.max_reply_bytes and len(r.text) <= L.max_answer_chars
    for name in ("vision_s", "prefill_s", "decode_s", "total_s", "server_s", "queue_s"):
        v = getattr(r, name)
        assert isinstance(v, float) and math.isfinite(v) and v >= 0
    assert type(r.request_id) is int and type(r.ok) is bool
    assert all(getattr(r, n) >= 0 for n in ("vision_calls", "cache_hits", "new_tokens", "batch_size"))
