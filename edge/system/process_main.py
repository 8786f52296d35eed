"""Common start-up for every process: arguments, config, logging, signals, real-time placement."""
from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Callable

import yaml

from edge.common.config import EdgeConfig, load_config
from edge.system.process_config import PROCS
from edge.common.realtime import configure_realtime


def parse_overrides(items: list[str]) -> dict:
    """'navigator.execution=open_loop' → {'navigator.execution': 'open_loop'} (values parsed as YAML scalars)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        out[key] = yaml.safe_load(value)
    return out


def process_main(name: str, run: Callable[[EdgeConfig, threading.Event, argparse.Namespace], int],
                 argv: list[str] | None = None, add_args: Callable[[argparse.ArgumentParser], None] | None = None
                 ) -> int:
    ap = argparse.ArgumentParser(prog=f"edge-{name}")
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
    return run(cfg, stop, args) or 0
