"""Every process of the table, alone, fed malformed bytes and out-of-bounds messages on every topic it subscribes: it
keeps running, keeps reporting its health, keeps publishing, and stops cleanly when asked.

Out-of-bounds messages are well-formed JSON that the schemas refuse: a 0×0 / negative camera frame (one such
frame once killed the VLM process), NaN odometry, negative counts. The camera process (robot profile) plays a
synthetic RealSense recording; it subscribes nothing, and is checked for publishing and health alone.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time

import pytest
import zmq

from edge.msg.bus import Bus, encode
from edge.msg.messages import TOPICS, CameraFrame, CameraIntrinsics, Odometry
from edge.system.health import HealthView
from edge.system.manager import Manager
from edge.system.process_config import PROCS

pytestmark = pytest.mark.integration


def _raw(topic: str, msg: dict, payload: bytes = b"") -> bytes:
    head = json.dumps({"topic": topic, "seq": 1, "mono_ns": time.monotonic_ns(), "msg": msg}).encode()
    return len(head).to_bytes(4, "little") + head + payload


_INTR = {"width": 4, "height": 2, "fx": 1.0, "fy": 1.0, "cx": 2.0, "cy": 1.0}
_FRAME = {"frame_id": 1, "sensor_time_ns": 1, "encoding": "rgb8", "intrinsics": _INTR}
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
        _raw("cameraFrame", {**_FRAME, "width": 0, "height": 0, "intrinsics": {**_INTR, "width": 0, "height": 0}}),
        _raw("cameraFrame", {**_FRAME, "width": -4, "height": -2}),
        _raw("cameraFrame", {**_FRAME, "width": 4, "height": 2, "intrinsics": {**_INTR, "fx": 0.0}}, b"\x00" * 24),
        _raw("cameraFrame", {**_FRAME, "width": 1 << 20, "height": 1}),
    ],
    "odometry": [_raw("odometry", {"x_m": float("nan"), "y_m": 0, "yaw_rad": 0})],
    "controlState": [
        _raw("controlState", {**_CONTROL, "period_ms": float("inf")}),
        _raw("controlState", {**_CONTROL, "tick": -1}),
    ],
    "navigatorStatus": [_raw("navigatorStatus", {"state": "idle", "execution": "open_loop", "queue_len": -5})],
    "actionText": [_raw("actionText", {"text": "The next action is move forward 75 cm.", "query_id": -9})],
    "simTruth": [
        _raw(
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


def good_messages(topic: str):
    """A maker of valid messages, fresh each call (new seq, new stamp), sent between the garbage so the process has
    real work: a frame to look at, a pose to render."""
    seq = iter(range(1, 1 << 30))
    if topic == "cameraFrame":
        frame = CameraFrame(
            frame_id=1, sensor_time_ns=1, width=4, height=2, encoding="rgb8", intrinsics=CameraIntrinsics(**_INTR)
        )
        return lambda: [encode(TOPICS["cameraFrame"], next(seq), time.monotonic_ns(), frame, b"\x80" * 24)]
    if topic == "simTruth":
        from drivers.sim.go2_physics import build_spec
        from edge.common.config import SimConfig
        from edge.msg.messages import SimTruth

        nq = build_spec(SimConfig().physics_dt, SimConfig().landmarks).compile().nq
        pose = dict(sim_time_s=1, x_m=0, y_m=0, z_m=0.3, roll_rad=0, pitch_rad=0, yaw_rad=0, fallen=False)
        truth = SimTruth(**pose, qpos=(0.0, 0.0, 0.3, 1.0) + (0.0,) * (nq - 4))
        return lambda: [encode(TOPICS["simTruth"], next(seq), time.monotonic_ns(), truth)]
    return lambda: []


EXTRA = {
    "vlmd": ["vlm.model=fixed", "vlm.fixed_answers=[The next action is stop.]"],
    "simcamd": ["sim.camera_hz=5"],
}


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    pytest.importorskip("pyrealsense2")
    from drivers.realsense import write_synthetic_db3

    path = str(tmp_path_factory.mktemp("rs") / "cam.db3")
    write_synthetic_db3(path, n=30, depth=False, pace=True)
    return path


@pytest.mark.parametrize("name", [p.name for p in PROCS])
def test_process_survives_garbage_on_all_its_inputs(name, request):
    run_dir = tempfile.mkdtemp(prefix="edge-g-", dir="/tmp")
    spec = next(p for p in PROCS if p.name == name)
    overrides = [f"bus.run_dir={run_dir}", f"robot.dds_domain={random.randint(100, 200)}", *EXTRA.get(name, [])]
    extra_args = {"recordd": ["--out", f"{run_dir}/bus.mcap"]}
    if name == "camerad":
        extra_args["camerad"] = ["--playback", request.getfixturevalue("recording"), "--loop"]
    bus = Bus(run_dir)
    ctx = zmq.Context.instance()
    socks = []
    for topic in spec.subs:
        pushpull = TOPICS[topic].consumer_binds
        s = ctx.socket(zmq.PUSH if pushpull else zmq.PUB)
        if pushpull:
            socks.append((s, topic, bus.endpoint(topic), "connect"))
        else:  # we stand in for the topic's real publisher
            s.bind(bus.endpoint(topic))
            socks.append((s, topic, None, "bound"))
    out_sub = bus.sub(spec.pubs[0]) if spec.pubs and name != "vlmd" else None
    view = HealthView(bus, [name])
    mgr = Manager([spec], None, overrides, extra_args=extra_args)
    mgr.start()
    try:
        # ready (alone, the navigator waits for control's state: "starting", its sockets open, is as far as it gets)
        mgr.wait_ready(accept=("starting", "ready", "degraded") if name == "navigatord" else ("ready", "degraded"))
        for s, _, ep, how in socks:
            if how == "connect":
                s.connect(ep)
        good = {topic: good_messages(topic) for topic in spec.subs}
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            for s, topic, _, _ in socks:
                for g in [*GARBAGE, *OUT_OF_BOUNDS.get(topic, []), *good[topic]()]:
                    try:
                        s.send(g, zmq.NOBLOCK)
                    except zmq.Again:  # the consumer's queue is full: it is busy dropping garbage
                        pass
            time.sleep(0.005)
        assert not mgr.dead(), f"{name} died on garbage"
        # still alive, still reporting its health, still publishing
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and view.state(name) is None:
            view.poll(0.1)
        st = view.state(name)
        assert st is not None and st.state not in ("failed", "stopping"), view.describe(name)
        if out_sub is not None:
            r = None
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline and (r is None or r.age_s() > 0.5):
                out_sub.wait(0.1)
                r = out_sub.latest()
            assert r is not None and r.age_s() < 0.5, f"{name} stopped publishing {spec.pubs[0]}"
            if name == "controlsd":
                assert r.msg.mode == "passive"  # no LowState here: garbage did not make it stand or damp
    finally:
        codes = mgr.stop(grace_s=10.0)
        view.close()
        for s, _, _, _ in socks:
            s.close(0)
        if out_sub is not None:
            out_sub.close()
        shutil.rmtree(run_dir, ignore_errors=True)
    assert codes[name] == 0, f"{name} exited with {codes[name]} when asked to stop"
