"""Run the VLM on a GPU server: the robot sends raw frames over ZeroMQ with CURVE encryption and authentication.

Wire format (no pickle, no base64):
    request  (DEALER → ROUTER, multipart): [VlmRequest JSON, one raw H×W×3 uint8 RGB buffer per frame]
             (or, opted into with jpeg_quality for slow links, one JPEG file per frame: ~1/25 of the bytes)
    reply    (ROUTER → DEALER, one part):  [VlmReply JSON]  (the VlmAnswer fields, or ok=false and an error)
The server only talks to clients whose public key is in its clients directory (ZAP); the client only talks to the
server whose public key it holds. Keys: `python -m edge.vlm.remote keys DIR NAME` → DIR/NAME.key (public, share it)
and DIR/NAME.key_secret (keep it on that machine). Server: `python -m edge.vlm.remote serve --bind tcp://0.0.0.0:5560
--keys DIR --clients DIR (--fixed TEXT | --config FILE)` (DIR/server.key_secret; --clients holds the robots' *.key
files; --config names the model in its vlm section).
Bytes: 8 raw 384×384 frames are 3.5 MB a query (~0.3 s at 100 Mbit/s); over Wi-Fi use jpeg_quality (~0.1 MB).

The robot keeps its control loop local: `VlmClient.query` blocks up to timeout_s, so robot loops use
`AsyncVlmClient` (a worker thread owns the socket; `submit` and `poll` never block) and hold when answers are late.
"""

from __future__ import annotations

import argparse
import collections
import io
import itertools
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
import zmq
import zmq.auth
from pydantic import Field
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import recv_monitor_message

from edge.common.config import Frozen, load_config
from edge.vlm.model import build_model
from engines.vlm.models import FixedAnswerVlm, VisionLanguageModel, VlmAnswer, VlmFrame, VlmTimings

log = logging.getLogger(__name__)
MAX_FRAMES = 16  # NaVILA sends 8, StreamVLN 1: anything far beyond is refused before decoding
MAX_SIDE = 1920
MAX_PART_BYTES = MAX_SIDE * MAX_SIDE * 3  # the server drops a connection that sends a bigger part


# ---- wire schema ----------------------------------------------------------------------------------------------


class FrameSpec(Frozen):
    frame_id: int
    height: int = Field(gt=0, le=MAX_SIDE)
    width: int = Field(gt=0, le=MAX_SIDE)
    encoding: Literal["rgb8", "jpeg"] = "rgb8"  # jpeg: the part is a JPEG file of that size (opt-in, slow links)


class VlmRequest(Frozen):
    request_id: int
    instruction: str = Field(max_length=8192)
    reset: bool = False
    frames: list[FrameSpec] = Field(min_length=1, max_length=MAX_FRAMES)


class VlmReply(Frozen):
    request_id: int
    ok: bool
    error: str = ""
    text: str = ""
    frame_ids: tuple[int, ...] = ()
    vision_s: float = 0.0
    prefill_s: float = 0.0
    decode_s: float = 0.0
    total_s: float = 0.0
    vision_calls: int = 0
    cache_hits: int = 0
    new_tokens: int = 0
    server_s: float = 0.0  # server-side time from receiving the request to sending this reply


class VlmLinkError(RuntimeError):
    """No answer: timeout, no server, key rejected, connection lost, or (VlmServerError) the server refused."""


class VlmServerError(VlmLinkError):
    """The server answered with an error (malformed request, model failure); the link itself works."""


def generate_keys(directory: str | os.PathLike, name: str) -> tuple[str, str]:
    """Write DIR/NAME.key (public) and DIR/NAME.key_secret (secret, mode 0600); returns both paths."""
    os.makedirs(directory, exist_ok=True)
    public, secret = zmq.auth.create_certificates(directory, name)
    os.chmod(secret, 0o600)
    return public, secret


def _view(x: bytes | zmq.Frame) -> memoryview:
    return x.buffer if isinstance(x, zmq.Frame) else memoryview(x)


