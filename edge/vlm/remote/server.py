"""The GPU-side VLM server: many robots, one model, each robot's episode kept apart.

Threads: the I/O loop (`serve`) owns the ZeroMQ sockets — it authenticates, checks every limit (protocol.parse_request)
and queues work; one worker thread owns the model — it forms batches, drops work whose deadline has passed, decodes
frames, runs the model and hands replies back to the I/O loop (inproc wake-up).

Sessions: every piece of per-robot state (the model session: instruction, vision-feature cache, history, KV cache;
the pending request; the last reply) is keyed by the robot's authenticated CURVE public key, as the ZAP handler
reported it for that very message (ZMQ "User-Id" property), never by anything the robot claims. The routing id
changes on every reconnect, the key does not, so a robot keeps its episode across link errors.

Scheduling: at most one request per robot waits (a newer one supersedes it: the robot gave up on the old one) and
one runs. Batches take the oldest waiting request of up to `batch_max` robots (fair: one per robot per batch). For a
model that batches (NaVILA on transformers) the worker waits up to `batch_wait_ms` (or `batch_wait_share` of the last
model call, if longer) for the robots expected back (those the previous batch answered), `lone_wait_ms` for a lone
request (LightNav-0's defaults, 8 and 2 ms; docs/serving.md).
Other models run one robot at a time. Work whose deadline has passed is dropped when its batch forms.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import recv_monitor_message

from edge.common.config import RemoteConfig
from edge.common.ratelimit import LogLimiter
from edge.vlm.remote.keys import ClientKeys, load_secret
from edge.vlm.remote.protocol import (
    CURVE_OVERHEAD,
    REFUSAL_MARGIN,
    ParsedRequest,
    Reply,
    ReplyCode,
    RequestRefused,
    decode_frames,
    encode_reply,
    parse_request,
)
from engines.vlm.models import VisionLanguageModel, VlmAnswer, batchable, infer_batch

log = logging.getLogger("edge.vlm.remote")
ZAP_DOMAIN = b"edge-vln"
RCVHWM = 4  # whole requests queued per connection in libzmq (per-connection memory ≲ (RCVHWM + 1) × MAXMSGSIZE)
_CONN_EVENTS = zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_FAILED_AUTH


@dataclass(eq=False)
class Job:
    session: Session
    req: ParsedRequest
    route: tuple[int, bytes]  # (socket index, routing id); a resend of the same request id moves it
    arrival: float  # time.monotonic()
    deadline: float

    @property
    def request_id(self) -> int:
        return self.req.header.request_id


@dataclass(eq=False)
class Session:
    key: str  # z85 CURVE public key (the ZAP User-Id)
    name: str  # the robot's key file name, for logs
    last_seen: float
    model: VisionLanguageModel | None = None  # made by the worker on first use
    instruction: str | None = None  # the episode's instruction; None: reset before the next request
    pending: Job | None = None
    running: Job | None = None
    last_reply: tuple[int, bytes] | None = None  # answers a resend of the last request without running it again
    requests: int = 0
    answered: int = 0

    @property
    def busy(self) -> bool:
        return self.pending is not None or self.running is not None


@dataclass
class Counters:
    requests: int = 0  # messages received
    answered: int = 0
    refused: int = 0  # broke a limit or malformed
    failed: int = 0  # the model raised
    expired: int = 0  # deadline passed before the work started
    superseded: int = 0
    resent: int = 0  # a resend answered from the last reply, or re-routed to the running job
    busy: int = 0  # no session slot
    revoked: int = 0
    undeliverable: int = 0  # the robot's connection was gone when its reply was ready
    batch_sizes: collections.Counter = field(default_factory=collections.Counter)


class _Authenticator(ThreadAuthenticator):
    """pyzmq's ZAP thread, telling the credentials provider the peer address of each handshake (for its logs)."""

    def __init__(self, ctx: zmq.Context, keys: ClientKeys):
        super().__init__(ctx)
        self.keys = keys

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        if len(msg) > 3:
            self.keys.address = msg[3].decode("utf-8", "replace") or "?"
        await super().handle_zap_message(msg)


