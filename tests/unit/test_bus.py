from __future__ import annotations

import json
import time

import numpy as np
import pytest
import zmq

from edge.common.config import SafetyConfig
from edge.msg.bus import Bus, BusError, decode, encode
from edge.msg.messages import TOPICS, CameraFrame, CameraIntrinsics, ControlState, Odometry, VelocityCommand


def _wait_latest(sub, timeout=2.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = sub.latest()
        if r is not None:
            return r
        time.sleep(0.005)
    raise TimeoutError


def _connect(pub, sub, msg, payload=b""):
    """PUB/SUB joins asynchronously: publish until the subscriber sees something."""
    end = time.monotonic() + 3
    while time.monotonic() < end:
        pub.publish(msg, payload)
        time.sleep(0.01)
        if sub.latest() is not None:
            return
    raise TimeoutError("subscriber never connected")


def test_round_trip_preserves_message_and_envelope():
    t = TOPICS["velocityCommand"]
    msg = VelocityCommand(vx_m_s=0.5, wz_rad_s=-0.2, action_id=7)
    r = decode(t, encode(t, 3, 123456789, msg))
    assert r.msg == msg and r.seq == 3 and r.mono_ns == 123456789 and r.payload is None


def test_payload_travels_raw_after_the_header():
    t = TOPICS["cameraFrame"]
    intr = CameraIntrinsics(width=4, height=2, fx=1, fy=1, cx=2, cy=1)
    hdr = CameraFrame(frame_id=1, sensor_time_ns=5, width=4, height=2, encoding="rgb8", intrinsics=intr)
    pixels = np.arange(24, dtype=np.uint8).tobytes()
    raw = encode(t, 1, 1, hdr, pixels)
    assert raw.endswith(pixels) and b"base64" not in raw
    r = decode(t, raw)
    assert bytes(r.payload) == pixels and r.msg == hdr
    with pytest.raises(ValueError):
        encode(t, 1, 1, hdr, pixels[:-1])


@pytest.mark.parametrize(
    "raw, why",
    [
        (b"", "truncated"),
        (b"\x05\x00", "truncated"),
        (b"\xff\xff\xff\x00{}", "does not fit"),
        (b"\x02\x00\x00\x00{]", "bad header"),
        (b"\x02\x00\x00\x00{}", "bad header"),
    ],
)
def test_malformed_bytes_raise_bus_error(raw, why):
    with pytest.raises(BusError, match=why):
        decode(TOPICS["odometry"], raw)


def test_wrong_topic_wrong_schema_and_nan_are_rejected():
    good = encode(TOPICS["odometry"], 1, 1, Odometry(x_m=0, y_m=0, yaw_rad=0))
    with pytest.raises(BusError, match="for 'odometry' on 'velocityCommand'"):
        decode(TOPICS["velocityCommand"], good)
    bad = good.replace(b'"x_m":0.0', b'"x_m":"far"')
    bad = len(bad[4:]).to_bytes(4, "little") + bad[4:]
    with pytest.raises(BusError, match="schema Odometry"):
        decode(TOPICS["odometry"], bad)
    nan = encode(TOPICS["velocityCommand"], 1, 1, VelocityCommand(vx_m_s=0, wz_rad_s=0)).replace(
        b'"vx_m_s":0.0', b'"vx_m_s":NaN'
    )
    nan = len(nan[4:]).to_bytes(4, "little") + nan[4:]
    with pytest.raises(BusError):
        decode(TOPICS["velocityCommand"], nan)


def test_publish_refuses_a_message_of_another_topic(bus):
    pub = bus.pub("velocityCommand")
    with pytest.raises(TypeError):
        pub.publish(Odometry(x_m=0, y_m=0, yaw_rad=0))
    pub.close()


def test_latest_only_subscriber_sees_newest_and_its_age(bus):
    pub, sub = bus.pub("odometry"), bus.sub("odometry")
    _connect(pub, sub, Odometry(x_m=-1, y_m=0, yaw_rad=0))
    for i in range(50):
        pub.publish(Odometry(x_m=i, y_m=0, yaw_rad=0))
    time.sleep(0.05)
    r = sub.latest()
    assert r.msg.x_m == 49
    assert 0 <= r.age_s() < 1.0
    assert sub.latest() is r  # nothing new: the same message, older now
    assert sub.fresh(now_ns=r.mono_ns + int(0.2e9)) is None  # odometry max age is 0.1 s


def test_queued_subscriber_sees_every_message_in_order(bus):
    pub, sub = bus.pub("actionResult"), bus.sub("actionResult")
    from edge.msg.messages import ActionResult

    def mk(i):
        return ActionResult(
            action_id=i,
            text="t",
            kind="stop",
            execution="open_loop",
            commanded=0,
            estimated=0,
            start_mono_ns=0,
            end_mono_ns=0,
            outcome="completed",
        )

    _connect(pub, sub, mk(-1))
    sub.drain()
    for i in range(200):
        pub.publish(mk(i))
    got = []
    end = time.monotonic() + 2
    while len(got) < 200 and time.monotonic() < end:
        got += [r.msg.action_id for r in sub.wait(0.1)]
    assert got == list(range(200)) and sub.gaps == 0


def test_garbage_on_the_socket_is_counted_not_raised(bus):
    sub = bus.sub("controlState")
    raw = bus.ctx.socket(zmq.PUB)
    raw.bind(bus.endpoint("controlState"))
    end = time.monotonic() + 3
    while sub.invalid == 0 and time.monotonic() < end:
        raw.send(b"\x00garbage\xff" * 3)
        time.sleep(0.01)
        assert sub.latest() is None
    assert sub.invalid >= 1 and sub.received == 0
    raw.close()


def test_tcp_endpoint_from_config(run_dir):
    bus = Bus(run_dir, tcp={"velocityCommand": "tcp://127.0.0.1:0"})
    assert bus.endpoint("velocityCommand").startswith("tcp://")
    assert bus.endpoint("odometry").startswith("ipc://")
    with pytest.raises(ValueError, match="unknown topics"):
        Bus(run_dir, tcp={"nope": "tcp://127.0.0.1:1"})


def test_every_topic_has_a_schema_and_a_sane_age():
    ages = {t.name: t.max_age_s for t in TOPICS.values()}
    ages["velocityCommand"] = SafetyConfig().command_max_age_s  # its consumer's limit, from the safety section
    for t in TOPICS.values():
        assert ages[t.name] is not None and ages[t.name] > 0, t.name
        if t.rate_hz:
            assert ages[t.name] >= 2.0 / t.rate_hz, t.name  # at least two periods before "stale"
    assert ControlState.model_config["extra"] == "forbid"


@pytest.mark.parametrize(
    "header",
    [
        b'{"topic":"odometry","seq":1e999,"mono_ns":1,"msg":{}}',  # OverflowError on int()
        b'{"topic":"odometry","seq":true,"mono_ns":1,"msg":{}}',  # not an integer
        b'{"topic":"odometry","seq":1,"mono_ns":1,"msg":' + b"[" * 50000 + b"]" * 50000 + b"}",  # RecursionError
    ],
)
def test_pathological_headers_are_bus_errors(header):
    with pytest.raises(BusError):
        decode(TOPICS["odometry"], len(header).to_bytes(4, "little") + header)


def test_a_stamp_from_the_future_is_not_fresh(bus):
    pub, sub = bus.pub("odometry"), bus.sub("odometry")
    _connect(pub, sub, Odometry(x_m=0, y_m=0, yaw_rad=0))
    r = sub.latest()
    assert sub.fresh(now_ns=r.mono_ns) is not None
    assert sub.fresh(now_ns=r.mono_ns - int(0.5e9)) is None  # another machine's clock, ahead of ours


def test_drain_is_bounded(bus):
    from edge.msg.messages import Estop

    sub = bus.sub("estop")
    pub = bus.pub("estop")
    assert pub.wait_peer(2.0)
    for _ in range(20):
        pub.publish(Estop())
    time.sleep(0.2)
    assert len(sub.drain(max_n=8)) == 8 and len(sub.drain()) == 12


def test_sockets_and_run_dir_are_for_the_user_and_group_only(tmp_path):
    import os
    import stat

    from edge.msg.bus import Bus

    old = os.umask(0)  # even with a permissive umask
    try:
        bus = Bus(str(tmp_path / "run"))
        pub, sub = bus.pub("odometry"), bus.sub("estop")  # a publisher binds; so does an event topic's consumer
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(os.stat(tmp_path / "run").st_mode) == 0o750
        for name in ("odometry", "estop"):
            st = os.stat(tmp_path / "run" / name)
            assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
    finally:
        pub.close()
        sub.close()


# ---- every numeric field bounded by its schema (a 0×0 camera frame once killed the VLM process) ----------------


def _frame_bytes(**over) -> bytes:
    hdr = {
        "frame_id": 1,
        "sensor_time_ns": 5,
        "width": 4,
        "height": 2,
        "encoding": "rgb8",
        "intrinsics": {"width": 4, "height": 2, "fx": 1.0, "fy": 1.0, "cx": 2.0, "cy": 1.0},
    }
    intr = over.pop("intrinsics", {})
    hdr.update(over)
    hdr["intrinsics"].update(intr)
    size = max(0, hdr["width"]) * max(0, hdr["height"]) * 3 if isinstance(hdr["width"], int) else 0
    head = json.dumps({"topic": "cameraFrame", "seq": 1, "mono_ns": 1, "msg": hdr}).encode()
    return len(head).to_bytes(4, "little") + head + b"\x00" * min(size, 1 << 16)


@pytest.mark.parametrize(
    "over, why",
    [
        ({"width": 0, "height": 0}, "greater than 0"),
        ({"width": 0}, "greater than 0"),
        ({"height": -3}, "greater than 0"),
        ({"width": -4, "height": -2}, "greater than 0"),
        ({"width": 100_000, "height": 1}, "less than or equal to 8192"),
        ({"frame_id": -2}, "greater than or equal to -1"),
        ({"sensor_time_ns": -1}, "greater than or equal to 0"),
        ({"intrinsics": {"fx": 0.0}}, "greater than 0"),
        ({"intrinsics": {"fy": -1.0}}, "greater than 0"),
        ({"intrinsics": {"cx": 9.0}}, "principal point"),
        ({"intrinsics": {"width": 8}}, "intrinsics are for 8x2"),
        ({"intrinsics": {"width": 0, "height": 0}}, "greater than 0"),
    ],
)
def test_camera_header_out_of_bounds_is_refused(over, why):
    with pytest.raises(BusError, match=why):
        decode(TOPICS["cameraFrame"], _frame_bytes(**over))
    assert decode(TOPICS["cameraFrame"], _frame_bytes()).msg.width == 4  # the unmodified frame is fine


def test_no_float_anywhere_may_be_nan_or_infinite():
    """Msg forbids NaN / inf for every float field of every message (pydantic allow_inf_nan=False)."""
    for t in TOPICS.values():
        assert t.schema.model_config.get("allow_inf_nan") is False, t.name
    for raw in ('{"x_m":NaN,"y_m":0,"yaw_rad":0}', '{"x_m":0,"y_m":Infinity,"yaw_rad":0}'):
        head = b'{"topic":"odometry","seq":1,"mono_ns":1,"msg":' + raw.encode() + b"}"
        with pytest.raises(BusError, match="finite"):
            decode(TOPICS["odometry"], len(head).to_bytes(4, "little") + head)


@pytest.mark.parametrize(
    "topic, msg",
    [
        (
            "controlState",
            {
                "mode": "hold",
                "reason": "",
                "tick": -1,
                "missed_ticks": 0,
                "period_ms": 20,
                "lateness_ms": 0,
                "work_ms": 1,
                "vx_m_s": 0,
                "vy_m_s": 0,
                "wz_rad_s": 0,
            },
        ),
        ("navigatorStatus", {"state": "idle", "execution": "open_loop", "queue_len": -1}),
        ("actionText", {"text": "stop", "query_id": -7}),
        ("processState", {"name": "x", "state": "ready", "pid": -1, "uptime_s": 0, "state_s": 0}),
        ("processState", {"name": "x", "state": "loading", "pid": 1, "uptime_s": 0, "state_s": 0, "progress": 1.5}),
    ],
)
def test_counts_ids_and_fractions_are_bounded(topic, msg):
    head = json.dumps({"topic": topic, "seq": 1, "mono_ns": 1, "msg": msg}).encode()
    with pytest.raises(BusError):
        decode(TOPICS[topic], len(head).to_bytes(4, "little") + head)


def test_per_process_topic_endpoints(bus):
    assert bus.endpoint("processState", "vlmd").endswith("/processState.vlmd")
    with pytest.raises(ValueError, match="name the process"):
        bus.endpoint("processState")
    with pytest.raises(ValueError, match="not per process"):
        bus.endpoint("odometry", "vlmd")
    with pytest.raises(ValueError, match="name the processes"):
        bus.sub("processState")


def test_a_flood_of_malformed_messages_costs_a_real_time_loop_a_bounded_read_per_call(bus):
    """Fault suite: 10,000 malformed estop messages held one control tick 50–65 ms, because drain(max_n) counted only
    valid ones. With max_reads a call takes at most that many frames; the e-stop behind the flood still arrives."""
    from edge.msg.bus import RT_READ_BUDGET, encode
    from edge.msg.messages import Estop

    sub = bus.sub("estop")
    raw = bus.ctx.socket(zmq.PUSH)
    raw.connect(bus.endpoint("estop"))
    n = 3 * RT_READ_BUDGET + 10
    for _ in range(n):
        raw.send(b"\x00garbage\xff")
    raw.send(encode(TOPICS["estop"], 1, time.monotonic_ns(), Estop(reason="behind the flood")))
    assert sub.sock.poll(3000)  # the connection is asynchronous
    time.sleep(0.3)  # and the rest of the flood lands
    assert sub.drain(max_n=8, max_reads=RT_READ_BUDGET) == []
    assert sub.invalid == RT_READ_BUDGET  # the call read its budget and stopped
    got, calls = [], 1
    while not got and calls < 10:
        got, calls = sub.drain(max_n=8, max_reads=RT_READ_BUDGET), calls + 1
        assert sub.invalid <= calls * RT_READ_BUDGET
    assert [r.msg.reason for r in got] == ["behind the flood"] and sub.invalid == n and calls == 4
    raw.close()
