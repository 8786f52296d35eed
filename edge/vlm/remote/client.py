"""The robot side of the remote VLM: VlmClient (blocking, one query at a time) and AsyncVlmClient (a worker thread owns
the socket; `submit` and `poll` never block, for robot loops).

Every request carries what is left of the robot's deadline, so the server drops work the robot has given up on.
A link error does not reset the robot's episode: the server keeps it under the robot's key, and a request lost with a
dropped connection is resent (same request id: the server answers it once) while the deadline allows. Errors say
what happened, from the socket monitor's events (docs/remote.md §2): the key refused, the handshake failed (wrong
server key), nothing listening, the server gone, or no reply in time.
"""

from __future__ import annotations

import collections
import errno
import itertools
import os
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence

import zmq
from zmq.utils.monitor import recv_monitor_message

from edge.common.config import RemoteConfig
from edge.vlm.remote.keys import load_public, load_secret
from edge.vlm.remote.protocol import (
    CURVE_OVERHEAD,
    MAX_BUDGET_MS,
    REFUSAL_MARGIN,
    BadReply,
    decode_reply,
    encode_request,
)
from engines.vlm.models import VlmAnswer, VlmFrame, VlmTimings


class VlmLinkError(RuntimeError):
    """No answer. Subclasses say why; VlmServerError means the link works but the server refused the request."""


class VlmTimeout(VlmLinkError):
    """Connected and authenticated, but no reply within the deadline (the server is busy or slow)."""


class VlmKeyRefused(VlmLinkError):
    """The server refused this robot's public key (not in its clients folder)."""


class VlmHandshakeFailed(VlmLinkError):
    """The CURVE handshake failed: wrong server public key, not an edge-vln server, or a hung server."""


class VlmUnreachable(VlmLinkError):
    """Nothing listening at the endpoint (server down, wrong address, network unreachable)."""


class VlmServerGone(VlmLinkError):
    """The connection worked, then dropped, and did not come back within the deadline."""


class VlmBadReply(VlmLinkError):
    """The server sent a reply the robot refuses (size, parts, types, non-finite numbers, answer length)."""


