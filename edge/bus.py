"""ZeroMQ pub/sub for the topics in edge.messages.TOPICS.

Wire format, one single-part ZeroMQ message per bus message:
    u32 little-endian header length | header (UTF-8 JSON) | raw payload bytes (camera pixels; empty otherwise)
The header is {"topic", "seq", "mono_ns", "msg"}; mono_ns is the sender's time.monotonic_ns() (CLOCK_MONOTONIC is
system-wide, so ages are exact between processes of one machine). No pickle, no base64.

Endpoints derive from the topic name: ipc://<run_dir>/<topic> unless the config gives a tcp:// endpoint.
Event topics with several short-lived publishers (operator commands) are bound by their single subscriber.
Latest-only topics are conflated at the subscriber; a malformed or foreign message is counted, logged and dropped.
"""
from __future__ import annotations

import json
import logging
import os
import struct
import time
from dataclasses import dataclass, field

import zmq

from edge.messages import TOPICS, Msg, Topic

log = logging.getLogger(__name__)
_LEN = struct.Struct("<I")
MAX_HEADER_BYTES = 1 << 20
# Topics bound by their subscriber (one consumer, many possibly short-lived producers).
SUBSCRIBER_BOUND = frozenset({"actionText", "estop", "operatorCommand", "instruction"})


class BusError(ValueError):
    """A message that cannot be decoded; carries a reason for the log."""


def encode(topic: Topic, seq: int, mono_ns: int, msg: Msg, payload: bytes | memoryview = b"") -> bytes:
    if type(msg) is not topic.schema:
        raise TypeError(f"{topic.name} carries {topic.schema.__name__}, not {type(msg).__name__}")
    if topic.payload and len(payload) != msg.payload_size():
        raise ValueError(f"{topic.name}: payload is {len(payload)} bytes, header says {msg.payload_size()}")
    if payload and not topic.payload:
        raise ValueError(f"{topic.name} has no payload")
    header = b'{"topic":"%s","seq":%d,"mono_ns":%d,"msg":%s}' % (
        topic.name.encode(), seq, mono_ns, msg.model_dump_json().encode())
    return b"".join((_LEN.pack(len(header)), header, payload))


@dataclass(frozen=True)
class Received:
    msg: Msg
    seq: int
    mono_ns: int
    payload: memoryview | None = None

    def age_s(self, now_ns: int | None = None) -> float:
        return ((time.monotonic_ns() if now_ns is None else now_ns) - self.mono_ns) * 1e-9


def decode(topic: Topic, raw: bytes | memoryview) -> Received:
    view = memoryview(raw)
    if len(view) < _LEN.size:
        raise BusError(f"truncated: {len(view)} bytes")
    (n,) = _LEN.unpack_from(view)
    if n > MAX_HEADER_BYTES or _LEN.size + n > len(view):
        raise BusError(f"header length {n} does not fit a {len(view)}-byte message")
    try:
        head = json.loads(bytes(view[_LEN.size:_LEN.size + n]))
        name, seq, mono_ns, body = head["topic"], int(head["seq"]), int(head["mono_ns"]), head["msg"]
    except (ValueError, KeyError, TypeError) as e:
        raise BusError(f"bad header: {e}") from None
    if name != topic.name:
        raise BusError(f"message for {name!r} on {topic.name!r}")
    try:
        msg = topic.schema.model_validate(body)
    except ValueError as e:
        raise BusError(f"schema {topic.schema.__name__}: {str(e).splitlines()[0]}") from None
    payload = view[_LEN.size + n:]
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
        unknown = set(self.tcp) - set(TOPICS)
        if unknown:
            raise ValueError(f"tcp endpoints for unknown topics: {sorted(unknown)}")
        os.makedirs(self.run_dir, exist_ok=True)

    def endpoint(self, name: str) -> str:
        if name not in TOPICS:
            raise KeyError(f"unknown topic {name!r}; known: {sorted(TOPICS)}")
        return self.tcp.get(name) or f"ipc://{os.path.join(self.run_dir, name)}"

    def pub(self, name: str) -> "Pub":
        return Pub(self, TOPICS[name])

    def sub(self, name: str, conflate: bool | None = None) -> "Sub":
        topic = TOPICS[name]
        return Sub(self, topic, topic.latest_only if conflate is None else conflate)


