"""Remote VLM over ZeroMQ + CURVE on loopback, one robot: round trip, keys, errors that say what happened (refused key,
handshake, nothing listening, server gone, timeout), link errors that keep the episode, resends, malformed requests,
the CLI (keys never overwritten, '*' refused, broken clients folder refused)."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zmq
import zmq.auth
from PIL import Image

from edge.common.config import RemoteConfig
from edge.vlm.remote import (
    AsyncVlmClient,
    RequestRefused,
    VlmClient,
    VlmHandshakeFailed,
    VlmKeyRefused,
    VlmLinkError,
    VlmServerError,
    VlmServerGone,
    VlmTimeout,
    VlmUnreachable,
    main,
)
from edge.vlm.remote.protocol import MAGIC, PREFIX
from engines.vlm.models import FixedAnswerVlm, VlmAnswer, VlmFrame
from tests.fakes.vlm import EchoVlm, ServerThread, frames, make_keys, wait_until

pytestmark = pytest.mark.integration
BIND = "tcp://127.0.0.1:*"
SLACK_S = 2.0  # scheduling slack on top of a timeout (a loaded 2-core machine)


@pytest.fixture
def keys(tmp_path):
    return make_keys(tmp_path)


@pytest.fixture
def serve(keys):
    running = []

    def start(model, bind=BIND, **kw):
        running.append(ServerThread(bind, model, keys, **kw))
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


def _fails_within(client, timeout_s, *args, kind=VlmLinkError):
    t0 = time.monotonic()
    with pytest.raises(kind) as e:
        client.query(*args)
    assert time.monotonic() - t0 < timeout_s + SLACK_S
    return str(e.value)


def test_round_trip_with_fixed_answer_model(keys, serve, clients):
    srv = serve(FixedAnswerVlm(["The next action is stop."]))
    c = clients(srv.endpoint, keys.robot("client"), keys.server_public, timeout_s=5.0)
    assert not c.healthy
    a = c.query("go to the door", frames())
    assert a.text == "The next action is stop." and isinstance(a, VlmAnswer)
    assert c.healthy and c.last.server_s <= c.last.rtt_s and c.last.session_reset and c.last.batch_size == 1
    assert c.last.bytes_sent > 8 * 384 * 384 * 3 and srv.stats.answered == 1
    assert srv.server.sessions() == {"client": zmq.auth.load_certificate(keys.robot("client"))[0].decode()}


def test_frames_arrive_intact_and_reset_follows_instruction(keys, serve, clients):
    model = EchoVlm()
    srv = serve(model)
    c = clients(srv.endpoint, keys.robot("client"), keys.server_public, timeout_s=5.0)
    fs = frames(3, 48, 64, first_id=10) + [VlmFrame(99, np.zeros((2, 5, 3), np.uint8)[:, ::-1])]  # non-contiguous
    a = c.query("go left", fs)
    assert a.frame_ids == (10, 11, 12, 99) and a.vision_calls == 4 and a.new_tokens == 3
    assert a.text == f"go left#1 frame 99 sum {sum(int(f.rgb.sum()) for f in fs)}"
    assert c.query("go left", fs[:1]).text.startswith("go left#2 ")  # same instruction: same episode
    assert c.query("go left", fs[:1], reset=True).text.startswith("go left#1 ")  # explicit reset
    assert c.query("go right", fs[:1]).text.startswith("go right#1 ")  # new instruction: reset
    assert model.resets == ["go left", "go left", "go right"]
    with pytest.raises(ValueError):  # caller's bug, not a link error; nothing is sent
        c.query("go", [VlmFrame(1, np.zeros((4, 4), np.uint8))])
    assert len(model.inferred) == 4


def test_jpeg_frames_round_trip(keys, serve, clients):
    srv = serve(EchoVlm())
    c = clients(srv.endpoint, keys.robot("client"), keys.server_public, timeout_s=5.0, jpeg_quality=90)
    smooth = np.broadcast_to(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (48, 64, 3))
    a = c.query("go", [VlmFrame(5, smooth), VlmFrame(6, smooth)])
    assert a.frame_ids == (5, 6) and c.last.bytes_sent < 2 * 48 * 64 * 3
    got = int(a.text.split()[-1])
    assert abs(got - 2 * int(smooth.sum())) < 0.01 * 2 * int(smooth.sum())  # lossy, but close


# ---- errors that say what happened ------------------------------------------------------------------------------


def test_unknown_client_key_is_refused_and_said_so(keys, serve, clients):
    model = EchoVlm()
    srv = serve(model)
    c = clients(srv.endpoint, keys.robot("intruder"), keys.server_public, timeout_s=5.0)
    msg = _fails_within(c, 5.0, "go", frames(1, 8, 8), kind=VlmKeyRefused)
    assert "key refused" in msg and "clients folder" in msg
    assert not c.healthy and model.inferred == [] and srv.stats.requests == 0


def test_wrong_server_public_key_is_a_handshake_failure(keys, serve, clients):
    model = EchoVlm()
    srv = serve(model)
    c = clients(srv.endpoint, keys.robot("client"), keys.robot_public("intruder"), timeout_s=1.0)
    assert "handshake failed" in _fails_within(c, 1.0, "go", frames(1, 8, 8), kind=VlmHandshakeFailed)
    assert not c.healthy and model.inferred == []


def test_nothing_listening_is_said_so(keys, clients):
    with zmq.Context() as ctx:  # a free port, closed again
        s = ctx.socket(zmq.ROUTER)
        port = s.bind_to_random_port("tcp://127.0.0.1")
        s.close(0)
    c = clients(f"tcp://127.0.0.1:{port}", keys.robot("client"), keys.server_public, timeout_s=0.5)
    assert "nothing listening" in _fails_within(c, 0.5, "go", frames(1, 8, 8), kind=VlmUnreachable)


def test_server_gone_then_back_keeps_the_episode(keys, serve, clients):
    """A dead link is reported as the server gone (not a handshake problem); the robot's next query after the server
    is back goes on without a reset request from the robot (the new server starts the episode from the instruction)."""
    srv = serve(EchoVlm())
    c = clients(srv.endpoint, keys.robot("client"), keys.server_public, timeout_s=0.5)
    assert c.query("go", frames(1, 8, 8, first_id=1)).frame_ids == (1,)
    srv.stop()
    assert "server gone" in _fails_within(c, 0.5, "go", frames(1, 8, 8, first_id=2), kind=VlmServerGone)
    assert not c.healthy
    _fails_within(c, 0.5, "go", frames(1, 8, 8, first_id=3), kind=VlmServerGone)  # still down: same cause
    srv2 = serve(EchoVlm(), bind=srv.endpoint)  # same port
    c.timeout_s = 5.0
    a = c.query("go", frames(1, 8, 8, first_id=4))
    assert a.frame_ids == (4,) and a.text.startswith("go#1 ") and c.last.session_reset
    assert c.healthy and srv2.endpoint == srv.endpoint


def test_timeout_is_said_so_and_the_episode_survives_it(keys, serve, clients):
    """A link error (here: a late reply) does not reset the robot's episode; the late reply is discarded."""
    model = EchoVlm()
    srv = serve(model)
    c = clients(srv.endpoint, keys.robot("client"), keys.server_public, timeout_s=5.0)
    assert c.query("go", frames(1, 8, 8, first_id=1)).text.startswith("go#1 ")
    model.latency_s, c.timeout_s = 0.6, 0.2
    assert "timeout" in _fails_within(c, 0.2, "go", frames(1, 8, 8, first_id=2), kind=VlmTimeout)
    model.latency_s, c.timeout_s = 0.0, 5.0
    wait_until(lambda: srv.stats.answered == 2, 10, "the late request answered on the server")
    a = c.query("go", frames(1, 8, 8, first_id=3))
    assert a.frame_ids == (3,) and a.text.startswith("go#3 ") and not c.last.session_reset  # same episode
    assert c.stale_replies == 0 and model.resets == ["go"]


