"""Every process, alone, fed malformed bytes on every topic it subscribes: it keeps running and keeps working."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time

import pytest
import zmq

from edge.msg.bus import Bus, encode
from edge.msg.messages import TOPICS, Odometry
from edge.system.manager import Manager
from edge.system.process_config import PROCS

pytestmark = pytest.mark.integration

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


@pytest.mark.parametrize("name", ["simd", "controlsd", "navigatord", "recordd"])
def test_process_survives_garbage_on_all_its_inputs(name):
    run_dir = tempfile.mkdtemp(prefix="edge-g-", dir="/tmp")
    spec = next(p for p in PROCS if p.name == name)
    overrides = [f"bus.run_dir={run_dir}", f"robot.dds_domain={random.randint(100, 200)}"]
    bus = Bus(run_dir)
    ctx = zmq.Context.instance()
    socks = []
    for topic in spec.subs:
        pushpull = TOPICS[topic].consumer_binds
        s = ctx.socket(zmq.PUSH if pushpull else zmq.PUB)
        if pushpull:
            socks.append((s, bus.endpoint(topic), "connect"))
        else:  # we stand in for the topic's real publisher
            s.bind(bus.endpoint(topic))
            socks.append((s, None, "bound"))
    out_sub = bus.sub(spec.pubs[0]) if spec.pubs else None
    mgr = Manager([spec], None, overrides, extra_args={"recordd": ["--out", f"{run_dir}/bus.mcap"]})
    mgr.start()
    try:
        time.sleep(2.0)  # imports, DDS participant, sockets
        for s, ep, how in socks:
            if how == "connect":
                s.connect(ep)
        time.sleep(0.3)
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            for s, _, _ in socks:
                for g in GARBAGE:
                    try:
                        s.send(g, zmq.NOBLOCK)
                    except zmq.Again:  # the consumer's queue is full: it is busy dropping garbage
                        pass
            time.sleep(0.005)
        time.sleep(0.5)
        assert not mgr.dead(), f"{name} died on garbage"
        if out_sub is not None:  # still alive *and* still publishing
            r = out_sub.latest()
            assert r is not None and r.age_s() < 0.5
            if name == "controlsd":
                assert r.msg.mode == "passive"  # no LowState here: garbage did not make it stand or damp
    finally:
        codes = mgr.stop()
        for s, _, _ in socks:
            s.close(0)
        shutil.rmtree(run_dir, ignore_errors=True)
    assert codes[name] == 0, f"{name} exited with {codes[name]} when asked to stop"