def _encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def _decode_jpeg(buf: memoryview, spec: FrameSpec) -> np.ndarray:
    from PIL import Image

    im = Image.open(io.BytesIO(buf))
    if im.format != "JPEG" or im.size != (spec.width, spec.height):  # checked before decoding any pixels
        raise ValueError(f"frame {spec.frame_id}: {im.format} {im.size}, expected JPEG {spec.width}×{spec.height}")
    return np.asarray(im.convert("RGB"))


# ---- server ---------------------------------------------------------------------------------------------------


class VlmServer:
    """ROUTER with CURVE server keys; unknown client keys are rejected by the ZAP authenticator.
    Single-threaded: requests are answered in arrival order. `endpoint` is the bound address (tcp://…:*)."""

    def __init__(
        self,
        bind: str,
        vlm: VisionLanguageModel,
        server_secret_file: str | os.PathLike,
        authorized_clients_dir: str | os.PathLike,
    ):
        self.vlm = vlm
        public, secret = zmq.auth.load_certificate(server_secret_file)
        if secret is None:
            raise ValueError(f"{server_secret_file}: not a secret key file")
        self._clients_dir = os.fspath(authorized_clients_dir)
        self.ctx = zmq.Context()  # own context: one ZAP handler per context
        self.auth = ThreadAuthenticator(self.ctx)
        self.auth.start()
        self.reload_clients()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.MAXMSGSIZE, MAX_PART_BYTES)
        self.sock.curve_secretkey, self.sock.curve_publickey, self.sock.curve_server = secret, public, True
        self.sock.bind(bind)
        self.endpoint: str = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self._instruction: str | None = None
        self.requests = self.answered = self.malformed = self.failed = 0

    def reload_clients(self) -> None:
        """Re-read the authorised public keys (e.g. after adding a robot)."""
        self.auth.configure_curve(domain="*", location=self._clients_dir)

    def handle(self, parts: Sequence[bytes | zmq.Frame]) -> VlmReply:
        """One request (without the routing id) → its reply. Never raises."""
        t0 = time.perf_counter()
        self.requests += 1
        rid = -1
        try:
            req = VlmRequest.model_validate_json(bytes(_view(parts[0])) if parts else b"")
            rid = req.request_id
            if len(parts) - 1 != len(req.frames):
                raise ValueError(f"header lists {len(req.frames)} frames, got {len(parts) - 1} buffers")
            frames = []
            for spec, part in zip(req.frames, parts[1:]):
                buf = _view(part)
                if spec.encoding == "jpeg":
                    rgb = _decode_jpeg(buf, spec)
                elif len(buf) != spec.height * spec.width * 3:
                    raise ValueError(f"frame {spec.frame_id}: {len(buf)} bytes, expected {spec.height}×{spec.width}×3")
                else:
                    rgb = np.frombuffer(buf, np.uint8).reshape(spec.height, spec.width, 3)  # zero-copy, read-only
                frames.append(VlmFrame(frame_id=spec.frame_id, rgb=rgb))
        except Exception as e:  # bad JSON or fields (pydantic), sizes, undecodable JPEG: never a crash
            self.malformed += 1
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            log.warning("malformed request #%d: %s", self.malformed, msg)
            return VlmReply(request_id=rid, ok=False, error=f"malformed: {msg}", server_s=time.perf_counter() - t0)
        try:
            if req.reset or req.instruction != self._instruction:
                self.vlm.reset(req.instruction)
                self._instruction = req.instruction
            a = self.vlm.infer(frames)
        except Exception as e:  # a model failure answers this request; the server keeps serving
            self.failed += 1
            self._instruction = None  # force a reset next time
            log.exception("request %d: model failed", rid)
            return VlmReply(
                request_id=rid, ok=False, error=f"model: {type(e).__name__}: {e}", server_s=time.perf_counter() - t0
            )
        self.answered += 1
        t = a.timings
        return VlmReply(
            request_id=rid,
            ok=True,
            text=a.text,
            frame_ids=tuple(a.frame_ids),
            vision_s=t.vision_s,
            prefill_s=t.prefill_s,
            decode_s=t.decode_s,
            total_s=t.total_s,
            vision_calls=a.vision_calls,
            cache_hits=a.cache_hits,
            new_tokens=a.new_tokens,
            server_s=time.perf_counter() - t0,
        )

    def serve_once(self, timeout_s: float = 0.1) -> bool:
        """Answer one request if one arrives within timeout_s; True if one was handled."""
        if not self.sock.poll(int(timeout_s * 1000)):
            return False
        ident, *parts = self.sock.recv_multipart(copy=False)
        reply = self.handle(parts)
        self.sock.send_multipart([ident, reply.model_dump_json().encode()])  # dropped if the client has gone
        return True

    def serve(self, stop: threading.Event, poll_s: float = 0.1) -> None:
        log.info("serving %s on %s", getattr(self.vlm, "family", type(self.vlm).__name__), self.endpoint)
        while not stop.is_set():
            self.serve_once(poll_s)

    def close(self) -> None:
        self.sock.close(linger=0)
        self.auth.stop()
        self.ctx.term()


