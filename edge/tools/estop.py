"""`edge estop`, fast: the operator's e-stop goes out before pydantic, the config models or the bus classes are
imported (they cost ≈ 0.2–0.3 s of start-up on this machine; measured in docs/results.md). Reads bus.run_dir / bus.tcp
from the config file as plain YAML (edge.common.yaml_config) and sends one Estop on the estop topic's PUSH/PULL
endpoint (edge.msg.wire); controlsd damps at its next tick and latches. tests/unit/test_estop_cli.py checks that what
is sent here decodes as the bus's own Estop message."""

from __future__ import annotations

import json
import time

import zmq

from edge.common.yaml_config import DEFAULT_RUN_DIR, config_path, read_yaml
from edge.msg.wire import endpoint, frame, push_once


def estop_frame(reason: str) -> bytes:
    """The bus message edge.msg.messages.Estop(reason=reason) on topic estop."""
    return frame("estop", 1, time.monotonic_ns(), json.dumps({"reason": reason}).encode())


def send_estop(config: str | None, overrides: dict, reason: str = "operator", timeout_s: float = 2.0) -> None:
    """TimeoutError when nothing consumes estop (control is not running)."""
    bus = read_yaml(config_path(config), overrides).get("bus") or {}
    address = endpoint(str(bus.get("run_dir", DEFAULT_RUN_DIR)), bus.get("tcp") or {}, "estop")
    if not push_once(zmq.Context.instance(), address, estop_frame(reason), timeout_s):
        raise TimeoutError(f"nobody is listening on estop at {address} (is controlsd running?)")
