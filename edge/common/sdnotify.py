"""Minimal sd_notify(3) over $NOTIFY_SOCKET; a no-op outside systemd.

Fields used (sd_notify(3), systemd.service(5) v252): READY=1 (a Type=notify unit counts as started, After= units may
start), STATUS=<text> (shown by `systemctl status`), EXTEND_TIMEOUT_USEC=<µs> (since systemd 236: while starting,
"the service manager will allow the service to continue to start, provided the service repeats
EXTEND_TIMEOUT_USEC=… within the interval specified until … READY=1"), STOPPING=1, WATCHDOG=1 (after READY=1, at
least every $WATCHDOG_USEC). Several fields go in one datagram, newline-separated. An abstract socket address is
given with a leading '@'.
"""

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

    @property
    def active(self) -> bool:
        return self.sock is not None

    def notify(self, *fields: str) -> None:
        """Send "KEY=value" fields in one datagram (newline-separated)."""
        if self.sock is not None:
            try:
                self.sock.sendto("\n".join(fields).encode(), self.addr)
            except OSError:
                pass

    def ready(self, status: str = "") -> None:
        self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str, extend_timeout_s: float = 0.0) -> None:
        """STATUS=text; with extend_timeout_s, also EXTEND_TIMEOUT_USEC (only meaningful before READY=1)."""
        fields = [f"STATUS={text.splitlines()[0] if text else ''}"]
        if extend_timeout_s > 0:
            fields.append(f"EXTEND_TIMEOUT_USEC={int(extend_timeout_s * 1e6)}")
        self.notify(*fields)

    def stopping(self, status: str = "") -> None:
        self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self, now_s: float) -> None:
        """Ping at half the configured interval; call only while the loop is on time."""
        if self.watchdog_interval_s is not None and now_s - self._last_ping >= self.watchdog_interval_s:
            self._last_ping = now_s
            self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