def _attach(sock: zmq.Socket, endpoint: str, bind: bool) -> None:
    if bind:
        if endpoint.startswith("ipc://") and os.path.exists(endpoint[6:]):
            os.unlink(endpoint[6:])  # a stale socket file from a crashed process
        sock.bind(endpoint)
    else:
        sock.connect(endpoint)


class Pub:
    def __init__(self, bus: Bus, topic: Topic):
        self.topic = topic
        self.sock = bus.ctx.socket(zmq.PUB)
        # A PUB at its high-water mark drops the NEWEST messages, so keep it roomy; subscribers conflate.
        self.sock.setsockopt(zmq.SNDHWM, 1000)
        self.sock.setsockopt(zmq.LINGER, 0 if topic.latest_only else 500)
        self.binds = topic.name not in SUBSCRIBER_BOUND
        # A connecting publisher watches for the handshake, so a short-lived sender can wait for its peer.
        self._monitor = None if self.binds else self.sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self._peer = self.binds
        _attach(self.sock, bus.endpoint(topic.name), bind=self.binds)
        self.seq = 0

    def wait_peer(self, timeout_s: float = 2.0) -> bool:
        """Connecting publishers only: wait until the subscriber's socket has answered, then let its subscription
        arrive (ZeroMQ drops what a PUB sends before that). True at once for a publisher that binds."""
        if not self._peer and self._monitor.poll(int(timeout_s * 1000)):
            self._peer = True
            self.sock.disable_monitor()
            self._monitor.close()
            time.sleep(0.05)
        return self._peer

    def publish(self, msg: Msg, payload: bytes | memoryview = b"") -> int:
        """Never blocks: a full queue drops the message (zmq PUB semantics). Returns the sequence number."""
        self.seq += 1
        self.sock.send(encode(self.topic, self.seq, time.monotonic_ns(), msg, payload), zmq.NOBLOCK, copy=False)
        return self.seq

    def close(self) -> None:
        if self._monitor is not None and not self._monitor.closed:
            self.sock.disable_monitor()
            self._monitor.close()
        self.sock.close()


class Sub:
    def __init__(self, bus: Bus, topic: Topic, conflate: bool):
        self.topic = topic
        self.sock = bus.ctx.socket(zmq.SUB)
        if conflate:
            self.sock.setsockopt(zmq.CONFLATE, 1)   # one socket per topic, single-part messages only
        else:
            self.sock.setsockopt(zmq.RCVHWM, 10000)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        _attach(self.sock, bus.endpoint(topic.name), bind=topic.name in SUBSCRIBER_BOUND)
        self.last: Received | None = None
        self.received = 0
        self.invalid = 0
        self.gaps = 0        # messages lost between sequence numbers (queued topics)

    def _take(self, raw) -> Received | None:
        try:
            r = decode(self.topic, raw)
        except BusError as e:
            self.invalid += 1
            if self.invalid == 1 or self.invalid % 100 == 0:
                log.warning("%s: dropped malformed message #%d: %s", self.topic.name, self.invalid, e)
            return None
        if self.last is not None and r.seq > self.last.seq + 1 and not self.topic.latest_only:
            self.gaps += r.seq - self.last.seq - 1
        self.received += 1
        self.last = r
        return r

    def drain(self) -> list[Received]:
        """Every message waiting now, oldest first, without blocking."""
        out = []
        while True:
            try:
                raw = self.sock.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return out
            r = self._take(raw.buffer)
            if r is not None:
                out.append(r)

    def latest(self) -> Received | None:
        """The newest message ever received (possibly old: check age), without blocking."""
        self.drain()
        return self.last

    def fresh(self, now_ns: int | None = None) -> Received | None:
        """The newest message if younger than the topic's max age, else None."""
        r = self.latest()
        return r if r is not None and r.age_s(now_ns) <= self.topic.max_age_s else None

    def wait(self, timeout_s: float) -> list[Received]:
        """Block up to timeout_s for at least one message (for event-driven processes, never the control loop)."""
        if self.sock.poll(int(timeout_s * 1000)):
            return self.drain()
        return []

    def close(self) -> None:
        self.sock.close()