def test_request_lost_with_the_connection_is_resent_once(keys, serve):
    """The server dies while answering; a new one comes up on the same port within the robot's deadline: the robot
    resends the same request (same id) on its own and gets the answer."""
    slow = EchoVlm(latency_s=0.5)
    srv = serve(slow)
    ac = AsyncVlmClient(srv.endpoint, keys.robot("client"), keys.server_public, timeout_s=20.0)
    try:
        rid = ac.submit("go", frames(1, 8, 8, first_id=7))
        wait_until(lambda: len(slow.inferred) == 1, 10, "the request running on the server")
        srv.stop()  # the running request's reply is never sent
        serve(EchoVlm(), bind=srv.endpoint)
        got = []
        wait_until(lambda: got.append(ac.poll()) or got[-1] is not None, 25, "the answer after the restart")
        qid, answer = got[-1]
        assert qid == rid and isinstance(answer, VlmAnswer) and answer.frame_ids == (7,)
        assert ac.last.resends >= 1 and ac.last.session_reset
    finally:
        ac.close()


def test_async_client_never_blocks(keys, serve):
    model = EchoVlm(latency_s=0.3)
    srv = serve(model)
    ac = AsyncVlmClient(srv.endpoint, keys.robot("client"), keys.server_public, timeout_s=5.0)
    try:
        t0 = time.monotonic()
        r1 = ac.submit("go", frames(1, 8, 8, first_id=1))
        assert ac.poll() is None
        wait_until(lambda: ac.in_flight, 5, "r1 in flight")
        r2 = ac.submit("go", frames(1, 8, 8, first_id=2))  # waits for r1 …
        r3 = ac.submit("go", frames(1, 8, 8, first_id=3))  # … and is superseded by r3
        assert time.monotonic() - t0 < 0.3 + SLACK_S  # submits never waited for the server
        got = {}
        deadline = time.monotonic() + 15.0
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


