"""Remote VLM over ZeroMQ + CURVE on loopback: round trip, key checks, link drop, late replies, malformed requests."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import types
from dataclasses import dataclass, field

import numpy as np
import pytest
import zmq
import zmq.auth
from PIL import Image

from edge.vlm.remote import AsyncVlmClient, VlmClient, VlmLinkError, VlmServer, VlmServerError, generate_keys, main
from engines.vlm.models import FixedAnswerVlm, VlmAnswer, VlmFrame, VlmTimings

pytestmark = pytest.mark.integration
BIND = "tcp://127.0.0.1:*"
SLACK_S = 0.5  # scheduling slack on top of a timeout


@dataclass
class EchoVlm:
    """Typed fake: answers with the newest frame id and a pixel checksum; records resets and infer calls."""

    latency_s: float = 0.0
    family: str = "echo"
    resets: list[str] = field(default_factory=list)
    inferred: list[tuple[int, ...]] = field(default_factory=list)

    def reset(self, instruction: str) -> None:
        self.resets.append(instruction)

    def infer(self, frames):
        time.sleep(self.latency_s)
        ids = tuple(f.frame_id for f in frames)
        self.inferred.append(ids)
        total = int(sum(int(f.rgb.sum(dtype=np.uint64)) for f in frames))
        return VlmAnswer(
            f"frame {ids[-1]} sum {total}", ids, VlmTimings(0.0, 0.0, 0.0, self.latency_s), len(frames), 0, 3
        )


@pytest.fixture
def keys(tmp_path):
    """server/ (its key pair), client/ and intruder/ (key pairs), clients/ (only client.key is authorised)."""
    generate_keys(tmp_path / "server", "server")
    pub, _ = generate_keys(tmp_path / "client", "client")
    generate_keys(tmp_path / "intruder", "intruder")
    os.makedirs(tmp_path / "clients")
    shutil.copy(pub, tmp_path / "clients")
    return types.SimpleNamespace(
        server_secret=tmp_path / "server/server.key_secret",
        server_public=tmp_path / "server/server.key",
        clients=tmp_path / "clients",
        client=tmp_path / "client/client.key_secret",
        intruder=tmp_path / "intruder/intruder.key_secret",
        intruder_public=tmp_path / "intruder/intruder.key",
    )


class Running:
    """A VlmServer serving in a thread; stop() ends it and frees the port."""

    def __init__(self, bind, model, keys):
        self.server = VlmServer(bind, model, keys.server_secret, keys.clients)
        self.endpoint, self._stop = self.server.endpoint, threading.Event()
        self._thread = threading.Thread(target=self.server.serve, args=(self._stop, 0.02), daemon=True)
        self._thread.start()

    def stop(self):
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(5)
            self.server.close()


@pytest.fixture
def serve(keys):
    running = []

    def start(model, bind=BIND):
        running.append(Running(bind, model, keys))
        return running[-1]

    yield start
    for r in running:
        r.stop()


@pytest.fixture
def clients():
    made = []

    def make(*args, **kw):
        made.append(VlmClient(*args, **kw))
        return made[-1]

    yield make
    for c in made:
        c.close()


def frames(n=8, h=384, w=384, first_id=1):
    rng = np.random.default_rng(first_id)
    return [VlmFrame(first_id + i, rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for i in range(n)]


def _fails_within(client, timeout_s, *args):
    t0 = time.perf_counter()
    with pytest.raises(VlmLinkError) as e:
        client.query(*args)
    assert time.perf_counter() - t0 < timeout_s + SLACK_S
    return str(e.value)


def test_round_trip_with_fixed_answer_model(keys, serve, clients):
    srv = serve(FixedAnswerVlm(["The next action is stop."]))
    c = clients(srv.endpoint, keys.client, keys.server_public, timeout_s=2.0)
    assert not c.healthy
    fs = frames()
    a = c.query("go to the door", fs)
    assert a.text == "The next action is stop." and isinstance(a, VlmAnswer)
    assert c.healthy and c.last.rtt_s < 2.0 and c.last.server_s <= c.last.rtt_s
    assert c.last.bytes_sent > 8 * 384 * 384 * 3 and srv.server.answered == 1


def test_frames_arrive_intact_and_reset_follows_instruction(keys, serve, clients):
    model = EchoVlm()
    srv = serve(model)
    c = clients(srv.endpoint, keys.client, keys.server_public, timeout_s=2.0)
    fs = frames(3, 48, 64, first_id=10) + [VlmFrame(99, np.zeros((2, 5, 3), np.uint8)[:, ::-1])]  # non-contiguous
    a = c.query("go left", fs)
    assert a.frame_ids == (10, 11, 12, 99) and a.vision_calls == 4 and a.new_tokens == 3
    assert a.text == f"frame 99 sum {sum(int(f.rgb.sum()) for f in fs)}"
    c.query("go left", fs[:1])  # same instruction: no reset
    c.query("go left", fs[:1], reset=True)  # explicit reset
    c.query("go right", fs[:1])  # new instruction: reset
    assert model.resets == ["go left", "go left", "go right"]
    with pytest.raises(ValueError):  # caller's bug, not a link error; nothing is sent
        c.query("go", [VlmFrame(1, np.zeros((4, 4), np.uint8))])
    assert len(model.inferred) == 4


def test_jpeg_frames_round_trip(keys, serve, clients):
    model = EchoVlm()
    srv = serve(model)
    c = clients(srv.endpoint, keys.client, keys.server_public, timeout_s=2.0, jpeg_quality=90)
    smooth = np.broadcast_to(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (48, 64, 3))
    a = c.query("go", [VlmFrame(5, smooth), VlmFrame(6, smooth)])
    assert a.frame_ids == (5, 6) and c.last.bytes_sent < 2 * 48 * 64 * 3
    got = int(a.text.split()[-1])
    assert abs(got - 2 * int(smooth.sum())) < 0.01 * 2 * int(smooth.sum())  # lossy, but close


def test_unknown_client_key_is_rejected(keys, serve, clients):
    model = EchoVlm()
    srv = serve(model)
    c = clients(srv.endpoint, keys.intruder, keys.server_public, timeout_s=1.0)
    assert "not authorised" in _fails_within(c, 1.0, "go", frames(1, 8, 8))
    assert not c.healthy and model.inferred == [] and srv.server.requests == 0


def test_wrong_server_public_key_fails(keys, serve, clients):
    model = EchoVlm()
    srv = serve(model)
    c = clients(srv.endpoint, keys.client, keys.intruder_public, timeout_s=0.5)
    _fails_within(c, 0.5, "go", frames(1, 8, 8))
    assert not c.healthy and model.inferred == []


def test_link_drop_then_server_restart(keys, serve, clients):
    srv = serve(EchoVlm())
    c = clients(srv.endpoint, keys.client, keys.server_public, timeout_s=0.5)
    assert c.query("go", frames(1, 8, 8, first_id=1)).frame_ids == (1,)
    srv.stop()
    _fails_within(c, 0.5, "go", frames(1, 8, 8, first_id=2))
    assert not c.healthy
    _fails_within(c, 0.5, "go", frames(1, 8, 8, first_id=3))  # still down: fails again, within the timeout
    srv2 = serve(EchoVlm(), bind=srv.endpoint)  # same port
    assert c.query("go", frames(1, 8, 8, first_id=4)).frame_ids == (4,)
    assert c.healthy and srv2.endpoint == srv.endpoint


def test_slow_server_times_out_and_late_reply_is_discarded(keys, serve, clients):
    model = EchoVlm(latency_s=0.6)
    srv = serve(model)
    c = clients(srv.endpoint, keys.client, keys.server_public, timeout_s=0.2)
    assert "no reply" in _fails_within(c, 0.2, "go", frames(1, 8, 8, first_id=1))
    model.latency_s = 0.0
    time.sleep(0.6)  # the server answers request 1 meanwhile
    a = c.query("go", frames(1, 8, 8, first_id=2))
    assert a.frame_ids == (2,) and a.text.startswith("frame 2 ")
    assert srv.server.answered == 2 and c.stale_replies == 0


def test_async_client_never_blocks(keys, serve):
    model = EchoVlm(latency_s=0.3)
    srv = serve(model)
    ac = AsyncVlmClient(srv.endpoint, keys.client, keys.server_public, timeout_s=1.0)
    try:
        t0 = time.perf_counter()
        r1 = ac.submit("go", frames(1, 8, 8, first_id=1))
        assert ac.poll() is None
        time.sleep(0.05)  # r1 is in flight now
        r2 = ac.submit("go", frames(1, 8, 8, first_id=2))  # waits for r1 …
        r3 = ac.submit("go", frames(1, 8, 8, first_id=3))  # … and is superseded by r3
        assert time.perf_counter() - t0 < 0.1  # submits never waited for the server
        got = {}
        deadline = time.monotonic() + 3.0
        while len(got) < 3 and time.monotonic() < deadline:
            item = ac.poll()
            if item is None:
                time.sleep(0.01)
            else:
                got[item[0]] = item[1]
        assert got[r1].frame_ids == (1,) and got[r3].frame_ids == (3,)
        assert isinstance(got[r2], VlmLinkError) and "superseded" in str(got[r2])
        assert ac.healthy and model.inferred == [(1,), (3,)]
    finally:
        ac.close()


def _png(h, w):
    out = io.BytesIO()
    Image.new("RGB", (w, h)).save(out, format="PNG")
    return out.getvalue()


def _jpeg(h, w):
    out = io.BytesIO()
    Image.new("RGB", (w, h)).save(out, format="JPEG")
    return out.getvalue()


def test_malformed_requests_get_error_replies_and_server_keeps_serving(keys, serve, clients):
    model = EchoVlm()
    srv = serve(model)
    raw = zmq.Context.instance().socket(zmq.DEALER)
    raw.curve_publickey, raw.curve_secretkey = zmq.auth.load_certificate(keys.client)
    raw.curve_serverkey, _ = zmq.auth.load_certificate(keys.server_public)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(srv.endpoint)
    jpeg_head = json.dumps(
        {"request_id": 8, "instruction": "go", "frames": [{"frame_id": 1, "height": 4, "width": 4, "encoding": "jpeg"}]}
    ).encode()
    head = {"request_id": 7, "instruction": "go", "frames": [{"frame_id": 1, "height": 4, "width": 4}]}
    bad = [
        [b"not json"],
        [b""],
        [b"{}"],
        [json.dumps(head).encode(), b"\x00" * 47],  # wrong byte count
        [json.dumps(head).encode()],  # missing buffer
        [json.dumps(head).encode(), b"\x00" * 48, b"\x00" * 48],  # extra buffer
        [json.dumps({**head, "frames": [{"frame_id": 1, "height": -4, "width": 4}]}).encode(), b""],
        [json.dumps({**head, "extra": 1}).encode(), b"\x00" * 48],
        [b"\xff\xfe{", b"\x00"],
        [jpeg_head, b"not a jpeg"],
        [jpeg_head, _png(4, 4)],
        [jpeg_head, _jpeg(8, 4)],
    ]  # bad, PNG, wrong size
    try:
        for parts in bad:
            raw.send_multipart(parts)
            assert raw.poll(2000), parts
            reply = json.loads(raw.recv())
            assert reply["ok"] is False and reply["error"].startswith("malformed"), (parts, reply)
        raw.send_multipart([json.dumps(head).encode(), b"\x00" * 48])  # a good one
        assert raw.poll(2000) and json.loads(raw.recv())["ok"] is True
    finally:
        raw.close()
    assert srv.server.malformed == len(bad) and model.inferred == [(1,)]
    c = clients(srv.endpoint, keys.client, keys.server_public, timeout_s=2.0)
    assert c.query("go", frames(2, 8, 8)).frame_ids == (1, 2)


def test_model_failure_is_an_error_reply(keys, serve, clients):
    class Broken(EchoVlm):
        def infer(self, frames):
            raise RuntimeError("CUDA out of memory")

    srv = serve(Broken())
    c = clients(srv.endpoint, keys.client, keys.server_public, timeout_s=2.0)
    with pytest.raises(VlmServerError, match="out of memory"):
        c.query("go", frames(1, 8, 8))
    assert c.healthy and srv.server.failed == 1


def test_cli_keys_and_serve(tmp_path, keys, clients):
    assert main(["keys", str(tmp_path / "k"), "robot"]) == 0
    assert (tmp_path / "k/robot.key").exists() and os.stat(tmp_path / "k/robot.key_secret").st_mode & 0o077 == 0
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge.vlm.remote",
            "serve",
            "--bind",
            BIND,
            "--keys",
            str(keys.server_secret.parent),
            "--clients",
            str(keys.clients),
            "--fixed",
            "The next action is stop.",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        endpoint = None
        deadline = time.monotonic() + 20
        while endpoint is None and time.monotonic() < deadline:
            line = p.stderr.readline()
            assert line, "server exited"
            if " on tcp://" in line:
                endpoint = line.rsplit(" on ", 1)[1].strip()
        c = clients(endpoint, keys.client, keys.server_public, timeout_s=5.0)
        assert c.query("go", frames(8)).text == "The next action is stop."
    finally:
        p.terminate()
        assert p.wait(10) == 0
