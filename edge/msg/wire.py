"""The bus's wire format and endpoints, without pydantic (edge.msg.bus builds on these; so does the fast `edge estop`).

One single-part ZeroMQ message per bus message:
    u32 little-endian header length | header (UTF-8 JSON) | raw payload bytes (camera pixels; empty otherwise)
The header is {"topic", "seq", "mono_ns", "msg"}; mono_ns is the sender's time.monotonic_ns().
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping

import zmq

LEN = struct.Struct("<I")


def frame(topic: str, seq: int, mono_ns: int, msg_json: bytes, payload: bytes | memoryview = b"") -> bytes:
    """One bus message; msg_json is the message body, already JSON."""
    header = b'{"topic":"%s","seq":%d,"mono_ns":%d,"msg":%s}' % (topic.encode(), seq, mono_ns, msg_json)
    return b"".join((LEN.pack(len(header)), header, payload))


def endpoint(run_dir: str, tcp: Mapping[str, str], topic: str) -> str:
    """ipc://<run_dir>/<topic> unless the config gives the topic a tcp:// endpoint."""
    return tcp.get(topic) or f"ipc://{os.path.join(run_dir, topic)}"


def push_once(ctx: zmq.Context, address: str, data: bytes, timeout_s: float = 2.0) -> bool:
    """Connect a PUSH socket to a consumer that binds (an event topic), wait for the handshake, send, and linger until
    delivered (up to 1 s). False: no consumer within timeout_s (nothing sent)."""
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 1000)
    monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    try:
        sock.connect(address)
        if not monitor.poll(int(timeout_s * 1000)):
            return False
        sock.send(data)
        return True
    finally:
        sock.disable_monitor()
        monitor.close()
        sock.close()
