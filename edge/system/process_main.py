"""Common start-up for every process of the table: arguments, config, logging, signals, real-time placement, its
health (edge.system.health: published from here on, before any slow work) and its sockets — opened here from its
row of the process table, before run(), so a process has exactly the pubs and subs the table says and its inputs
exist while it loads. A process's run() says when it is ready (proc.health.ready()); an exception or a non-zero
return ends in state failed with the reason; a bad config or override ends in one line naming it (exit code 2)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from dataclasses import dataclass
from typing import Callable

from edge.common.config import ConfigError, EdgeConfig, load_config
from edge.common.realtime import configure_realtime, scheduling
from edge.common.yaml_config import parse_overrides
from edge.msg.bus import Bus, Ports
from edge.msg.messages import ProcessStateName
from edge.system.health import Health
from edge.system.logs import setup_logging
from edge.system.process_config import PROCS

EXIT_CONFIG = 2


@dataclass(frozen=True)
class Process:
    """What a process's run() gets: its config, a stop event set on SIGINT / SIGTERM, its command-line arguments, its
    sockets (none for a helper outside the table, such as the ExecStopPost damper) and its health (call
    health.ready() once it does its job; loading(reason, progress) during slow work; degraded(reason) when impaired)."""

    cfg: EdgeConfig
    stop: threading.Event
    args: argparse.Namespace
    ports: Ports
    health: Health


def open_ports(name: str, bus: Bus, conflate: bool | None = None) -> Ports:
    """The sockets of process `name`: its table row's pubs and subs; none for a name not in the table."""
    spec = next((p for p in PROCS if p.name == name), None)
    return bus.open(spec.pubs if spec else (), spec.subs if spec else (), conflate)


def process_main(
    name: str,
    run: Callable[[Process], int],
    argv: list[str] | None = None,
    add_args: Callable[[argparse.ArgumentParser], object] | None = None,
    conflate: bool | None = None,
) -> int:
    """conflate=False: queue every message of the subscribed topics (the recorder), else each topic's own setting."""
    ap = argparse.ArgumentParser(prog=name)
    ap.add_argument("--config", help="EdgeConfig YAML (default: $EDGE_CONFIG or configs/sim.yaml)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    if add_args:
        add_args(ap)
    args = ap.parse_args(argv)
    setup_logging(name)
    logger = logging.getLogger(name)
    try:
        cfg = load_config(args.config, parse_overrides(args.set))
    except ConfigError as e:  # one line naming the field, the value and the bound; no traceback
        logger.error("%s", e)
        return EXIT_CONFIG
    spec = next((p for p in PROCS if p.name == name), None)
    bus = Bus(cfg.bus.run_dir, cfg.bus.tcp)
    health = Health(name, bus if spec is not None else None, extend_s=spec.start_timeout_s if spec else 60.0)
    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()
        health.stopping(f"{signal.Signals(signum).name} received")

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    if spec is not None and (spec.rt_priority or spec.cpus):  # every profile, where the OS permits it
        if cfg.realtime.enabled:
            notes = configure_realtime(spec.cpus, spec.rt_priority, cfg.realtime.lock_memory)
        else:
            notes = ["off (realtime.enabled: false)"]
        logger.info("real-time: %s%s", scheduling(), "; " + "; ".join(notes) if notes else "")
    ports = open_ports(name, bus, conflate)
    health.count_malformed(ports.sub.values())
    health.start()  # from the first state on, the process's sockets exist
    rc, reason = 1, ""
    final: ProcessStateName = "failed"
    try:
        rc = run(Process(cfg=cfg, stop=stop, args=args, ports=ports, health=health)) or 0
        final, reason = ("stopping", health.reason) if rc == 0 else ("failed", health.reason or f"exit code {rc}")
        return rc
    except ConfigError as e:  # found while loading (a policy contract, gains against the safety bounds): one line,
        rc, reason = EXIT_CONFIG, str(e)  # logged by health as it fails
        return EXIT_CONFIG
    except Exception as e:
        reason = f"{type(e).__name__}: {e}"
        raise
    finally:
        ports.close()
        health.close(final, reason)