class VlmServerError(VlmLinkError):
    """The server answered with an error; `code` is the reply code (refused, busy, expired, superseded, revoked,
    model)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}" if not message.startswith(code) else message)
        self.code = code


@dataclass(frozen=True)
class QueryStats:
    request_id: int
    rtt_s: float  # send → reply received, as seen by the client (resends included)
    server_s: float  # of which on the server (queue + decode + model)
    queue_s: float  # of which waiting for the model (queue + batch fill)
    batch_size: int  # robots answered by the same model call
    bytes_sent: int  # application bytes of one send (CURVE adds 33 bytes)
    bytes_received: int
    resends: int  # times the request was resent after a dropped connection
    session_reset: bool  # the server started a new episode with this request


_MON_EVENTS = (
    zmq.EVENT_CONNECTED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)


class _Link:
    """What the socket monitor has said since the socket was opened (plus a loss that outlives a reopen)."""

    def __init__(self, lost_at: float | None = None):
        self.connected = self.secured = self.ever_connected = self.ever_secured = self.refused = False
        self.handshake_errno: int | None = None
        self.lost_at = lost_at  # monotonic time a working connection dropped; None once secured again
        self.losses = 0

    def on(self, event: int, value: int) -> None:
        if event == zmq.EVENT_CONNECTED:
            self.connected = self.ever_connected = True
        elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.secured = self.ever_secured = True
            self.lost_at, self.handshake_errno = None, None
        elif event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            self.refused = True
        elif event in (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL):
            self.handshake_errno = value
        elif event == zmq.EVENT_DISCONNECTED:
            if self.secured:
                self.losses += 1
                self.lost_at = time.monotonic()
            self.connected = self.secured = False


class VlmClient:
    """DEALER with CURVE client keys. Not thread-safe; `query` BLOCKS up to timeout_s (use AsyncVlmClient in loops).

    `limits` (config section `remote`) must match the server's: requests over them are refused here, before
    sending (VlmRequestError = protocol.RequestRefused, a ValueError), and replies over them are refused on arrival.
    jpeg_quality (1–95) sends JPEG frames instead of raw pixels (lossy; NaVILA's reference client does the same).
    `last` holds the latest answered query's statistics; `healthy` is True only after a reply came back.
    """

    def __init__(
        self,
        endpoint: str,
        client_secret_file: str | os.PathLike,
        server_public_file: str | os.PathLike,
        timeout_s: float = 2.0,
        ctx: zmq.Context | None = None,
        jpeg_quality: int | None = None,
        limits: RemoteConfig | None = None,
    ):
        if jpeg_quality is not None and not 1 <= jpeg_quality <= 95:
            raise ValueError(f"jpeg_quality {jpeg_quality}: expected 1–95")
        if not 0 < timeout_s <= MAX_BUDGET_MS / 1000:
            raise ValueError(f"timeout_s {timeout_s}: expected (0, {MAX_BUDGET_MS / 1000:.0f}] s")
        self.endpoint, self.timeout_s, self.jpeg_quality = endpoint, timeout_s, jpeg_quality
        self.limits = limits or RemoteConfig()
        self._public, self._secret = load_secret(client_secret_file)
        self._server_public = load_public(server_public_file)
        self.ctx = ctx or zmq.Context.instance()
        self._ids = itertools.count(secrets.randbelow(2**62))  # a restarted robot never reuses a recent id
        self._healthy = False
        self.last: QueryStats | None = None
        self.queries = self.failures = self.stale_replies = self.resends = 0
        self.sock: Any = None
        self._mon: Any = None
        self._link = _Link()
        self._open()

    @property
    def healthy(self) -> bool:
        """The last query got a reply (False before the first and after any link failure)."""
        return self._healthy

    def _open(self) -> None:
        lim = self.limits
        s = self.ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.MAXMSGSIZE, lim.max_reply_bytes + CURVE_OVERHEAD + REFUSAL_MARGIN)
        s.setsockopt(zmq.RCVHWM, 4)
        s.setsockopt(zmq.HEARTBEAT_IVL, int(lim.heartbeat_s * 1000))
        s.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(lim.heartbeat_timeout_s * 1000))
        s.setsockopt(zmq.HANDSHAKE_IVL, int(lim.handshake_timeout_s * 1000))
        s.curve_secretkey, s.curve_publickey, s.curve_serverkey = self._secret, self._public, self._server_public
        self._mon = s.get_monitor_socket(_MON_EVENTS)
        self._link = _Link(self._link.lost_at)
        s.connect(self.endpoint)
        self.sock = s

    def _close(self) -> None:
        if self.sock is not None:
            self.sock.disable_monitor()
            self._mon.close(linger=0)
            self.sock.close(linger=0)
            self.sock = self._mon = None

    def _reopen(self) -> None:
        self._close()
        self._open()

    def _events(self) -> None:
        while self._mon.poll(0):
            ev = recv_monitor_message(self._mon)
            self._link.on(ev["event"], ev["value"])

    def _why(self) -> VlmLinkError:
        link, t = self._link, f"{self.timeout_s:.3g} s"
        if link.refused:
            return VlmKeyRefused(
                f"key refused by the server at {self.endpoint}: this robot's public key is not in its clients folder"
            )
        if link.secured:
            return VlmTimeout(f"timeout: no reply within {t} (connected; the server is busy or slow)")
        if link.lost_at is not None:
            return VlmServerGone(
                f"server gone: the connection to {self.endpoint} dropped "
                f"{time.monotonic() - link.lost_at:.1f} s ago and is not back"
            )
        if link.handshake_errno == errno.EAGAIN or (link.ever_connected and link.handshake_errno is None):
            return VlmHandshakeFailed(
                f"server not responding: connected to {self.endpoint} but the CURVE handshake "
                f"did not finish within {t} (server hung?)"
            )
        if link.handshake_errno is not None:
            return VlmHandshakeFailed(
                f"CURVE handshake failed at {self.endpoint}: wrong server public key, or not an edge-vln server"
            )
        return VlmUnreachable(f"nothing listening at {self.endpoint} (server down or unreachable) within {t}")

    def _fail(self, e: VlmLinkError) -> VlmLinkError:
        self.failures += 1
        self._healthy = False
        self._close()  # a refused socket never retries, and a late reply must never answer a later request:
        return e  # the next query opens a fresh socket

    def _send(self, payload: bytes, deadline: float) -> None:
        """Queue the request without blocking. A DEALER has nowhere to queue once its connection was refused
        (libzmq ends that session for good), so a send that cannot be queued is retried until the deadline."""
        while True:
            try:
                self.sock.send(payload, flags=zmq.NOBLOCK, copy=False)
                return
            except zmq.Again:
                self._events()
                if self._link.refused or time.monotonic() >= deadline:
                    raise self._fail(self._why()) from None
                self._mon.poll(10)

    def query(self, instruction: str, frames: Sequence[VlmFrame], reset: bool = False) -> VlmAnswer:
        """Send frames (H×W×3 uint8) and wait up to timeout_s for the answer. Raises protocol.RequestRefused /
        ValueError (nothing sent: over a limit, or not a frame), or a VlmLinkError subclass."""
        rid = next(self._ids)
        t0 = time.monotonic()
        deadline = t0 + self.timeout_s

        def encode() -> bytes:
            budget = max(1, min(MAX_BUDGET_MS, int((deadline - time.monotonic()) * 1000)))
            return encode_request(
                rid, instruction, frames, budget, self.limits, reset=reset, jpeg_quality=self.jpeg_quality
            )

        payload = encode()  # raises before anything is sent
        self.queries += 1
        if self.sock is None:
            self._open()
        self._events()
        losses = self._link.losses
        self._send(payload, deadline)
        resends = 0
        while True:
            self._events()
            if self._link.refused:
                raise self._fail(self._why())
            if self._link.losses > losses and deadline - time.monotonic() > 0.05:
                self._reopen()  # the request may have gone with the connection: resend it (same id)
                payload = encode()
                losses = self._link.losses
                self._send(payload, deadline)
                resends += 1
                self.resends += 1
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._fail(self._why())
            poller = zmq.Poller()
            poller.register(self.sock, zmq.POLLIN)
            poller.register(self._mon, zmq.POLLIN)
            if self.sock not in dict(poller.poll(max(1, int(left * 1000)))):
                continue
            parts = self.sock.recv_multipart()
            try:
                r = decode_reply(parts, self.limits)
            except BadReply as e:
                raise self._fail(VlmBadReply(f"bad reply from {self.endpoint}: {e}")) from None
            if r.request_id != rid and not (r.request_id == -1 and not r.ok):  # −1: the server could not read it
                self.stale_replies += 1  # a reply to an earlier request (cannot happen after a reopen)
                continue
            break
        self._healthy = True  # the link works, even if the server refused this request
        self.last = QueryStats(
            rid,
            time.monotonic() - t0,
            r.server_s,
            r.queue_s,
            r.batch_size,
            len(payload),
            sum(len(p) for p in parts),
            resends,
            r.session_reset,
        )
        if not r.ok:
            self.failures += 1
            raise VlmServerError(r.code, r.error)
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
        limits: RemoteConfig | None = None,
    ):
        self._client = VlmClient(
            endpoint,
            client_secret_file,
            server_public_file,
            timeout_s,
            ctx=zmq.Context(),
            jpeg_quality=jpeg_quality,
            limits=limits,
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
            except Exception as e:  # over a limit, or a bad frame: report it, keep the worker alive
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