# ---- client ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryStats:
    request_id: int
    rtt_s: float  # send → reply received, as seen by the client
    server_s: float  # of which the server spent (decode + model)
    bytes_sent: int  # application bytes (header + pixels); CURVE adds ~33 bytes per part
    bytes_received: int


_MON_EVENTS = (
    zmq.EVENT_CONNECTED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)


class VlmClient:
    """DEALER with CURVE client keys. Not thread-safe; `query` BLOCKS up to timeout_s (use AsyncVlmClient in loops).

    After any failure the socket is closed and a new one made, so a late reply can never be taken for the
    answer to a later request (request ids are checked too). `healthy` is True only after a reply came back.
    jpeg_quality (1–95) sends JPEG frames instead of raw pixels: lossy, but NaVILA's reference client does the same.
    `last` holds the latest query's round-trip time and bytes sent.
    """

    def __init__(
        self,
        endpoint: str,
        client_secret_file: str | os.PathLike,
        server_public_file: str | os.PathLike,
        timeout_s: float = 2.0,
        ctx: zmq.Context | None = None,
        jpeg_quality: int | None = None,
    ):
        if jpeg_quality is not None and not 1 <= jpeg_quality <= 95:
            raise ValueError(f"jpeg_quality {jpeg_quality}: expected 1–95")
        self.endpoint, self.timeout_s, self.jpeg_quality = endpoint, timeout_s, jpeg_quality
        self._public, self._secret = zmq.auth.load_certificate(client_secret_file)
        if self._secret is None:
            raise ValueError(f"{client_secret_file}: not a secret key file")
        self._server_public, _ = zmq.auth.load_certificate(server_public_file)
        self.ctx = ctx or zmq.Context.instance()
        self._ids = itertools.count(1)
        self._healthy = False
        self.last: QueryStats | None = None
        self.queries = self.failures = self.stale_replies = 0
        self.sock: Any = None
        self._mon: Any = None
        self._open()

    @property
    def healthy(self) -> bool:
        """The last query got a reply (False before the first and after any link failure)."""
        return self._healthy

    def _open(self) -> None:
        s = self.ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.curve_secretkey, s.curve_publickey, s.curve_serverkey = self._secret, self._public, self._server_public
        self._mon = s.get_monitor_socket(_MON_EVENTS)
        self._tcp = self._secure = self._rejected = self._unsecured = False
        s.connect(self.endpoint)
        self.sock = s

    def _close(self) -> None:
        if self.sock is not None:
            self.sock.disable_monitor()
            self._mon.close(linger=0)
            self.sock.close(linger=0)
            self.sock = self._mon = None

    def _events(self) -> bool:
        """Drain monitor events; True if an established connection was lost."""
        lost = False
        while self._mon.poll(0):
            ev = recv_monitor_message(self._mon)["event"]
            if ev == zmq.EVENT_CONNECTED:
                self._tcp = True
            elif ev == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._secure = True
            elif ev == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                self._rejected = True
            elif ev == zmq.EVENT_DISCONNECTED:
                lost |= self._secure
                self._unsecured |= self._tcp and not self._secure  # dropped during the handshake
                self._tcp = self._secure = False
        return lost

    def _why(self) -> str:
        if self._rejected:
            return "rejected by the server: this client's key is not authorised"
        if self._secure:
            return f"no reply within {self.timeout_s:.3g} s (server busy or link lost)"
        if self._unsecured or self._tcp:
            return "CURVE handshake did not complete (wrong server public key?)"
        return f"no server reachable at {self.endpoint} within {self.timeout_s:.3g} s"

    def _fail(self, why: str) -> VlmLinkError:
        self.failures += 1
        self._healthy = False
        self._close()
        self._open()
        return VlmLinkError(why)

    def query(self, instruction: str, frames: Sequence[VlmFrame], reset: bool = False) -> VlmAnswer:
        """Send frames (H×W×3 uint8) and wait up to timeout_s for the answer; raises VlmLinkError."""
        specs: list[FrameSpec] = []
        bufs: list[bytes | memoryview] = []
        for f in frames:
            rgb = np.ascontiguousarray(f.rgb)
            if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
                raise ValueError(f"frame {f.frame_id}: expected H×W×3 uint8, got {rgb.shape} {rgb.dtype}")
            h, w = rgb.shape[:2]
            if self.jpeg_quality is None:
                specs.append(FrameSpec(frame_id=f.frame_id, height=h, width=w))
                bufs.append(rgb.data.cast("B"))
            else:
                specs.append(FrameSpec(frame_id=f.frame_id, height=h, width=w, encoding="jpeg"))
                bufs.append(_encode_jpeg(rgb, self.jpeg_quality))
        rid = next(self._ids)
        header = (
            VlmRequest(request_id=rid, instruction=instruction, reset=reset, frames=specs).model_dump_json().encode()
        )
        self.queries += 1
        self._events()
        t0 = time.perf_counter()
        deadline = t0 + self.timeout_s
        self.sock.send_multipart([header, *bufs], copy=False)
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        poller.register(self._mon, zmq.POLLIN)
        while True:
            if self._events():
                raise self._fail("connection to the server lost")
            if self._rejected:
                raise self._fail(self._why())
            left = deadline - time.perf_counter()
            if left <= 0:
                raise self._fail(self._why())
            if self.sock not in dict(poller.poll(int(left * 1000))):
                continue
            raw = self.sock.recv()
            try:
                r = VlmReply.model_validate_json(raw)
            except ValueError as e:
                raise self._fail(f"unreadable reply: {str(e).splitlines()[0]}") from None
            if r.request_id != rid:
                self.stale_replies += 1  # cannot happen with a fresh socket per failure; checked anyway
                continue
            break
        rtt = time.perf_counter() - t0
        self._healthy = True  # the link works, even if the server refused this request
        self.last = QueryStats(rid, rtt, r.server_s, len(header) + sum(len(b) for b in bufs), len(raw))
        if not r.ok:
            self.failures += 1
            raise VlmServerError(r.error)
        return VlmAnswer(
            text=r.text,
            frame_ids=tuple(r.frame_ids),
            timings=VlmTimings(vision_s=r.vision_s, prefill_s=r.prefill_s, decode_s=r.decode_s, total_s=r.total_s),
            vision_calls=r.vision_calls,
            cache_hits=r.cache_hits,
            new_tokens=r.new_tokens,
        )

    def close(self) -> None:
        self._close()


