"""Common start-up for every process of the table: arguments, config, logging, signals, real-time placement, and its
sockets — opened here from its row of the process table, so a process has exactly the pubs and subs the table says."""

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
from edge.system.process_config import PROCS


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
    try:
        cfg = load_config(args.config, parse_overrides(args.set))
    except ConfigError as e:  # one line naming the field, the value and the bound; no traceback
        logging.getLogger(name).error("%s", e)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    spec = next((p for p in PROCS if p.name == name), None)
    if spec is not None and (spec.rt_priority or spec.cpus):  # every profile, where the OS permits it
        if cfg.realtime.enabled:
            notes = configure_realtime(spec.cpus, spec.rt_priority, cfg.realtime.lock_memory)
        else:
            notes = ["off (realtime.enabled: false)"]
        logging.getLogger(name).info("real-time: %s%s", scheduling(), "; " + "; ".join(notes) if notes else "")
    ports = open_ports(name, Bus(cfg.bus.run_dir, cfg.bus.tcp), conflate)
    try:
        return run(Process(cfg=cfg, stop=stop, args=args, ports=ports)) or 0
    except ConfigError as e:  # found while loading (a policy contract, gains against the safety bounds)
        logging.getLogger(name).error("%s", e)
        return 2
    finally:
        ports.close()
