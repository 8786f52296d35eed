"""Common start-up for every process of the table: arguments, config, logging, signals, real-time placement, and its
sockets — opened here from its row of the process table, so a process has exactly the pubs and subs the table says."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from dataclasses import dataclass
from typing import Callable

import yaml

from edge.common.config import EdgeConfig, load_config
from edge.common.realtime import configure_realtime
from edge.msg.bus import Bus, Ports
from edge.system.process_config import PROCS


def parse_overrides(items: list[str]) -> dict:
    """'navigator.execution=open_loop' → {'navigator.execution': 'open_loop'} (values parsed as YAML scalars)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        out[key] = yaml.safe_load(value)
    return out


@dataclass(frozen=True)
class Process:
    """What a process's run() gets: its config, a stop event set on SIGINT / SIGTERM, its command-line arguments, and
    its sockets (none for a helper outside the table, such as the ExecStopPost damper)."""

    cfg: EdgeConfig
    stop: threading.Event
    args: argparse.Namespace
    ports: Ports


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
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {name:>9} %(levelname)s %(message)s")
    cfg = load_config(args.config, parse_overrides(args.set))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    spec = next((p for p in PROCS if p.name == name), None)
    if spec is not None and cfg.profile == "robot":
        notes = configure_realtime(list(spec.cpus), spec.rt_priority)
        logging.getLogger(name).info("real-time: %s", ", ".join(notes) or "normal scheduling")
    ports = open_ports(name, Bus(cfg.bus.run_dir, cfg.bus.tcp), conflate)
    try:
        return run(Process(cfg=cfg, stop=stop, args=args, ports=ports)) or 0
    finally:
        ports.close()