class AsyncVlmClient:
    """A worker thread owns a VlmClient; `submit` and `poll` never block.

    One request is in flight at a time. Submitting while another waits to be sent replaces it (newest frames win);
    the replaced one comes back from `poll` as a VlmLinkError("superseded…"). Frames must not be modified after
    submit. Every submitted id comes back from `poll` exactly once.
    """

    def __init__(
        self,
        endpoint: str,
        client_secret_file: str | os.PathLike,
        server_public_file: str | os.PathLike,
        timeout_s: float = 2.0,
        jpeg_quality: int | None = None,
    ):
        self._client = VlmClient(
            endpoint, client_secret_file, server_public_file, timeout_s, ctx=zmq.Context(), jpeg_quality=jpeg_quality
        )
        self._cv = threading.Condition()
        self._pending: tuple | None = None
        self._results: collections.deque = collections.deque()
        self._ids = itertools.count(1)
        self._stop = False
        self.in_flight = False
        self._thread = threading.Thread(target=self._run, name="vlm-client", daemon=True)
        self._thread.start()

    @property
    def healthy(self) -> bool:
        return self._client.healthy

    @property
    def last(self) -> QueryStats | None:
        return self._client.last

    def submit(self, instruction: str, frames: Sequence[VlmFrame], reset: bool = False) -> int:
        rid = next(self._ids)
        with self._cv:
            if self._pending is not None:
                self._results.append((self._pending[0], VlmLinkError(f"superseded by request {rid}")))
            self._pending = (rid, instruction, tuple(frames), reset)
            self._cv.notify()
        return rid

    def poll(self) -> tuple[int, VlmAnswer | VlmLinkError] | None:
        try:
            return self._results.popleft()
        except IndexError:
            return None

    def _run(self) -> None:
        # The socket was made in __init__ and is used only by this thread from now on (handed over once).
        while True:
            with self._cv:
                while self._pending is None and not self._stop:
                    self._cv.wait()
                if self._stop:
                    break
                if self._pending is None:
                    continue
                (rid, instruction, frames, reset), self._pending = self._pending, None
                self.in_flight = True
            result: VlmAnswer | VlmLinkError
            try:
                result = self._client.query(instruction, frames, reset)
            except VlmLinkError as e:
                result = e
            except Exception as e:  # a bad frame: report it, keep the worker alive
                result = VlmLinkError(f"request {rid} not sent: {type(e).__name__}: {e}")
            self._results.append((rid, result))
            self.in_flight = False
        self._client.close()
        self._client.ctx.term()

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join(self._client.timeout_s + 2.0)


