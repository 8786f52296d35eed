"""Runs a set of PROCS as subprocesses (dev machines and the simulator; the robot uses systemd).

Ctrl-C, SIGTERM, or the death of any child stops them all: SIGINT first (each process damps / flushes on its way
out), SIGKILL after a grace period.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from edge.system.process_config import ProcessSpec

log = logging.getLogger("manager")


@dataclass
class Manager:
    procs: list[ProcessSpec]
    config: str | None = None
    overrides: list[str] = field(default_factory=list)
    extra_args: dict[str, list[str]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    children: dict[str, subprocess.Popen] = field(default_factory=dict)

    def command(self, p: ProcessSpec) -> list[str]:
        cmd = [sys.executable, "-m", p.module]
        if self.config:
            cmd += ["--config", self.config]
        for o in self.overrides:
            cmd += ["--set", o]
        return cmd + self.extra_args.get(p.name, [])

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        for p in self.procs:
            self.children[p.name] = subprocess.Popen(self.command(p), env=env, start_new_session=True)
            log.info("started %s (pid %d)", p.name, self.children[p.name].pid)

    def dead(self) -> list[tuple[str, int]]:
        return [(n, c.returncode) for n, c in self.children.items() if c.poll() is not None]

    def stop(self, grace_s: float = 3.0) -> dict[str, int]:
        for c in self.children.values():
            if c.poll() is None:
                c.send_signal(signal.SIGINT)
        deadline = time.monotonic() + grace_s
        for name, c in self.children.items():
            try:
                c.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.1f s: killing", name, grace_s)
                c.kill()
                c.wait()
        return {n: c.returncode for n, c in self.children.items()}

    def supervise(self, until=lambda: False, poll_s: float = 0.1) -> int:
        """Block until Ctrl-C/SIGTERM, a child's death, or until() is true; then stop everything."""
        stopping = []
        old = {s: signal.signal(s, lambda *_: stopping.append(1)) for s in (signal.SIGINT, signal.SIGTERM)}
        rc = 0
        try:
            while not stopping and not until():
                dead = self.dead()
                if dead:
                    log.error("process %s exited with %s: stopping all", *dead[0])
                    rc = 1
                    break
                time.sleep(poll_s)
        finally:
            self.stop()
            for s, h in old.items():
                signal.signal(s, h)
        return rc

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
