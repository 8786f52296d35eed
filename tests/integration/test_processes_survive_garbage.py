"""Every process of the table, alone, flooded with 10,000 malformed bytes and out-of-bounds messages on every topic it
subscribes (edge.tools.garbage), between valid ones: it keeps running, keeps reporting its health, keeps publishing,
counts what it dropped (processState detail "malformed"), and stops cleanly when asked.

Out-of-bounds messages are well-formed JSON that the schemas refuse: a 0×0 / negative camera frame (one such
frame once killed the VLM process), NaN odometry, negative counts. The camera process (robot profile) plays a
synthetic RealSense recording; it subscribes nothing, and is checked for publishing and health alone.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time

import pytest
import zmq

from edge.msg.bus import Bus, encode
from edge.msg.messages import TOPICS, CameraFrame, CameraIntrinsics
from edge.system.health import HealthView
from edge.system.manager import Manager
from edge.system.process_config import PROCS
from edge.tools.garbage import GARBAGE, INTR, OUT_OF_BOUNDS

pytestmark = pytest.mark.integration
FLOOD = 10_000  # malformed messages sent on each topic a process subscribes


def good_messages(topic: str):
    """A maker of valid messages, fresh each call (new seq, new stamp), sent between the garbage so the process has
    real work: a frame to look at, a pose to render."""
    seq = iter(range(1, 1 << 30))
    if topic == "cameraFrame":
        frame = CameraFrame(
            frame_id=1, sensor_time_ns=1, width=4, height=2, encoding="rgb8", intrinsics=CameraIntrinsics(**INTR)
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
        sent = dict.fromkeys(spec.subs, 0)  # malformed messages handed to ZeroMQ, per topic
        end = time.monotonic() + 2.0
        while time.monotonic() < end or any(n < FLOOD for n in sent.values()):
            for s, topic, _, _ in socks:
                bad = [*GARBAGE, *OUT_OF_BOUNDS.get(topic, [])]
                for i, g in enumerate([*bad, *good[topic]()]):
                    try:
                        s.send(g, zmq.NOBLOCK)
                        sent[topic] += i < len(bad)
                    except zmq.Again:  # the consumer's queue is full: it is busy dropping garbage
                        pass
            time.sleep(0.001)
        assert not mgr.dead(), f"{name} died on garbage"
        # still alive, still reporting its health, still publishing
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and view.state(name) is None:
            view.poll(0.1)
        st = view.state(name)
        assert st is not None and st.state not in ("failed", "stopping"), view.describe(name)
        if spec.subs:  # the flood is counted where it lands (ZeroMQ drops beyond a queue's bound, so ≤ sent)
            # a conflated subscription keeps only the newest message (here a valid one): only queued ones must count
            queued = name == "recordd" or any(not TOPICS[t].latest_only for t in spec.subs)
            deadline = time.monotonic() + 3.0
            while queued and time.monotonic() < deadline and int(view.state(name).detail.get("malformed", "0")) == 0:
                view.poll(0.1)
            counted = int(view.state(name).detail["malformed"])
            assert (0 < counted if queued else 0 <= counted) and counted <= sum(sent.values()), (view.state(name), sent)
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