# ---- malformed requests from an authorised peer -----------------------------------------------------------------


def _jpeg(h, w, **kw):
    out = io.BytesIO()
    Image.new("RGB", (w, h), (10, 20, 30)).save(out, format="JPEG", **kw)
    return out.getvalue()


def _png(h, w):
    out = io.BytesIO()
    Image.new("RGB", (w, h)).save(out, format="PNG")
    return out.getvalue()


def request(header: dict | bytes, payload: bytes = b"") -> bytes:
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    return PREFIX.pack(MAGIC, len(head)) + head + payload


def raw_dealer(ctx, keys, endpoint, name="client"):
    s = ctx.socket(zmq.DEALER)
    s.curve_publickey, s.curve_secretkey = zmq.auth.load_certificate(keys.robot(name))
    s.curve_serverkey, _ = zmq.auth.load_certificate(keys.server_public)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    return s


def test_malformed_requests_get_error_replies_and_server_keeps_serving(keys, serve, clients):
    model = EchoVlm()
    srv = serve(model)
    f1 = {"frame_id": 1, "height": 4, "width": 4, "nbytes": 48}
    head = {"request_id": 7, "instruction": "go", "budget_ms": 5000, "frames": [f1]}
    jpeg_spec = {**f1, "encoding": "jpeg"}
    bad = [
        [b"not a request"],
        [b""],
        [request(b"{not json")],
        [request({})],
        [request(head, b"\x00" * 47)],  # wrong byte count
        [request(head)],  # missing pixels
        [request(head, b"\x00" * 48), b"\x00" * 48],  # two parts
        [request({**head, "frames": [{**f1, "height": -4}]}, b"\x00" * 48)],
        [request({**head, "request_id": "7"}, b"\x00" * 48)],  # strict types
        [request({**head, "budget_ms": 0}, b"\x00" * 48)],
        [request({**head, "extra": 1}, b"\x00" * 48)],
        [request({**head, "frames": [{**f1, "nbytes": 49}]}, b"\x00" * 49)],  # rgb8 size
        [PREFIX.pack(MAGIC, 10**6) + b"{}"],  # header length past the end
        [request({**head, "frames": [{**jpeg_spec, "nbytes": 10}]}, b"not a jpeg")],
        [request({**head, "frames": [{**jpeg_spec, "nbytes": len(_png(4, 4))}]}, _png(4, 4))],
        [request({**head, "frames": [{**jpeg_spec, "nbytes": len(_jpeg(8, 4))}]}, _jpeg(8, 4))],  # size lies
        [
            request(
                {**head, "frames": [{**jpeg_spec, "nbytes": len(_jpeg(4, 4, progressive=True))}]},
                _jpeg(4, 4, progressive=True),
            )
        ],
    ]
    with zmq.Context() as ctx:
        raw = raw_dealer(ctx, keys, srv.endpoint)
        try:
            for parts in bad:
                raw.send_multipart(parts)
                assert raw.poll(10000), parts
                reply = json.loads(raw.recv())
                assert reply["ok"] is False and reply["code"] == "refused", (parts, reply)
                assert reply["error"].startswith("refused: ") or "parts" in reply["error"], reply
            good = _jpeg(4, 4)
            raw.send(request({**head, "frames": [{**jpeg_spec, "nbytes": len(good)}]}, good))
            assert raw.poll(10000) and json.loads(raw.recv())["ok"] is True
        finally:
            raw.close()
    assert srv.stats.refused == len(bad) and model.inferred == [(1,)]
    c = clients(srv.endpoint, keys.robot("client"), keys.server_public, timeout_s=5.0)
    assert c.query("go", frames(2, 8, 8)).frame_ids == (1, 2)


