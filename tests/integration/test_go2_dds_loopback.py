"""Go2 DDS over loopback: Go2Robot (this process) ↔ Go2SimEndpoint (subprocess), and release_sport_mode against a
fake motion_switcher/sport service built from the SDK's own RPC server classes (subprocess).

The SDK's channel factory is a per-process singleton, so the peer always runs in a subprocess; this process joins a
random domain on `lo` (or reuses the one another test already set up through dds_init).
"""

from __future__ import annotations

import json
import queue
import random
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from unitree_sdk2py.core.channel import ChannelPublisher
from unitree_sdk2py.idl.unitree_go.msg.dds_ import LowCmd_

from drivers.robot_io import JointCommand
from drivers.unitree.go2 import Go2Robot, dds_config, dds_init, make_lowcmd, release_sport_mode

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

STATE_HZ = 200.0

# Peer process. argv: domain, role ("sim" | "rpc"). Protocol lines start with "@@" (the SDK prints to stdout too).
PEER = r"""
import json, sys, threading, time
import numpy as np
from drivers.unitree.go2 import dds_init, Go2SimEndpoint
from edge.common.realtime import configure_realtime
domain, role = int(sys.argv[1]), sys.argv[2]
if role == "sim":  # as simd: SCHED_FIFO where the OS permits it (its timing is the robot's, not the test's)
    configure_realtime((), 60, lock_memory=False)
dds_init(domain, "lo")
out_lock = threading.Lock()
def say(obj):
    with out_lock:
        print("@@" + json.dumps(obj), flush=True)
stop = threading.Event()
cmds = []
def stdin_reader():
    for line in sys.stdin:
        cmds.append(line.strip())
    stop.set()
threading.Thread(target=stdin_reader, daemon=True).start()

if role == "sim":
    ep = Go2SimEndpoint(domain, "lo", log_every=1)
    say({"ready": True})
    dur, period, n, t0 = [], 1.0 / float(sys.argv[3]), 0, time.monotonic()
    nxt = t0
    z = np.zeros(12)
    while not stop.is_set():
        while cmds:
            c = cmds.pop(0)
            if c == "quit":
                stop.set()
            elif c == "status":
                lc = ep.latest_command()
                d = np.array(dur[-2000:]) * 1e6
                say({"states_sent": ep.states_sent, "elapsed": time.monotonic() - t0,
                     "commands_received": ep.commands_received, "crc_drops": ep.crc_drops,
                     "handler_errors": ep.handler_errors,
                     "latest": None if lc is None
                     else {k: getattr(lc[0], k).tolist() for k in ("q", "dq", "kp", "kd", "tau")},
                     "pub_us": [float(np.percentile(d, 50)), float(np.percentile(d, 99))] if len(d) else None})
        n += 1
        q = 0.01 * n + np.arange(12)
        t = time.perf_counter()
        ep.publish_state(q, z, z, [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 9.81], [1, 2, 3, 4], n)
        dur.append(time.perf_counter() - t)
        nxt += period
        time.sleep(max(0.0, nxt - time.monotonic()))
    ep.close()

elif role == "rpc":
    from unitree_sdk2py.rpc.server import Server
    class FakeMotionSwitcher(Server):
        def __init__(self):
            super().__init__("motion_switcher")
            self.mode = "normal"
        def Init(self):
            self._SetApiVersion("1.0.0.1")
            self._RegistHandler(1001, self.check_mode, False)
            self._RegistHandler(1003, self.release_mode, False)
        def check_mode(self, parameter):
            say({"call": "CheckMode"})
            return 0, json.dumps({"name": self.mode, "form": "0"})
        def release_mode(self, parameter):
            say({"call": "ReleaseMode"})
            self.mode = ""
            return 0, ""
    class FakeSport(Server):
        def __init__(self):
            super().__init__("sport")
        def Init(self):
            self._SetApiVersion("1.0.0.1")
            self._RegistHandler(1005, self.stand_down, False)
        def stand_down(self, parameter):
            say({"call": "StandDown"})
            return 0, ""
    servers = [FakeMotionSwitcher(), FakeSport()]
    for s in servers:
        s.Init()
        s.Start(False)
    say({"ready": True})
    stop.wait()
"""


