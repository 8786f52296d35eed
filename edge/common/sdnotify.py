"""Minimal sd_notify(3): READY=1 and WATCHDOG=1 over $NOTIFY_SOCKET; a no-op outside systemd."""

from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self):
        addr = os.environ.get("NOTIFY_SOCKET")
        self.sock = None
        if addr:
            self.addr = "\0" + addr[1:] if addr.startswith("@") else addr
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        usec = os.environ.get("WATCHDOG_USEC")
        self.watchdog_interval_s = int(usec) / 2e6 if usec and usec.isdigit() else None
        self._last_ping = 0.0

    def notify(self, state: str) -> None:
        if self.sock is not None:
            try:
                self.sock.sendto(state.encode(), self.addr)
            except OSError:
                pass

    def ready(self) -> None:
        self.notify("READY=1")

    def watchdog(self, now_s: float) -> None:
        """Ping at half the configured interval; call only while the loop is on time."""
        if self.watchdog_interval_s is not None and now_s - self._last_ping >= self.watchdog_interval_s:
            self._last_ping = now_s
            self.notify("WATCHDOG=1")