# ---- CLI ------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge.vlm.remote", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keys", help="write DIR/NAME.key and DIR/NAME.key_secret")
    k.add_argument("dir")
    k.add_argument("name")
    s = sub.add_parser("serve", help="serve a VLM to authorised robots")
    s.add_argument("--bind", default="tcp://0.0.0.0:5560")
    s.add_argument("--keys", required=True, help="directory with this server's NAME.key_secret")
    s.add_argument("--name", default="server", help="key name in --keys (default: server)")
    s.add_argument("--clients", required=True, help="directory of authorised clients' public *.key files")
    s.add_argument("--fixed", metavar="TEXT", help="answer TEXT to every query (smoke tests)")
    s.add_argument("--config", help="EdgeConfig YAML whose vlm section names the model to serve (NaVILA/StreamVLN)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s vlm-server %(levelname)s %(message)s")
    if args.cmd == "keys":
        for path in generate_keys(args.dir, args.name):
            print(path)
        return 0
    if (args.fixed is None) == (args.config is None):
        ap.error("serve: give exactly one model: --fixed TEXT or --config FILE")
    model: VisionLanguageModel
    if args.fixed is not None:
        model = FixedAnswerVlm([args.fixed])
    else:
        model = build_model(load_config(args.config).vlm)
    server = VlmServer(args.bind, model, os.path.join(args.keys, f"{args.name}.key_secret"), args.clients)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server.serve(stop)
    finally:
        server.close()
        log.info("served %d requests (%d malformed, %d failed)", server.requests, server.malformed, server.failed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