class VlmServer:
    """ROUTER sockets with CURVE server keys (the current key on `bind`, optionally a rotated-out previous key on
    `previous_bind`); robots are authorised by their public key files in `authorized_clients_dir` (re-read when it
    changes), or any key with allow_any_key (loud). `endpoint` is the bound address of `bind` (tcp://…:port)."""

    def __init__(
        self,
        bind: str,
        vlm: VisionLanguageModel,
        server_secret_file: str | os.PathLike,
        authorized_clients_dir: str | os.PathLike | None,
        *,
        limits: RemoteConfig | None = None,
        previous: tuple[str, str | os.PathLike] | None = None,
        allow_any_key: bool = False,
    ):
        self.vlm = vlm
        self.limits = limits or RemoteConfig()
        lim = self.limits
        keys = [(bind, load_secret(server_secret_file))]
        if previous is not None:
            keys.append((previous[0], load_secret(previous[1])))
        self.keys = ClientKeys(authorized_clients_dir, allow_any=allow_any_key, warn_every_s=lim.warn_every_s)
        self.limiter = LogLimiter(lim.warn_every_s)
        self.batchable = batchable(vlm)
        self.stats = Counters()
        self.ctx = zmq.Context()  # own context: one ZAP handler per context
        self.auth = _Authenticator(self.ctx, self.keys)
        self.auth.start()
        self.auth.configure_curve_callback(domain=ZAP_DOMAIN.decode(), credentials_provider=self.keys)
        self.socks: list[zmq.Socket] = []
        self._mons: list[zmq.Socket] = []
        self.endpoints: list[str] = []
        for address, (public, secret) in keys:
            s = self.ctx.socket(zmq.ROUTER)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.MAXMSGSIZE, lim.max_request_bytes + CURVE_OVERHEAD + REFUSAL_MARGIN)
            s.setsockopt(zmq.RCVHWM, RCVHWM)
            s.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a reply to a vanished robot raises EHOSTUNREACH: counted
            s.setsockopt(zmq.HEARTBEAT_IVL, int(lim.heartbeat_s * 1000))
            s.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(lim.heartbeat_timeout_s * 1000))
            s.setsockopt(zmq.HEARTBEAT_TTL, max(100, int(lim.heartbeat_timeout_s * 1000)))
            s.setsockopt(zmq.HANDSHAKE_IVL, int(lim.handshake_timeout_s * 1000))
            s.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN)
            s.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)  # no ZAP handler → refuse everyone (libzmq fails open otherwise)
            s.curve_secretkey, s.curve_publickey, s.curve_server = secret, public, True
            self._mons.append(s.get_monitor_socket(_CONN_EVENTS))
            s.bind(address)
            self.socks.append(s)
            self.endpoints.append(s.getsockopt_string(zmq.LAST_ENDPOINT))
        self.endpoint = self.endpoints[0]
        self._conns: set[tuple[int, int]] = set()  # (socket index, fd) of open connections
        self._sessions: dict[str, Session] = {}
        self._cv = threading.Condition()
        self._stopping = False
        self._outbox: collections.deque[tuple[tuple[int, bytes], bytes]] = collections.deque()
        self._wake_addr = f"inproc://vlm-server-wake-{id(self)}"
        self._wake = self.ctx.socket(zmq.PULL)
        self._wake.bind(self._wake_addr)
        self._worker: threading.Thread | None = None
        self._next_housekeeping = 0.0
        self._last_batch: set[str] = set()  # robots answered by the previous batch
        self._last_batch_end = 0.0
        self._last_model_s = 0.0  # the previous batch's model time

    # ---- state for tests and logs -------------------------------------------------------------------------------
    @property
    def connections(self) -> int:
        """Open connections on all sockets (from the socket monitors; updated by the serve loop)."""
        return len(self._conns)

    def sessions(self) -> dict[str, str]:
        """robot name → its key, for every robot with state on the server."""
        with self._cv:
            return {s.name: s.key for s in self._sessions.values()}

    # Compatibility with the single-robot server's counters.
    @property
    def requests(self) -> int:
        return self.stats.requests

    @property
    def answered(self) -> int:
        return self.stats.answered

    @property
    def malformed(self) -> int:
        return self.stats.refused

    @property
    def failed(self) -> int:
        return self.stats.failed

    # ---- I/O loop -------------------------------------------------------------------------------------------------
    def serve(self, stop: threading.Event, poll_s: float = 0.1) -> None:
        """Serve until `stop` is set (then stops the worker). Logs 'serving … on ENDPOINT' once ready."""
        self._worker = threading.Thread(target=self._work, name="vlm-worker", daemon=True)
        self._worker.start()
        poller = zmq.Poller()
        for s in (*self.socks, *self._mons, self._wake):
            poller.register(s, zmq.POLLIN)
        n_keys = len(self.keys.keys.names)
        who = "ANY key" if self.keys.allow_any else f"{n_keys} robot key(s) from {self.keys.folder}"
        if not self.keys.allow_any and n_keys == 0:
            log.warning(
                "no robot key in %s yet: every robot is refused until one is added (re-read every %.0f s)",
                self.keys.folder,
                self.limits.key_reload_s,
            )
        if len(self.endpoints) > 1:
            log.info("previous server key still served on %s (rotation in progress)", self.endpoints[1])
        log.info("serving %s to %s on %s", getattr(self.vlm, "family", type(self.vlm).__name__), who, self.endpoint)
        try:
            while not stop.is_set():
                ready = dict(poller.poll(int(poll_s * 1000)))
                for i, s in enumerate(self.socks):
                    for _ in range(64):  # bounded per wake-up: replies and housekeeping are not starved
                        if not (ready.get(s) or s.poll(0)):
                            break
                        ready.pop(s, None)
                        self._on_message(i, s.recv_multipart(copy=False))
                for i, m in enumerate(self._mons):
                    while m.poll(0):
                        self._on_event(i, recv_monitor_message(m))
                while self._wake.poll(0):
                    self._wake.recv()
                self._flush()
                self._housekeeping()
        finally:
            with self._cv:
                self._stopping = True
                self._cv.notify_all()
            if self._worker is not None:
                self._worker.join(30)

    def _on_event(self, i: int, ev: Any) -> None:
        e, fd = ev["event"], ev["value"]
        if e == zmq.EVENT_ACCEPTED:
            self._conns.add((i, fd))
        elif e == zmq.EVENT_DISCONNECTED:
            self._conns.discard((i, fd))

    def _send(self, route: tuple[int, bytes], body: bytes) -> None:
        i, rid = route
        try:
            self.socks[i].send_multipart([rid, body], flags=zmq.NOBLOCK)
        except zmq.ZMQError as e:  # EHOSTUNREACH: the robot's connection is gone; EAGAIN: it is not reading
            self.stats.undeliverable += 1
            log.debug("reply not delivered: %s", e)

    def _flush(self) -> None:
        while self._outbox:
            self._send(*self._outbox.popleft())

    def _error(self, route: tuple[int, bytes], request_id: int, code: ReplyCode, error: str, t0: float) -> bytes:
        body = encode_reply(
            Reply(request_id=request_id, ok=False, code=code, error=error[:1000], server_s=time.monotonic() - t0)
        )
        self._send(route, body)
        return body

    def _on_message(self, i: int, parts: Sequence[zmq.Frame]) -> None:
        t0 = time.monotonic()
        self.stats.requests += 1
        route = (i, parts[0].bytes)
        try:
            key = str(parts[0].get("User-Id"))  # set by our ZAP handler for this connection
        except zmq.ZMQError:  # no ZAP result: cannot happen with ZAP_ENFORCE_DOMAIN; never serve it
            self.limiter.warning(log, "no-user-id", "message without an authenticated key dropped")
            return
        name = self.keys.name(key.encode("ascii", "replace"))
        if name is None:
            self.stats.revoked += 1
            self._drop_session(key)
            self.limiter.warning(
                log, ("revoked", key), "request from key %s refused: no longer in %s", key, self.keys.folder
            )
            self._error(route, -1, "revoked", "this robot's key was removed from the server's clients folder", t0)
            return
        if len(parts) != 2:
            self.stats.refused += 1
            self.limiter.warning(log, (key, "parts"), "robot %s: request in %d parts refused", name, len(parts) - 1)
            self._error(route, -1, "refused", f"request in {len(parts) - 1} parts; the protocol takes one", t0)
            return
        try:
            req = parse_request(parts[1].buffer, self.limits)
        except RequestRefused as e:
            self.stats.refused += 1
            self.limiter.warning(log, (key, "refused"), "robot %s: request refused: %s", name, e)
            self._error(route, e.request_id, "refused", f"refused: {e}", t0)
            return
        rid = req.header.request_id
        with self._cv:
            s = self._sessions.get(key)
            if s is None:
                s = self._new_session(key, name, t0)
                if s is None:
                    self.stats.busy += 1
                    self.limiter.warning(
                        log,
                        "full",
                        "robot %s refused: %d robots have sessions (remote.max_sessions)",
                        name,
                        len(self._sessions),
                    )
                    self._error(
                        route,
                        rid,
                        "busy",
                        f"server full: {len(self._sessions)} robots have sessions (remote.max_sessions)",
                        t0,
                    )
                    return
            s.last_seen = t0
            for job in (s.running, s.pending):
                if job is not None and job.request_id == rid:  # a resend after a link error: answer it once
                    job.route = route
                    self.stats.resent += 1
                    return
            if s.last_reply is not None and s.last_reply[0] == rid:
                self.stats.resent += 1
                self._send(route, s.last_reply[1])
                return
            if s.pending is not None:
                old = s.pending
                self.stats.superseded += 1
                self._error(old.route, old.request_id, "superseded", f"superseded by request {rid}", old.arrival)
            s.requests += 1
            s.pending = Job(s, req, route, t0, t0 + req.header.budget_ms / 1000)
            self._cv.notify_all()

    def _new_session(self, key: str, name: str, now: float) -> Session | None:
        """Under the lock. Evicts the longest-idle session without work if the table is full; None if none can go."""
        if len(self._sessions) >= self.limits.max_sessions:
            idle = [s for s in self._sessions.values() if not s.busy]
            if not idle:
                return None
            victim = min(idle, key=lambda s: s.last_seen)
            del self._sessions[victim.key]
            log.info("robot %s: session dropped to make room (idle %.0f s)", victim.name, now - victim.last_seen)
        s = Session(key, name, now)
        self._sessions[key] = s
        log.info("robot %s: new session (%d robots)", name, len(self._sessions))
        return s

    def _drop_session(self, key: str) -> None:
        with self._cv:
            s = self._sessions.get(key)
            if s is not None and not s.busy:
                del self._sessions[key]

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now < self._next_housekeeping:
            return
        self._next_housekeeping = now + self.limits.key_reload_s
        if self.keys.refresh() and not self.keys.allow_any:
            with self._cv:
                gone = [k for k in self._sessions if self.keys.name(k.encode("ascii", "replace")) is None]
            for k in gone:
                self._drop_session(k)
        with self._cv:
            for s in list(self._sessions.values()):
                if not s.busy and now - s.last_seen > self.limits.session_idle_s:
                    del self._sessions[s.key]
                    log.info("robot %s: idle for %.0f s, session dropped", s.name, now - s.last_seen)

    # ---- worker -------------------------------------------------------------------------------------------------
    def _next_batch(self) -> list[Job] | None:
        """The next batch: the oldest waiting request of up to `take` robots. Filling waits (batchable models only)
        from the later of the oldest request's arrival and the end of the previous batch, for the robots expected
        back: those waiting plus those answered by the previous batch (in a busy fleet they ask again at once), up
        to batch_wait_ms or batch_wait_share of the previous model call, whichever is longer (waiting a tenth of a
        call costs the waiting robot at most that, and saves a whole call for each robot that joins); a lone request
        with no robot expected back waits lone_wait_ms."""
        with self._cv:
            while not self._stopping and not any(s.pending for s in self._sessions.values()):
                self._cv.wait()
            if self._stopping:
                return None
            take = self.limits.batch_max if self.batchable else 1
            while take > 1 and not self._stopping:
                waiting = {k for k, s in self._sessions.items() if s.pending}
                expected = len(waiting | (self._last_batch & self._sessions.keys()))
                n = len(waiting)
                if n >= take or (1 < expected <= n):
                    break
                start = max(self._last_batch_end, min(self._sessions[k].pending.arrival for k in waiting))  # type: ignore[union-attr]
                lim = self.limits
                fill_ms = max(lim.batch_wait_ms, lim.batch_wait_share * self._last_model_s * 1e3)
                wait_ms = lim.lone_wait_ms if expected == 1 else fill_ms
                left = start + wait_ms / 1000 - time.monotonic()
                if left <= 0:
                    break
                self._cv.wait(left)
            ready = sorted((s for s in self._sessions.values() if s.pending), key=lambda s: s.pending.arrival)  # type: ignore[union-attr]
            jobs = []
            for s in ready[:take]:
                s.running, s.pending = s.pending, None
                jobs.append(s.running)
            self._last_batch = {s.key for s in ready[:take]}
            return jobs  # type: ignore[return-value]

    def _work(self) -> None:
        push = self.ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        push.connect(self._wake_addr)
        self._push = push
        try:
            while True:
                jobs = self._next_batch()
                if jobs is None:
                    break
                try:
                    self._run(jobs)
                except Exception:  # a bug here must not stop the server: every job still gets an answer
                    log.exception("batch failed")
                    for job in jobs:
                        if job.session.running is job:
                            self._finish(job, self._error_body(job, "model", "internal server error"))
        finally:
            push.close(0)

    def _error_body(self, job: Job, code: ReplyCode, error: str) -> bytes:
        return encode_reply(
            Reply(
                request_id=job.request_id,
                ok=False,
                code=code,
                error=error[:1000],
                server_s=time.monotonic() - job.arrival,
            )
        )

    def _finish(self, job: Job, body: bytes) -> None:
        with self._cv:
            s = job.session
            if s.running is job:
                s.running = None
            s.last_reply = (job.request_id, body)
            self._outbox.append((job.route, body))
        self._push.send(b"")

    def _run(self, jobs: list[Job]) -> None:
        now = time.monotonic()
        live: list[tuple[Job, list, bool]] = []
        for job in jobs:
            h, s = job.req.header, job.session
            if now > job.deadline:
                self.stats.expired += 1
                waited = (now - job.arrival) * 1e3
                self._finish(
                    job,
                    self._error_body(
                        job,
                        "expired",
                        f"expired: the robot's budget of {h.budget_ms} ms ran out after {waited:.0f} ms "
                        "in the queue; not run",
                    ),
                )
                continue
            try:
                frames = decode_frames(job.req)
            except RequestRefused as e:
                self.stats.refused += 1
                self.limiter.warning(log, (s.key, "refused"), "robot %s: request refused: %s", s.name, e)
                self._finish(job, self._error_body(job, "refused", f"refused: {e}"))
                continue
            reset = False
            try:
                if s.model is None:
                    s.model = self.vlm.new_session()
                if h.reset or s.instruction != h.instruction:
                    s.model.reset(h.instruction)
                    s.instruction, reset = h.instruction, True
            except Exception as e:
                self._model_failed(job, e)
                continue
            live.append((job, frames, reset))
        if not live:
            return
        self.stats.batch_sizes[len(live)] += 1
        t_model = time.monotonic()
        try:
            results = infer_batch([(job.session.model, frames) for job, frames, _ in live])  # type: ignore[misc]
        finally:
            with self._cv:
                self._last_batch_end = time.monotonic()
                self._last_model_s = self._last_batch_end - t_model
        for (job, _, reset), r in zip(live, results):
            if isinstance(r, Exception):
                self._model_failed(job, r)
            elif len(r.text) > self.limits.max_answer_chars:
                self._model_failed(
                    job,
                    ValueError(
                        f"answer of {len(r.text)} chars > remote.max_answer_chars {self.limits.max_answer_chars}"
                    ),
                )
            else:
                self.stats.answered += 1
                job.session.answered += 1
                self._finish(job, self._ok_body(job, r, reset, t_model, len(live)))

    def _model_failed(self, job: Job, e: Exception) -> None:
        self.stats.failed += 1
        job.session.instruction = None  # the session may be half-updated: reset before its next request
        self.limiter.warning(
            log,
            (job.session.key, "model"),
            "robot %s: request %d: model failed: %s: %s",
            job.session.name,
            job.request_id,
            type(e).__name__,
            e,
        )
        self._finish(job, self._error_body(job, "model", f"model: {type(e).__name__}: {e}"))

    def _ok_body(self, job: Job, a: VlmAnswer, reset: bool, t_model: float, batch: int) -> bytes:
        t = a.timings
        return encode_reply(
            Reply(
                request_id=job.request_id,
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
                server_s=time.monotonic() - job.arrival,
                queue_s=max(0.0, t_model - job.arrival),
                batch_size=batch,
                session_reset=reset,
            )
        )

    def close(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        if self._worker is not None and self._worker.is_alive():
            self._worker.join(30)
        for s in self.socks:
            s.disable_monitor()
        for m in self._mons:
            m.close(0)
        for s in self.socks:
            s.close(0)
        self._wake.close(0)
        self.auth.stop()
        self.ctx.term()


def server_key_files(keys_dir: str | os.PathLike, name: str) -> tuple[Path, Path | None]:
    """(current secret file, previous secret file or None) in a server's key folder (see keys.write_keypair)."""
    d = Path(keys_dir)
    previous = d / f"{name}.previous.key_secret"
    return d / f"{name}.key_secret", previous if previous.exists() else None