class Peer:
    """A peer subprocess speaking the "@@json" line protocol."""

    def __init__(self, domain: int, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PEER, str(domain), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[dict] = queue.Queue()
        self.raw: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.expect(lambda m: m.get("ready"), timeout=15.0)

    def _read(self):
        for line in self.proc.stdout:
            self.raw.append(line)
            if line.startswith("@@"):
                self.lines.put(json.loads(line[2:]))

    def expect(self, pred, timeout: float) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                m = self.lines.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                break
            if pred(m):
                return m
        raise AssertionError(f"peer: no expected message in {timeout} s; output:\n{''.join(self.raw[-30:])}")

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def status(self) -> dict:
        self.send("status")
        return self.expect(lambda m: "states_sent" in m, timeout=5.0)

    def close(self) -> None:
        try:
            self.send("quit")
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except Exception:
            self.proc.kill()
            self.proc.wait(timeout=5)


@pytest.fixture(scope="module")
def domain() -> int:
    cfg = dds_config()
    if cfg is None:
        dds_init(random.randint(50, 229), "lo")
        cfg = dds_config()
    if cfg[1] != "lo":
        pytest.skip(f"this process's DDS is already on {cfg[1]!r}, not lo")
    return cfg[0]


@pytest.fixture(scope="module")
def sim(domain):
    peer = Peer(domain, "sim", str(STATE_HZ))
    yield peer
    peer.close()


@pytest.fixture(scope="module")
def robot(domain, sim):
    r = Go2Robot(domain, "lo")
    yield r
    r.close()


def _wait(pred, timeout: float, step: float = 0.005):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return None


def test_state_arrives_at_200hz_with_increasing_ticks(robot, sim):
    assert _wait(robot.latest_state, 10.0), "no rt/lowstate received"
    n0, t0 = robot.states_received, time.monotonic()
    seen = []
    while time.monotonic() - t0 < 1.0:
        s = robot.latest_state()
        if not seen or s is not seen[-1]:
            seen.append(s)
        time.sleep(0.001)
    rate = (robot.states_received - n0) / (time.monotonic() - t0)
    ticks = [s.tick for s in seen]
    print(f"\nrt/lowstate receive rate {rate:.1f} Hz; distinct states polled {len(seen)}")
    assert rate >= 0.85 * STATE_HZ
    assert all(b > a for a, b in zip(ticks, ticks[1:])), ticks
    assert all(b.recv_mono_s > a.recv_mono_s for a, b in zip(seen, seen[1:]))
    s = seen[-1]
    np.testing.assert_allclose(s.q, (0.01 * s.tick + np.arange(12)).astype(np.float32))
    assert s.quat_wxyz.tolist() == [1.0, 0.0, 0.0, 0.0] and s.foot_force.tolist() == [1, 2, 3, 4]
    st = sim.status()
    rate_pub = st["states_sent"] / st["elapsed"]
    print(
        f"sim publish_state (fill+CRC+Write) p50 {st['pub_us'][0]:.0f} µs, p99 {st['pub_us'][1]:.0f} µs; "
        f"publish rate {rate_pub:.1f} Hz"
    )
    # Sanity bounds only (a loaded machine stretches these; the measured numbers are in docs/results.md): publishing
    # must stay well inside the 5 ms period on average and the stream must keep its rate.
    assert st["pub_us"][0] < 1e6 / STATE_HZ and st["pub_us"][1] < 4 * 1e6 / STATE_HZ
    assert rate_pub >= 0.9 * STATE_HZ


def test_latest_state_converts_each_message_once(robot, sim):
    assert _wait(robot.latest_state, 10.0)
    # Two calls with no message in between return the same object (checked under the handler lock's counter).
    for _ in range(50):
        n = robot.states_received
        a, b = robot.latest_state(), robot.latest_state()
        if robot.states_received == n:
            assert a is b
            return
    pytest.fail("could not observe two calls between messages")


def _cmd(seed: float) -> JointCommand:
    j = np.arange(12)
    return JointCommand(q=seed + 0.01 * j, dq=-0.1 * j, kp=20.0 + j, kd=0.5 + 0.01 * j, tau=0.05 * j - seed)


def _matches(latest, sent: JointCommand) -> bool:
    return latest is not None and all(latest[k] == getattr(sent, k).tolist() for k in ("q", "dq", "kp", "kd", "tau"))


def _send_until_received(robot, sim, cmd: JointCommand, timeout: float = 5.0) -> JointCommand:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        sent = robot.write(cmd)
        time.sleep(0.02)
        if _matches(sim.status()["latest"], sent):
            return sent
    raise AssertionError("command never arrived at the sim endpoint")


def test_command_arrives_with_valid_crc(robot, sim):
    cmd = _cmd(0.3)
    sent = _send_until_received(robot, sim, cmd)
    for k in ("q", "dq", "kp", "kd", "tau"):
        np.testing.assert_array_equal(getattr(sent, k), getattr(cmd, k).astype(np.float32), err_msg=k)
    st = sim.status()
    assert st["crc_drops"] == 0 and st["handler_errors"] == 0 and st["commands_received"] >= 1
    # Cost of write() = fill + CRC + Write, at the 50 Hz control rate.
    dur = []
    for i in range(100):
        t = time.perf_counter()
        robot.write(_cmd(0.001 * i))
        dur.append(time.perf_counter() - t)
        time.sleep(0.02 - dur[-1] if dur[-1] < 0.02 else 0)
    p50, p99 = np.percentile(np.array(dur) * 1e6, [50, 99])
    print(f"\nGo2Robot.write (fill+CRC+Write) p50 {p50:.0f} µs, p99 {p99:.0f} µs; commands_sent {robot.commands_sent}")
    assert p50 < 5000 and p99 < 20000  # sanity: well inside the 20 ms control period (numbers: docs/results.md)
    with pytest.raises(ValueError):
        robot.write(JointCommand(q=np.full(12, np.nan)))


def test_corrupted_crc_is_counted_and_dropped(robot, sim):
    _send_until_received(robot, sim, _cmd(1.0))
    before = sim.status()
    raw = ChannelPublisher("rt/lowcmd", LowCmd_)
    raw.Init()
    try:
        bad = make_lowcmd(_cmd(9.0))
        bad.crc ^= 0x1
        _wait(lambda: False, 0.5)  # let the new writer be discovered
        for _ in range(5):
            assert raw.Write(bad)
            time.sleep(0.02)
    finally:
        raw.Close()
    good = _send_until_received(robot, sim, _cmd(2.0))
    after = sim.status()
    drops = after["crc_drops"] - before["crc_drops"]
    print(f"\ncorrupted LowCmd: {drops} of 5 dropped")
    assert drops == 5
    assert after["handler_errors"] == 0
    assert _matches(after["latest"], good)


def test_release_sport_mode_against_fake_motion_switcher(domain):
    peer = Peer(domain, "rpc")
    try:
        t0 = time.monotonic()
        n = release_sport_mode(timeout_s=3.0, max_attempts=3)
        dt = time.monotonic() - t0
        calls = []
        while True:
            try:
                calls.append(peer.expect(lambda m: "call" in m, timeout=1.0)["call"])
            except AssertionError:
                break
        print(f"\nrelease_sport_mode: {n} release(s) in {dt:.2f} s; server saw {calls}")
        assert n == 1
        assert calls == ["CheckMode", "StandDown", "ReleaseMode", "CheckMode"]
    finally:
        peer.close()
