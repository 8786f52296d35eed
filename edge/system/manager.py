"""Runs a set of PROCS as subprocesses (dev machines and the simulator; the robot uses systemd).

Start-up is by readiness: wait_ready() returns when every child reports ready (or degraded) on processState, and
raises NotReadyError naming each process that is not, and why, when one fails or exits, or stops making progress
for its ProcessSpec.start_timeout_s. Ctrl-C, SIGTERM, or the death of any child stops them all: SIGINT first (each
process damps / flushes on its way out), SIGKILL after a grace period.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from edge.common.config import load_config
from edge.common.yaml_config import parse_overrides
from edge.msg.bus import Bus
from edge.msg.messages import ProcessState, ProcessStateName
from edge.system.health import UP, HealthView
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
        """Start every process; one with launch_after only once those of them in this run report ready (waited
        for here, bounded like wait_ready). NotReadyError if they do not come up; what was started keeps running
        until stop()."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        names = {p.name for p in self.procs}
        pending = list(self.procs)
        while pending:
            wave = [p for p in pending if all(d in self.children or d not in names for d in p.launch_after)]
            if not wave:  # check_table refuses unknown names; a cycle is the only way here
                raise ValueError(f"launch_after cycle among {[p.name for p in pending]}")
            first = {d for p in wave for d in p.launch_after if d in names}
            if first:
                log.info("%s after %s report ready", ", ".join(p.name for p in wave), ", ".join(sorted(first)))
                self.wait_ready(names=sorted(first))
            for p in wave:
                self.children[p.name] = subprocess.Popen(self.command(p), env=env, start_new_session=True)
                log.info("started %s (pid %d)", p.name, self.children[p.name].pid)
                pending.remove(p)

    def dead(self) -> list[tuple[str, int]]:
        return [(n, c.returncode) for n, c in self.children.items() if c.poll() is not None]

    def bus(self) -> Bus:
        cfg = load_config(self.config, parse_overrides(self.overrides))
        return Bus(cfg.bus.run_dir, cfg.bus.tcp)

    def wait_ready(
        self,
        timeout_s: float | None = None,
        accept: tuple[ProcessStateName, ...] = UP,
        names: list[str] | None = None,
    ) -> dict[str, ProcessState]:
        """Block until every child reports a state in `accept` (default ready or degraded; see
        edge.system.health.HealthView.wait_ready); the bound, per process and restarted by each progress report, is
        its start_timeout_s unless timeout_s is given."""
        view = HealthView(self.bus(), names or [p.name for p in self.procs])
        bounds = {p.name: timeout_s or p.start_timeout_s for p in self.procs}

        def exited() -> str:
            dead = self.dead()
            return ", ".join(f"{n} exited with code {rc} during start-up" for n, rc in dead)

        try:
            return view.wait_ready(bounds, accept=accept, abort=exited)
        finally:
            view.close()

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
