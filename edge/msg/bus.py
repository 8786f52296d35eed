"""ZeroMQ pub/sub for the topics in edge.msg.messages.TOPICS.

Wire format (edge.msg.wire), one single-part ZeroMQ message per bus message:
    u32 little-endian header length | header (UTF-8 JSON) | raw payload bytes (camera pixels; empty otherwise)
The header is {"topic", "seq", "mono_ns", "msg"}; mono_ns is the sender's time.monotonic_ns() (CLOCK_MONOTONIC is
system-wide, so ages are exact between processes of one machine). No pickle, no base64.

Endpoints derive from the topic name: ipc://<run_dir>/<topic> unless the config gives a tcp:// endpoint. Socket files
are mode 0660 and a run directory the bus creates 0750: only the user and the group of the stack reach them.
The socket pattern comes from the topic registry (Topic.pattern): streams are PUB/SUB, event topics with one consumer
and several, possibly short-lived, senders (operator commands, e-stop, the VLM's answers) PUSH/PULL.
Latest-only topics are conflated at the subscriber; a malformed or foreign message is counted, logged and dropped.
A per-process topic (processState) has one endpoint per publishing process, ipc://<run_dir>/<topic>.<process>; its
subscribers connect to every process they name (ZeroMQ connects to a socket that does not exist yet and retries).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import zmq
from pydantic import ValidationError

from edge.msg.messages import TOPICS, Msg, Topic
from edge.msg.wire import LEN as _LEN
from edge.msg.wire import endpoint, frame

log = logging.getLogger(__name__)
MAX_HEADER_BYTES = 1 << 20
# Who may use the bus: the user and group the processes run as (on the robot: edge, and operators in group edge).
# Connecting to a Unix socket needs write permission on its file; the run directory is created without access for
# others (on the robot systemd creates /run/edge with RuntimeDirectoryMode=0750).
SOCKET_MODE = 0o660
RUN_DIR_MODE = 0o750
QUEUED_HWM = 10000  # messages a queued (not conflated) subscriber holds before the publisher drops for it
QUEUED_PAYLOAD_HWM = 16
# Frames a real-time loop (control, simulator, navigator) takes off one queued socket per call, valid or not: a
# malformed one costs ≈ 5–6 µs to refuse here (10,000 held a control tick 50–65 ms: docs/results.md, fault suite), so
# 256 bound a tick's cost to ≈ 1.5 ms per socket, and a 10,000-message flood is worked off in ≈ 40 calls.
RT_READ_BUDGET = 256


class BusError(ValueError):
    """A message that cannot be decoded; carries a reason for the log."""


def session_id(name: str) -> str:
    """A sender id unique on this machine and across restarts: name-pid-random ("operator-5120-07bc"). Sentences are
    named (sender, counter), so two senders, or one restarted, never share an id."""
    return f"{name}-{os.getpid()}-{secrets.token_hex(2)}"


def encode(topic: Topic, seq: int, mono_ns: int, msg: Msg, payload: bytes | memoryview = b"") -> bytes:
    if type(msg) is not topic.schema:
        raise TypeError(f"{topic.name} carries {topic.schema.__name__}, not {type(msg).__name__}")
    if topic.payload and len(payload) != msg.payload_size():
        raise ValueError(f"{topic.name}: payload is {len(payload)} bytes, header says {msg.payload_size()}")
    if payload and not topic.payload:
        raise ValueError(f"{topic.name} has no payload")
    return frame(topic.name, seq, mono_ns, msg.model_dump_json().encode(), payload)


@dataclass(frozen=True)
class Received:
    msg: Any  # an instance of the topic's schema (TOPICS[name].schema)
    seq: int
    mono_ns: int  # the sender's monotonic time (same machine), or our receive time (tcp)
    payload: memoryview | None = None

    def age_s(self, now_ns: int | None = None) -> float:
        return ((time.monotonic_ns() if now_ns is None else now_ns) - self.mono_ns) * 1e-9


def decode(topic: Topic, raw: bytes | memoryview, local_clock: bool = False) -> Received:
    """local_clock: stamp with our receive time instead of the sender's (another machine's monotonic clock is
    unrelated to ours, so ages across tcp links are measured from arrival: an upper bound on freshness)."""
    view = memoryview(raw)
    if len(view) < _LEN.size:
        raise BusError(f"truncated: {len(view)} bytes")
    (n,) = _LEN.unpack_from(view)
    if n > MAX_HEADER_BYTES or _LEN.size + n > len(view):
        raise BusError(f"header length {n} does not fit a {len(view)}-byte message")
    try:
        head = json.loads(bytes(view[_LEN.size : _LEN.size + n]))
        name, seq, mono_ns, body = head["topic"], head["seq"], head["mono_ns"], head["msg"]
    except (ValueError, KeyError, TypeError, RecursionError) as e:
        raise BusError(f"bad header: {type(e).__name__}: {e}") from None
    if type(seq) is not int or type(mono_ns) is not int:
        raise BusError(f"bad header: seq {seq!r} / mono_ns {mono_ns!r} are not integers")
    if name != topic.name:
        raise BusError(f"message for {name!r} on {topic.name!r}")
    try:
        msg = topic.schema.model_validate(body)
    except ValidationError as e:
        errs = e.errors()
        what = "; ".join(f"{'.'.join(map(str, x['loc'])) or '(message)'}: {x['msg']}" for x in errs[:3])
        raise BusError(f"schema {topic.schema.__name__}: {what}" + (" …" if len(errs) > 3 else "")) from None
    except (ValueError, TypeError, RecursionError) as e:
        raise BusError(f"schema {topic.schema.__name__}: {str(e).splitlines()[0]}") from None
    if local_clock:
        mono_ns = time.monotonic_ns()
    payload = view[_LEN.size + n :]
    if topic.payload:
        if len(payload) != msg.payload_size():
            raise BusError(f"payload {len(payload)} bytes, header says {msg.payload_size()}")
        return Received(msg, seq, mono_ns, payload)
    if len(payload):
        raise BusError(f"{len(payload)} unexpected trailing bytes")
    return Received(msg, seq, mono_ns)


@dataclass
class Bus:
    """Endpoint resolution and socket factory for one process."""

    run_dir: str
    tcp: dict[str, str] = field(default_factory=dict)
    ctx: zmq.Context = field(default_factory=zmq.Context.instance)

    def __post_init__(self):
        unknown = {k for k in self.tcp if k.partition(".")[0] not in TOPICS}
        if unknown:
            raise ValueError(f"tcp endpoints for unknown topics: {sorted(unknown)}")
        os.makedirs(self.run_dir, mode=RUN_DIR_MODE, exist_ok=True)

    def endpoint(self, name: str, process: str = "") -> str:
        """process: the publishing process, for a per-process topic (tcp key "<topic>.<process>")."""
        if name not in TOPICS:
            raise KeyError(f"unknown topic {name!r}; known: {sorted(TOPICS)}")
        if TOPICS[name].per_process != bool(process):
            raise ValueError(f"{name}: {'name the process' if TOPICS[name].per_process else 'not per process'}")
        return endpoint(self.run_dir, self.tcp, f"{name}.{process}" if process else name)

    def pub(self, name: str, process: str = "") -> Pub:
        return Pub(self, TOPICS[name], process)

    def sub(self, name: str, conflate: bool | None = None, processes: Iterable[str] = ()) -> Sub:
        """processes: for a per-process topic, whose streams to receive (one socket connected to each)."""
        topic = TOPICS[name]
        return Sub(self, topic, topic.latest_only if conflate is None else conflate, tuple(processes))

    def open(self, pubs: Iterable[str], subs: Iterable[str], conflate: bool | None = None) -> Ports:
        """The sockets of one process, all at once (edge.system.process_main opens a process's table row)."""
        return Ports(pub={n: self.pub(n) for n in pubs}, sub={n: self.sub(n, conflate) for n in subs})


def _attach(sock: zmq.Socket, endpoint: str, bind: bool) -> None:
    if bind:
        if endpoint.startswith("ipc://") and os.path.exists(endpoint[6:]):
            os.unlink(endpoint[6:])  # a stale socket file from a crashed process
        sock.bind(endpoint)
        if endpoint.startswith("ipc://"):
            os.chmod(endpoint[6:], SOCKET_MODE)
    else:
        sock.connect(endpoint)


class Pub:
    def __init__(self, bus: Bus, topic: Topic, process: str = ""):
        self.topic = topic
        self.binds = not topic.consumer_binds
        self.sock = bus.ctx.socket(zmq.PUB if self.binds else zmq.PUSH)
        # A PUB at its high-water mark drops the NEWEST messages, so keep it roomy; subscribers conflate.
        self.sock.setsockopt(zmq.SNDHWM, 1000)
        self.sock.setsockopt(zmq.LINGER, 0 if topic.latest_only else 1000)
        self._peer = self.binds
        self._monitor = None if self.binds else self.sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        _attach(self.sock, bus.endpoint(topic.name, process), bind=self.binds)
        self.dropped = 0
        self.seq = 0

    def wait_peer(self, timeout_s: float = 2.0) -> bool:
        """Connecting senders: wait until the consumer's socket has completed the handshake (what was sent before is
        queued and follows). True at once for a publisher that binds. False: nobody is listening."""
        if not self._peer and self._monitor is not None and self._monitor.poll(int(timeout_s * 1000)):
            self._peer = True
            self.sock.disable_monitor()
            self._monitor.close()
        return self._peer

    def publish(self, msg: Msg, payload: bytes | memoryview = b"") -> int:
        """Never blocks: a full queue drops the message (zmq PUB semantics). Returns the sequence number."""
        self.seq += 1
        try:
            self.sock.send(encode(self.topic, self.seq, time.monotonic_ns(), msg, payload), zmq.NOBLOCK, copy=False)
        except zmq.Again:  # PUSH with its queue full (consumer gone): drop, never block
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                log.warning("%s: consumer not keeping up, %d messages dropped", self.topic.name, self.dropped)
        return self.seq

    def close(self) -> None:
        if self._monitor is not None and not self._monitor.closed:
            self.sock.disable_monitor()
            self._monitor.close()
        self.sock.close()


@dataclass(frozen=True)
class Ports:
    """A process's sockets by topic name: exactly its row of the process table (pubs, subs). Asking for a topic the
    row does not declare is a KeyError naming the row."""

    pub: Mapping[str, Pub]
    sub: Mapping[str, Sub]

    def __post_init__(self):
        object.__setattr__(self, "pub", _Declared("publishes", self.pub))
        object.__setattr__(self, "sub", _Declared("subscribes", self.sub))

    def close(self) -> None:
        for p in self.pub.values():
            p.close()
        for s in self.sub.values():
            s.close()


class _Declared(dict):
    def __init__(self, what: str, sockets: Mapping):
        super().__init__(sockets)
        self.what = what

    def __missing__(self, name: str):
        raise KeyError(f"{name!r}: this process {self.what} only {sorted(self)} (edge/system/process_config.py)")


class Sub:
    def __init__(self, bus: Bus, topic: Topic, conflate: bool, processes: tuple[str, ...] = ()):
        self.topic = topic
        pull = topic.consumer_binds
        if topic.per_process and (conflate or not processes):
            raise ValueError(f"{topic.name}: one stream per process: name the processes, and do not conflate")
        self.sock = bus.ctx.socket(zmq.PULL if pull else zmq.SUB)
        if conflate:
            self.sock.setsockopt(zmq.CONFLATE, 1)  # one socket per topic, single-part messages only
        else:  # queued; a payload topic (camera frames, MBs each) keeps few, so a slow reader cannot hoard memory
            self.sock.setsockopt(zmq.RCVHWM, QUEUED_PAYLOAD_HWM if topic.payload else QUEUED_HWM)
        self.sock.setsockopt(zmq.LINGER, 0)
        if not pull:
            self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        names = processes if topic.per_process else ("",)
        endpoints = [bus.endpoint(topic.name, p) for p in names]
        self.endpoint = endpoints[0]
        self.local_clock = self.endpoint.startswith("tcp://")
        for ep in endpoints:
            _attach(self.sock, ep, bind=pull)
        self.last: Received | None = None
        self.received = 0
        self.invalid = 0
        self.gaps = 0  # messages lost between sequence numbers (queued topics)

    def _take(self, raw) -> Received | None:
        try:
            r = decode(self.topic, raw, self.local_clock)
        except BusError as e:
            self.invalid += 1
            if self.invalid == 1 or self.invalid % 100 == 0:
                log.warning("%s: dropped malformed message #%d: %s", self.topic.name, self.invalid, e)
            return None
        if (
            self.last is not None
            and r.seq > self.last.seq + 1
            and not self.topic.latest_only
            and not self.topic.per_process
        ):
            self.gaps += r.seq - self.last.seq - 1
        self.received += 1
        self.last = r
        return r

    def drain(self, max_n: int | None = None, max_reads: int | None = None) -> list[Received]:
        """Messages waiting now, oldest first, without blocking; at most max_n valid ones, taking at most max_reads
        frames off the socket, malformed ones included (the rest stay queued). A loop that must not block passes
        max_reads=RT_READ_BUDGET: a flood of malformed messages then costs it a bounded time per call."""
        out: list[Received] = []
        reads = 0
        while (max_n is None or len(out) < max_n) and (max_reads is None or reads < max_reads):
            try:
                raw = self.sock.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return out
            reads += 1
            r = self._take(raw.buffer)
            if r is not None:
                out.append(r)
        return out

    def latest(self) -> Received | None:
        """The newest message ever received (possibly old: check age), without blocking."""
        self.drain()
        return self.last

    def fresh(self, now_ns: int | None = None, max_age_s: float | None = None) -> Received | None:
        """The newest message if younger than max_age_s (default: the topic's max age), else None. A stamp from the
        future (a clock that is not ours) is not fresh either."""
        limit = self.topic.max_age_s if max_age_s is None else max_age_s
        if limit is None:
            raise ValueError(f"{self.topic.name}: no max age in the registry; its consumer passes its own")
        r = self.latest()
        return r if r is not None and -0.005 <= r.age_s(now_ns) <= limit else None

    def wait(self, timeout_s: float) -> list[Received]:
        """Block up to timeout_s for at least one message (for event-driven processes, never the control loop)."""
        if self.sock.poll(int(timeout_s * 1000)):
            return self.drain()
        return []

    def close(self) -> None:
        self.sock.close()