def test_model_failure_is_an_error_reply_and_the_next_request_resets(keys, serve, clients):
    class Broken(EchoVlm):
        fail = True

        def new_session(self):
            return self

        def infer(self, frames):
            if self.fail:
                raise RuntimeError("CUDA out of memory")
            return super().infer(frames)

    model = Broken()
    srv = serve(model)
    c = clients(srv.endpoint, keys.robot("client"), keys.server_public, timeout_s=5.0)
    with pytest.raises(VlmServerError, match="out of memory") as e:
        c.query("go", frames(1, 8, 8))
    assert e.value.code == "model" and c.healthy and srv.stats.failed == 1
    model.fail = False
    assert c.query("go", frames(1, 8, 8)).text.startswith("go#1 ") and model.resets == ["go", "go"]


def test_requests_over_the_limits_are_refused_before_sending(keys, serve, clients):
    srv = serve(EchoVlm())
    c = clients(srv.endpoint, keys.robot("client"), keys.server_public, timeout_s=5.0)
    with pytest.raises(RequestRefused, match="max_side_px"):
        c.query("go", [VlmFrame(1, np.zeros((1921, 8, 3), np.uint8))])
    with pytest.raises(RequestRefused, match="max_frames"):
        c.query("go", frames(17, 2, 2))
    assert srv.stats.requests == 0 and c.query("go", frames(1, 4, 4)).frame_ids == (1,)


def test_the_largest_allowed_frame_arrives(keys, serve, clients):
    """1920×1920 raw RGB (11 MB, the most the default limits allow) crosses CURVE and is answered."""
    model = EchoVlm()
    srv = serve(model)
    c = clients(srv.endpoint, keys.robot("client"), keys.server_public, timeout_s=30.0)
    big = np.full((1920, 1920, 3), 7, np.uint8)
    a = c.query("go", [VlmFrame(1, big)])
    assert a.text == f"go#1 frame 1 sum {7 * big.size}" and c.last.bytes_sent > big.size


# ---- CLI ----------------------------------------------------------------------------------------------------------


