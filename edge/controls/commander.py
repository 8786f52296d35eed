"""One commander per robot. Two stacks must never command one robot (a second `edge run` stood an e-stopped robot back
up over the shared DDS domain), so before anything is started or published:

* a lock per bus directory and per DDS domain (`flock` on a file holding who took it): `edge run` takes both for its
  whole stack, controlsd takes them itself when no launcher of its own stack holds them (systemd);
* a probe of rt/lowcmd (drivers.unitree.go2.probe_lowcmd, 200 ms as Unitree's Go2 deploy does, docs/go2.md §11):
  refused when any other process sends LowCmd, or when a silent writer sits on this machine (another stack between
  two commands); a silent writer on another machine is only warned about. This stack's own LowCmd watchdog is left
  out: it registers itself in the bus directory (register_watchdog) before it creates its writer.

Errors are CommanderConflict, one line naming the other stack (host, pid, process) and what to do.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from edge.common.config import EdgeConfig

log = logging.getLogger(__name__)

WATCHDOG_RECORD = "watchdogd.json"  # in the bus directory: the host and pid of this stack's LowCmd watchdog


class CommanderConflict(RuntimeError):
    """Another stack holds the lock or commands the robot: this one must not start."""


def lock_dir() -> Path:
    """Machine-wide lock directory: /run/lock where writable (shared by every unit and user), else the temp dir."""
    run_lock = Path("/run/lock")
    return run_lock if os.access(run_lock, os.W_OK) else Path(tempfile.gettempdir())


def lock_paths(cfg: EdgeConfig) -> list[tuple[str, Path]]:
    return [
        (f"bus directory {cfg.bus.run_dir}", Path(cfg.bus.run_dir) / ".edge-stack.lock"),
        (f"DDS domain {cfg.robot.dds_domain}", lock_dir() / f"edge-dds-domain-{cfg.robot.dds_domain}.lock"),
    ]


def _describe(holder: dict) -> str:
    if not holder:
        return "another process (no record yet)"
    return f"{holder.get('process', '?')} (pid {holder.get('pid', '?')}) on {holder.get('host', '?')}"


@dataclass
class StackLock:
    """The locks this process holds; released on close() or when the process ends (the kernel drops flock locks)."""

    fds: list[int] = field(default_factory=list)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()


def acquire_stack_lock(cfg: EdgeConfig, process: str) -> StackLock:
    """Take the bus-directory and DDS-domain locks. A lock held by this process's parent (the `edge run` that
    launched it) counts as ours. CommanderConflict naming the holder otherwise."""
    Path(cfg.bus.run_dir).mkdir(parents=True, exist_ok=True)
    lock = StackLock()
    me = {"process": process, "pid": os.getpid(), "host": socket.gethostname()}
    for what, path in lock_paths(cfg):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except PermissionError:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_record(fd)
            os.close(fd)
            if holder.get("pid") == os.getppid() and holder.get("host") == me["host"]:
                continue  # our own launcher holds it for the whole stack
            lock.close()
            raise CommanderConflict(
                f"{what} is in use by {_describe(holder)} (lock {path}): one stack per bus directory and DDS "
                f"domain; stop that stack first, or give this one another bus.run_dir and robot.dds_domain"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({**me, "what": what, "since_mono_s": time.monotonic()}).encode())
        except OSError:  # a read-only lock file (another user's): the lock still holds, only the record is missing
            pass
        lock.fds.append(fd)
    return lock


def _read_record(fd: int) -> dict:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def register_watchdog(cfg: EdgeConfig) -> Path:
    """The LowCmd watchdog records itself in the bus directory (before creating its writer), so that controlsd's probe
    leaves this stack's own watchdog out."""
    path = Path(cfg.bus.run_dir) / WATCHDOG_RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
    tmp.replace(path)
    return path


def own_watchdog(cfg: EdgeConfig) -> tuple[str, int] | None:
    try:
        rec = json.loads((Path(cfg.bus.run_dir) / WATCHDOG_RECORD).read_text())
        return str(rec["host"]), int(rec["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_sole_commander(cfg: EdgeConfig, window_s: float = 0.2) -> None:
    """Probe rt/lowcmd on the config's domain and interface; CommanderConflict when another stack commands the robot.
    Needs no DDS set-up of its own (the probe opens and deletes its own participant)."""
    from drivers.unitree.go2 import probe_lowcmd

    found = probe_lowcmd(cfg.robot.dds_domain, cfg.robot.interface, window_s, cfg.robot.interface_wait_s)
    ours = own_watchdog(cfg)  # read after the probe: our watchdog registers itself before it creates its writer
    writers = [w for w in found if ours is None or (w.host, w.pid) != ours]
    refused = [w for w in writers if w.samples > 0 or w.local]
    for w in writers:
        if w not in refused:
            log.warning("a silent rt/lowcmd writer on another machine: %s", w)
    if refused:
        raise CommanderConflict(
            f"another process commands the robot on DDS domain {cfg.robot.dds_domain} ({cfg.robot.interface}): "
            + "; ".join(map(str, refused))
            + ". Stop it first: two controllers must never command one robot"
        )
