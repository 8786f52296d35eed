from __future__ import annotations

import socket

from edge.common.sdnotify import Notifier


def test_ready_and_watchdog_reach_the_notify_socket(tmp_path, monkeypatch):
    path = str(tmp_path / "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(1.0)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "500000")
    n = Notifier()
    assert n.watchdog_interval_s == 0.25
    n.ready()
    assert server.recv(64) == b"READY=1"
    n.watchdog(10.0)
    assert server.recv(64) == b"WATCHDOG=1"
    n.watchdog(10.1)  # within half the interval: no second ping
    n.watchdog(10.26)
    assert server.recv(64) == b"WATCHDOG=1"
    server.setblocking(False)
    try:
        extra = server.recv(64)
    except BlockingIOError:
        extra = None
    assert extra is None
    server.close()


def test_no_socket_is_a_no_op(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    n.ready()
    n.watchdog(1.0)