def test_cli_keys_never_overwrite_and_rotate_keeps_the_old_pair(tmp_path, capsys):
    assert main(["keys", str(tmp_path / "k"), "robot"]) == 0
    pub, sec = tmp_path / "k/robot.key", tmp_path / "k/robot.key_secret"
    assert os.stat(sec).st_mode & 0o777 == 0o600 and os.stat(pub).st_mode & 0o777 == 0o644
    before = pub.read_text(), sec.read_text()
    assert main(["keys", str(tmp_path / "k"), "robot"]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err and (pub.read_text(), sec.read_text()) == before
    assert main(["keys", str(tmp_path / "k"), "robot", "--rotate"]) == 0
    assert (tmp_path / "k/robot.previous.key").read_text() == before[0] and pub.read_text() != before[0]
    assert (tmp_path / "k/robot.previous.key_secret").read_text() == before[1]
    assert os.stat(tmp_path / "k/robot.previous.key_secret").st_mode & 0o777 == 0o600
    assert main(["keys", str(tmp_path / "k"), "robot", "--rotate"]) == 1  # finish the last rotation first
    assert "not finished" in capsys.readouterr().err


def _serve_cmd(keys, *extra):
    return [
        sys.executable,
        "-m",
        "edge.vlm.remote",
        "serve",
        "--bind",
        BIND,
        "--keys",
        str(keys.server_secret.parent),
        *extra,
    ]


def _endpoint(p, timeout_s=60):
    """Read the server's stderr until its 'serving … on tcp://…' line; returns (endpoint, lines read)."""
    lines = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = p.stderr.readline()
        assert line, "server exited:\n" + "".join(lines)
        lines.append(line)
        if " on tcp://" in line and "serving" in line:
            return line.rsplit(" on ", 1)[1].strip(), lines
    raise AssertionError("no 'serving' line:\n" + "".join(lines))


def test_cli_serve(keys, clients):
    p = subprocess.Popen(
        _serve_cmd(keys, "--clients", str(keys.clients), "--fixed", "The next action is stop."),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        endpoint, _ = _endpoint(p)
        c = clients(endpoint, keys.robot("client"), keys.server_public, timeout_s=10.0)
        assert c.query("go", frames(8)).text == "The next action is stop."
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 0


def test_cli_any_key_needs_allow_any_key_and_warns_loudly(keys, clients):
    r = subprocess.run(_serve_cmd(keys, "--clients", "*", "--fixed", "x"), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--allow-any-key" in r.stderr and "serving" not in r.stderr
    p = subprocess.Popen(
        _serve_cmd(keys, "--clients", "*", "--allow-any-key", "--fixed", "stop."), stderr=subprocess.PIPE, text=True
    )
    try:
        endpoint, lines = _endpoint(p)
        assert "WARNING" in "".join(lines) and "accepts EVERY CURVE key" in "".join(lines)
        c = clients(endpoint, keys.robot("intruder"), keys.server_public, timeout_s=10.0)  # an unlisted key
        assert c.query("go", frames(1, 4, 4)).text == "stop."
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(20)


@pytest.mark.parametrize("problem", ["missing", "not a folder", "broken key", "readable secret"])
def test_cli_refuses_to_serve_with_a_bad_clients_folder_or_key(keys, problem):
    clients_dir = keys.clients
    if problem == "missing":
        clients_dir = keys.root / "nope"
    elif problem == "not a folder":
        clients_dir = keys.server_public
    elif problem == "broken key":
        (keys.clients / "broken.key").write_text("curve\n    nothing here\n")
    else:
        os.chmod(keys.server_secret, 0o640)
    r = subprocess.run(
        _serve_cmd(keys, "--clients", str(clients_dir), "--fixed", "x"), capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2 and "serving" not in r.stderr, r.stderr
    expected = {
        "missing": "does not exist",
        "not a folder": "not a directory",
        "broken key": "broken.key",
        "readable secret": "chmod 600",
    }[problem]
    assert expected in r.stderr


# ---- keys at run time ---------------------------------------------------------------------------------------------


def test_robot_keys_reload_without_restart_and_refusals_are_rate_limited(keys, serve, clients, caplog):
    caplog.set_level(logging.WARNING, logger="edge.vlm.remote")
    srv = serve(EchoVlm(), limits=RemoteConfig(key_reload_s=0.1))
    newcomer = keys.add_robot("newcomer", authorise=False)
    for _ in range(3):  # refused three times: one warning (rate-limited per key)
        c = clients(srv.endpoint, newcomer, keys.server_public, timeout_s=5.0)
        _fails_within(c, 5.0, "go", frames(1, 4, 4), kind=VlmKeyRefused)
    refused = [r for r in caplog.records if "refused robot key" in r.getMessage()]
    assert len(refused) == 1 and refused[0].levelno == logging.WARNING and "127.0.0.1" in refused[0].getMessage()
    assert srv.server.keys.refused == 3
    shutil.copy(keys.robot_public("newcomer"), keys.clients / "newcomer.key")  # authorise it: no restart
    wait_until(lambda: "newcomer" in srv.server.keys.keys.names.values(), 10, "the new key loaded")
    c = clients(srv.endpoint, newcomer, keys.server_public, timeout_s=10.0)
    assert c.query("go", frames(1, 4, 4)).text.startswith("go#1 ")
    os.remove(keys.clients / "newcomer.key")  # and revoke it: the open connection is refused from now on
    wait_until(lambda: "newcomer" not in srv.server.keys.keys.names.values(), 10, "the key removed")
    with pytest.raises(VlmServerError) as e:
        c.query("go", frames(1, 4, 4))
    assert e.value.code == "revoked" and "newcomer" not in srv.server.sessions()
    fresh = clients(srv.endpoint, newcomer, keys.server_public, timeout_s=5.0)
    _fails_within(fresh, 5.0, "go", frames(1, 4, 4), kind=VlmKeyRefused)


def test_server_key_rotation_serves_old_and_new_key(keys, clients, tmp_path):
    from edge.vlm.remote import write_keypair

    old_public = keys.server_public.read_text()
    (tmp_path / "old.key").write_text(old_public)
    write_keypair(keys.server_secret.parent, "server", rotate=True)
    srv = ServerThread(
        BIND, EchoVlm(), keys, previous=("tcp://127.0.0.1:*", keys.root / "server/server.previous.key_secret")
    )
    try:
        new_ep, old_ep = srv.server.endpoints
        moved = clients(new_ep, keys.robot("client"), keys.server_public, timeout_s=10.0)
        waiting = clients(old_ep, keys.robot("client"), tmp_path / "old.key", timeout_s=10.0)
        assert moved.query("go", frames(1, 4, 4)).text.startswith("go#1 ")
        assert waiting.query("go", frames(1, 4, 4)).text.startswith("go#2 ")  # same robot key: same episode
        wrong = clients(old_ep, keys.robot("client"), keys.server_public, timeout_s=1.0)
        _fails_within(wrong, 1.0, "go", frames(1, 4, 4), kind=VlmHandshakeFailed)
    finally:
        srv.stop()


def test_cli_config_limits_reach_the_server(keys, tmp_path, clients):
    cfg = tmp_path / "server.yaml"
    cfg.write_text("vlm:\n  model: fixed\n  fixed_answers: [ok.]\nremote:\n  max_frames: 2\n")
    p = subprocess.Popen(
        _serve_cmd(keys, "--clients", str(keys.clients), "--config", str(cfg)), stderr=subprocess.PIPE, text=True
    )
    try:
        endpoint, _ = _endpoint(p)
        c = clients(endpoint, keys.robot("client"), keys.server_public, timeout_s=10.0)  # default limits: 16 frames
        with pytest.raises(VlmServerError, match="max_frames 2"):
            c.query("go", frames(3, 4, 4))
        assert c.query("go", frames(2, 4, 4)).text == "ok."
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(20)


def test_threads_left_behind_are_none(keys, serve):
    """Server threads end with it (the fixture stops it): nothing of ours stays alive."""
    before = {t.name for t in threading.enumerate()}
    srv = serve(EchoVlm())
    srv.stop()
    assert not {t.name for t in threading.enumerate()} - before - {"MainThread"}


def test_vlmd_remote_inference_keeps_the_episode_across_a_link_error(keys, serve):
    """The VLM process's remote path: after a timed-out query it does not ask the server for a reset."""
    from edge.common.config import RemoteVlmConfig
    from edge.vlm.vlmd import RemoteInference

    model = EchoVlm()
    srv = serve(model)
    cfg = RemoteVlmConfig(
        endpoint=srv.endpoint,
        client_secret_key=str(keys.robot("client")),
        server_public_key=str(keys.server_public),
        timeout_s=0.3,
    )
    infer = RemoteInference(cfg, RemoteConfig())

    def answer(qid):
        got = []
        wait_until(lambda: got.append(infer.poll()) or got[-1] is not None, 20, f"query {qid} settled")
        assert got[-1][0] == qid
        return got[-1]

    try:
        infer.reset("go")
        infer.submit(1, frames(1, 4, 4, first_id=1))
        assert answer(1)[1].text.startswith("go#1 ")
        model.latency_s = 1.0
        infer.submit(2, frames(1, 4, 4, first_id=2))
        _, a, error = answer(2)
        assert a is None and error.startswith("link: timeout")
        model.latency_s = 0.0
        wait_until(lambda: srv.stats.answered == 2, 20, "the late query answered on the server")
        infer.client._client.timeout_s = 10.0
        infer.submit(3, frames(1, 4, 4, first_id=3))
        assert answer(3)[1].text.startswith("go#3 ") and model.resets == ["go"]  # same episode, no reset
    finally:
        infer.close()
