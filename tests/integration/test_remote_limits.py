"""Every bound of the remote link (config section `remote`), sent just over by one robot while another is served:
a clear refusal naming the limit, nothing decoded, the other robot unaffected. Request size (and far over: the
connection dropped by libzmq before allocation), header size, frame count, frame side, decoded pixel budget (JPEG
sizes from their headers), instruction length, session table; on the robot side reply size, answer length, field
types, non-finite numbers and extra parts. Deadlines: abandoned requests do not run; silent and stalled connections
are closed; idle sessions are dropped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
import zmq
import zmq.auth

from edge.common.config import RemoteConfig
from edge.vlm.remote import AsyncVlmClient, RequestRefused, VlmBadReply, VlmClient, VlmServerError
from edge.vlm.remote.protocol import CURVE_OVERHEAD, MAGIC, PREFIX, REFUSAL_MARGIN, encode_request, parse_request
from engines.vlm.models import VlmAnswer, VlmFrame
from tests.fakes.vlm import EchoVlm, ServerThread, make_keys, wait_until

pytestmark = pytest.mark.integration
BIND = "tcp://127.0.0.1:*"
L = RemoteConfig(
    max_request_bytes=30_000,
    max_header_bytes=1024,
    max_frames=4,
    max_side_px=64,
    max_pixels=8192,
    max_instruction_chars=100,
    max_reply_bytes=2048,
    max_answer_chars=100,
)
WIDE = RemoteConfig()  # a robot configured with the default (wider) limits


@pytest.fixture
def keys(tmp_path):
    return make_keys(tmp_path, ("a", "b", "c"))


@pytest.fixture
def server(keys):
    srv = ServerThread(BIND, EchoVlm(), keys, limits=L)
    yield srv
    srv.stop()


@pytest.fixture
def raw(keys, server):
    """Robot a, speaking the protocol by hand (a robot with other limits, or a faulty one)."""
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.curve_publickey, s.curve_secretkey = zmq.auth.load_certificate(keys.robot("a"))
    s.curve_serverkey, _ = zmq.auth.load_certificate(keys.server_public)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(server.endpoint)
    yield s
    s.close(0)
    ctx.term()


@pytest.fixture
def robot_b(keys, server):
    c = VlmClient(server.endpoint, keys.robot("b"), keys.server_public, timeout_s=10.0, limits=L)
    yield c
    c.close()


def black(n, h=1, w=1, first_id=1):
    return [VlmFrame(first_id + i, np.zeros((h, w, 3), np.uint8)) for i in range(n)]


def ask(raw, payload: bytes, timeout_s: float = 10.0) -> dict | None:
    raw.send(payload)
    if not raw.poll(int(timeout_s * 1000)):
        return None
    return json.loads(raw.recv())


def assert_refused(reply, limit: str):
    assert reply is not None and reply["ok"] is False and reply["code"] == "refused", reply
    assert limit in reply["error"], reply


def served(robot_b, k: int = 1):
    a = robot_b.query("robot b", black(2, 8, 8, first_id=100 + k))
    assert a.text.startswith("robot b#") and a.frame_ids == (100 + k, 101 + k)


def wide(frames, instruction="robot a", **kw) -> bytes:
    return encode_request(7, instruction, frames, 5000, WIDE, **kw)


@pytest.mark.parametrize(
    "limit, over, at",
    [
        ("max_frames", lambda: wide(black(5)), lambda: wide(black(4))),
        ("max_side_px", lambda: wide(black(1, 1, 65)), lambda: wide(black(1, 1, 64))),
        ("max_pixels", lambda: wide(black(2, 64, 64) + black(1)), lambda: wide(black(2, 64, 64))),
        ("max_instruction_chars", lambda: wide(black(1), "x" * 101), lambda: wide(black(1), "x" * 100)),
    ],
)
def test_just_over_a_request_limit_is_refused_while_others_are_served(limit, over, at, raw, robot_b, server):
    served(robot_b, 1)
    assert_refused(ask(raw, over()), f"remote.{limit}")
    served(robot_b, 2)
    reply = ask(raw, at())
    assert reply is not None and reply["code"] != "refused" and reply["request_id"] == 7  # at the limit: accepted
    assert server.stats.refused == 1


def test_pixel_budget_holds_for_jpeg_frames_before_decoding(raw, robot_b, server):
    """Three 64×64 JPEGs of a few hundred bytes each would decode to 12,288 px > 8,192: refused from their headers."""
    assert_refused(ask(raw, wide(black(3, 64, 64), jpeg_quality=50)), "remote.max_pixels")
    served(robot_b)
    assert_refused(ask(raw, wide(black(1, 8, 65), jpeg_quality=50)), "remote.max_side_px")
    assert server.stats.refused == 2 and server.server.vlm.inferred == [(101, 102)]


def test_header_over_its_limit_is_refused_before_it_is_parsed(raw, robot_b, server):
    base = wide(black(1), "")
    hlen = PREFIX.unpack_from(base)[1]
    head = base[PREFIX.size : PREFIX.size + hlen]
    padded = head[:-1] + b" " * (L.max_header_bytes + 1 - hlen) + head[-1:]  # JSON whitespace: 1025 bytes
    payload = PREFIX.pack(MAGIC, len(padded)) + padded + base[PREFIX.size + hlen :]
    assert_refused(ask(raw, payload), "header of 1025 bytes > remote.max_header_bytes 1024")
    served(robot_b)
    at = PREFIX.pack(MAGIC, len(padded) - 1) + padded[:-2] + padded[-1:] + base[PREFIX.size + hlen :]
    assert ask(raw, at)["ok"] is True


def test_request_over_its_size_is_refused_and_far_over_is_dropped_unread(raw, robot_b, server):
    just_over = PREFIX.pack(MAGIC, 2) + b"{}" + b"\x00" * (L.max_request_bytes + 1 - PREFIX.size - 2)
    assert len(just_over) == L.max_request_bytes + 1
    assert_refused(ask(raw, just_over), f"request of {L.max_request_bytes + 1} bytes > remote.max_request_bytes")
    served(robot_b, 1)
    n_before = server.stats.requests
    far_over = b"\x00" * (L.max_request_bytes + CURVE_OVERHEAD + REFUSAL_MARGIN + 1)  # past libzmq's per-part cap
    assert ask(raw, far_over, timeout_s=1.0) is None  # the connection is dropped before the part is allocated
    served(robot_b, 2)
    assert server.stats.requests == n_before + 1  # only robot b's request reached the application


def test_a_multipart_request_is_refused(raw, robot_b, server):
    raw.send_multipart([wide(black(1)), b"\x00" * 3])
    assert raw.poll(10000)
    reply = json.loads(raw.recv())
    assert reply["code"] == "refused" and "2 parts; the protocol takes one" in reply["error"]
    served(robot_b)


def test_the_robot_refuses_over_its_own_limits_before_sending(robot_b, server):
    for frames, instruction, limit in [
        (black(5), "go", "max_frames"),
        (black(1, 65, 1), "go", "max_side_px"),
        (black(3, 64, 64), "go", "max_pixels"),
        (black(1), "x" * 101, "max_instruction_chars"),
    ]:
        with pytest.raises(RequestRefused, match=limit):
            robot_b.query(instruction, frames)
    assert server.stats.requests == 0
    served(robot_b)


def test_session_table_full_is_busy_while_robots_are_served(keys):
    model = EchoVlm(latency_s=1.0)
    srv = ServerThread(BIND, model, keys, limits=RemoteConfig(max_sessions=2))
    a = AsyncVlmClient(srv.endpoint, keys.robot("a"), keys.server_public, timeout_s=30.0)
    b = AsyncVlmClient(srv.endpoint, keys.robot("b"), keys.server_public, timeout_s=30.0)
    c = VlmClient(srv.endpoint, keys.robot("c"), keys.server_public, timeout_s=30.0)
    try:
        a.submit("robot a", black(1))
        b.submit("robot b", black(1))
        wait_until(lambda: len(srv.server.sessions()) == 2, 10, "two sessions")
        with pytest.raises(VlmServerError, match="remote.max_sessions") as e:
            c.query("robot c", black(1))
        assert e.value.code == "busy"
        results = []
        wait_until(lambda: results.extend(filter(None, (a.poll(), b.poll()))) or len(results) == 2, 30, "a and b")
        assert all(isinstance(r[1], VlmAnswer) for r in results)
        model.latency_s = 0.0
        assert c.query("robot c", black(1)).text.startswith("robot c#1 ")  # an idle session made room
        assert len(srv.server.sessions()) == 2 and srv.stats.busy == 1
    finally:
        a.close()
        b.close()
        c.close()
        srv.stop()


# ---- the robot's checks on replies ---------------------------------------------------------------------------------


class FakeServer:
    """A CURVE ROUTER answering each request with the next scripted reply (a function of the request id)."""

    def __init__(self, keys, replies):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.curve_publickey, self.sock.curve_secretkey = zmq.auth.load_certificate(keys.server_secret)
        self.sock.curve_server = True
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.replies, self.received = list(replies), []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            if not self.sock.poll(20):
                continue
            route, body = self.sock.recv_multipart()
            rid = parse_request(body, WIDE).header.request_id
            self.received.append(rid)
            if self.replies:
                self.sock.send_multipart([route, *self.replies.pop(0)(rid)])

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self.sock.close(0)
        self.ctx.term()


def ok(rid, **fields):
    return {"request_id": rid, "ok": True, "text": "The next action is stop.", "frame_ids": [1], **fields}


def js(d, pad=0):
    return json.dumps(d).encode() + b" " * pad


@pytest.mark.parametrize(
    "bad, problem",
    [
        (
            lambda rid: [js(ok(rid), pad=L.max_reply_bytes + 1 - len(js(ok(rid))))],
            "reply of 2049 bytes > remote.max_reply_bytes",
        ),
        (lambda rid: [js(ok(rid, text="x" * 101))], "answer of 101 chars > remote.max_answer_chars"),
        (lambda rid: [js(ok(rid)).replace(b'"ok": true', b'"ok": true, "vision_s": NaN')], "vision_s"),
        (lambda rid: [js(ok(rid, new_tokens=-1))], "new_tokens"),
        (lambda rid: [js(ok(str(rid)))], "request_id"),
        (lambda rid: [js(ok(rid, total_s="0.1"))], "total_s"),
        (lambda rid: [js(ok(rid)), b"second part"], "2 parts"),
    ],
)
def test_robot_refuses_bad_replies_and_the_next_query_works(keys, bad, problem):
    at_limit = lambda rid: [js(ok(rid, text="x" * 100), pad=L.max_reply_bytes - len(js(ok(rid, text="x" * 100))))]  # noqa: E731
    srv = FakeServer(keys, [bad, at_limit])
    c = VlmClient(srv.endpoint, keys.robot("a"), keys.server_public, timeout_s=10.0, limits=L)
    try:
        with pytest.raises(VlmBadReply, match=problem):
            c.query("go", black(1))
        assert not c.healthy
        assert c.query("go", black(1)).text == "x" * 100 and c.healthy  # a fresh socket: nothing left over
    finally:
        c.close()
        srv.close()


def test_a_reply_over_the_transport_cap_is_never_read(keys):
    """A 10 MB reply (the robot caps replies at 2 KiB) is dropped by libzmq before allocation; the robot resends
    the same request on a new connection and takes the next reply."""
    huge = lambda rid: [b"x" * 10_000_000]  # noqa: E731
    srv = FakeServer(keys, [huge, lambda rid: [js(ok(rid))]])
    c = VlmClient(srv.endpoint, keys.robot("a"), keys.server_public, timeout_s=20.0, limits=L)
    try:
        assert c.query("go", black(1)).text == "The next action is stop."
        assert c.last.resends >= 1 and len(set(srv.received)) == 1  # the same request id, resent
    finally:
        c.close()
        srv.close()


# ---- deadlines and connections --------------------------------------------------------------------------------------


def test_abandoned_requests_do_not_run_and_do_not_delay_others(keys):
    """Robot a gives up five times in a row (0.1 s deadline, 1 s model): the first runs, the rest are superseded or
    expire in the queue instead of running; robot b is then answered after at most what was already running."""
    model = EchoVlm(latency_s=1.0)
    srv = ServerThread(BIND, model, keys)
    a = VlmClient(srv.endpoint, keys.robot("a"), keys.server_public, timeout_s=0.1)
    b = VlmClient(srv.endpoint, keys.robot("b"), keys.server_public, timeout_s=30.0)
    try:
        for k in range(5):
            with pytest.raises(Exception):
                a.query("robot a", black(1, first_id=k))
        wait_until(lambda: srv.stats.expired + srv.stats.superseded + len(model.inferred) >= 5, 30, "all five settled")
        assert b.query("robot b", black(1, first_id=99)).text.startswith("robot b#1 ")
        ran = [ids for ids in model.inferred if ids != (99,)]
        assert len(ran) <= 2 and srv.stats.expired + srv.stats.superseded >= 3
        assert len(ran) + srv.stats.expired + srv.stats.superseded == 5  # every request accounted for once
    finally:
        a.close()
        b.close()
        srv.stop()


CLIENT_SCRIPT = """
import sys, time
import numpy as np
from edge.common.config import RemoteConfig
from edge.vlm.remote import VlmClient
from engines.vlm.models import VlmFrame
limits = RemoteConfig(heartbeat_s=0.2, heartbeat_timeout_s=0.6)
c = VlmClient(sys.argv[1], sys.argv[2], sys.argv[3], timeout_s=30.0, limits=limits)
print(c.query("go", [VlmFrame(1, np.zeros((2, 2, 3), np.uint8))]).text, flush=True)
time.sleep(600)
"""


def test_silent_and_stalled_connections_are_closed(keys):
    limits = RemoteConfig(heartbeat_s=0.2, heartbeat_timeout_s=0.6, handshake_timeout_s=0.5)
    srv = ServerThread(BIND, EchoVlm(), keys, limits=limits)
    import socket

    port = int(srv.endpoint.rsplit(":", 1)[1])
    try:
        silent = socket.create_connection(("127.0.0.1", port))  # TCP up, never a ZMTP greeting
        wait_until(lambda: srv.server.connections == 1, 10, "the silent connection accepted")
        wait_until(lambda: srv.server.connections == 0, 10, "the silent connection closed by the handshake limit")
        silent.close()
        p = subprocess.Popen(
            [sys.executable, "-c", CLIENT_SCRIPT, srv.endpoint, str(keys.robot("a")), str(keys.server_public)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )
        try:
            assert p.stdout.readline().startswith("go#1 ")  # answered
            assert srv.server.connections == 1
            os.kill(p.pid, signal.SIGSTOP)  # the robot hangs: its end stops answering heartbeats
            wait_until(lambda: srv.server.connections == 0, 10, "the stalled connection closed by the heartbeat")
        finally:
            p.kill()
            p.wait(10)
    finally:
        srv.stop()


def test_idle_sessions_are_dropped(keys):
    srv = ServerThread(BIND, EchoVlm(), keys, limits=RemoteConfig(session_idle_s=0.3, key_reload_s=0.1))
    c = VlmClient(srv.endpoint, keys.robot("a"), keys.server_public, timeout_s=10.0)
    try:
        assert c.query("go", black(1)).text.startswith("go#1 ")
        assert srv.server.sessions() and c.last.session_reset
        wait_until(lambda: not srv.server.sessions(), 10, "the idle session dropped")
        assert c.query("go", black(1)).text.startswith("go#1 ") and c.last.session_reset  # a new episode
    finally:
        c.close()
        srv.stop()
