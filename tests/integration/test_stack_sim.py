"""The stack end to end: MuJoCo Go2 ⇄ real DDS on loopback ⇄ control ⇄ ZeroMQ ⇄ navigator ⇄ operator.

One stack per module (stand-up takes seconds); the tests run in file order and the last ones are destructive.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import signal
import tempfile
import time

import pytest
import zmq

from edge.common.config import load_config
from edge.msg.bus import Bus
from edge.msg.messages import TOPICS
from edge.system.manager import Manager
from edge.system.process_config import procs_for
from edge.system.process_main import parse_overrides
from edge.tools.operator_client import Operator

pytestmark = pytest.mark.integration


class Stack:
    def __init__(self):
        self.run_dir = tempfile.mkdtemp(prefix="edge-i-", dir="/tmp")
        self.overrides = [
            f"bus.run_dir={self.run_dir}",
            f"robot.dds_domain={random.randint(20, 90)}",
            "navigator.execution=closed_loop",
            "sim.camera_hz=0",
        ]
        self.cfg = load_config(None, parse_overrides(self.overrides))
        self.bus = Bus(self.run_dir)
        self.mgr = Manager(procs_for("sim", block=["recordd", "vlmd", "simcamd"]), None, self.overrides)
        self.mgr.start()
        self.op = Operator(self.bus)
        self.truth = self.bus.sub("simTruth")
        self.states = self.bus.sub("controlState", conflate=False)

    def pose(self):
        r = self.truth.latest()
        assert r is not None and r.age_s() < 0.2, "no fresh ground truth from the simulator"
        return r.msg

    def close(self):
        self.op.close()
        self.mgr.stop()
        shutil.rmtree(self.run_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def stack():
    s = Stack()
    try:
        s.op.wait_mode(("hold",), timeout_s=40)
        time.sleep(0.5)
        yield s
    finally:
        s.close()


def _say(stack, text, timeout=30):
    return stack.op.wait_for(stack.op.say(text), timeout)


def test_stands_up_and_holds(stack):
    p = stack.pose()
    assert 0.24 < p.z_m < 0.40 and abs(p.roll_rad) < 0.15 and abs(p.pitch_rad) < 0.15 and not p.fallen
    assert stack.op.control.latest().msg.missed_ticks == 0


def test_move_forward_50cm(stack):
    a = stack.pose()
    [r] = _say(stack, "move forward 50 cm")
    time.sleep(0.5)
    b = stack.pose()
    ahead = (b.x_m - a.x_m) * math.cos(a.yaw_rad) + (b.y_m - a.y_m) * math.sin(a.yaw_rad)
    assert r.outcome == "completed" and r.kind == "forward"
    assert ahead == pytest.approx(0.5, abs=0.1)
    assert b.z_m > 0.22 and abs(b.roll_rad) < 0.2 and abs(b.pitch_rad) < 0.2 and not b.fallen


def test_turn_left_30_degrees(stack):
    a = stack.pose()
    [r] = _say(stack, "turn left 30 degrees")
    time.sleep(0.5)
    b = stack.pose()
    turned = math.degrees(math.remainder(b.yaw_rad - a.yaw_rad, math.tau))
    assert r.outcome == "completed"
    assert turned == pytest.approx(30.0, abs=5.0)


def test_invalid_text_stops_and_holds(stack):
    [r] = _say(stack, "I think the kitchen is nice")
    assert r.outcome == "invalid" and r.kind == "invalid" and "no" in r.reason.lower()
    assert stack.op.status.latest().msg.state == "holding"
    assert stack.op.control.latest().msg.mode in ("hold", "walk")


def test_garbage_on_operator_topics_crashes_nothing(stack):
    """Consumer-bound (PULL) topics accept any connecting peer: blast malformed bytes at them while the robot stands.
    (Publisher-bound topics are covered per process in test_processes_survive_garbage.py.)"""
    ctx = zmq.Context.instance()
    socks = []
    for name in (t.name for t in TOPICS.values() if t.consumer_binds):
        s = ctx.socket(zmq.PUSH)  # these topics are PUSH/PULL (edge.msg.bus)
        s.connect(stack.bus.endpoint(name))
        socks.append(s)
    time.sleep(0.3)
    payloads = [
        b"",
        b"\x00",
        b"\xff" * 7,
        b'\x10\x00\x00\x00{"topic":"estop"',
        os.urandom(2000),
        b"\x05\x00\x00\x00hello" + b"x" * 10,
    ]
    for _ in range(40):
        for s in socks:
            for p in payloads:
                try:
                    s.send(p, zmq.NOBLOCK)
                except zmq.Again:
                    pass
        time.sleep(0.01)
    time.sleep(0.5)
    for s in socks:
        s.close(0)
    assert not stack.mgr.dead()
    st = stack.op.control.latest()
    assert st.msg.mode in ("hold", "walk"), st.msg.reason  # garbage on estop must not e-stop
    [r] = _say(stack, "turn right 15 degrees")  # and the navigator still works
    assert r.outcome == "completed"


def test_killing_navigator_mid_walk_zeroes_velocity_and_robot_stays_up(stack):
    stack.op.say("move forward 200 cm")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        st = stack.op.control.latest()
        if st.msg.mode == "walk" and st.msg.vx_m_s > 0.3:
            break
        time.sleep(0.01)
    else:
        pytest.fail("robot never started walking")
    stack.states.drain()
    stack.mgr.children["navigatord"].kill()
    t_kill = time.monotonic_ns()
    zero_ns = None
    deadline = time.monotonic() + 2
    while zero_ns is None and time.monotonic() < deadline:
        for r in stack.states.wait(0.05):
            if r.mono_ns > t_kill and r.msg.vx_m_s == 0.0 and r.msg.wz_rad_s == 0.0:
                zero_ns = r.mono_ns
                break
    assert zero_ns is not None, "velocity never went to zero"
    assert (zero_ns - t_kill) * 1e-9 <= 0.2
    time.sleep(3.0)
    p = stack.pose()
    st = stack.op.control.latest().msg
    assert st.mode == "hold" and not p.fallen and p.z_m > 0.22


def test_stopping_the_sim_state_stream_damps_within_100ms(stack):
    sim = stack.mgr.children["simd"]
    stack.states.drain()
    os.kill(sim.pid, signal.SIGSTOP)
    t_stop = time.monotonic_ns()
    try:
        damp_ns = None
        deadline = time.monotonic() + 2
        while damp_ns is None and time.monotonic() < deadline:
            for r in stack.states.wait(0.05):
                if r.msg.mode == "damp":
                    damp_ns = r.mono_ns
                    assert "LowState stale" in r.msg.reason
                    break
    finally:
        os.kill(sim.pid, signal.SIGCONT)
    assert damp_ns is not None, "control never damped"
    assert (damp_ns - t_stop) * 1e-9 <= 0.1
    time.sleep(0.3)
    assert stack.op.control.latest().msg.mode == "damp"  # latched, even with state flowing again
