"""The process table's pubs and subs are what each process really opens: process_main opens the row's sockets (and
only those), and each process module takes its sockets from them, by the names its row declares, and opens none
itself."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from edge.system.process_config import PROCS
from edge.system.process_main import open_ports


def _source(module: str) -> ast.Module:
    spec = importlib.util.find_spec(module)
    return ast.parse(Path(spec.origin).read_text())


def _used_ports(tree: ast.Module) -> dict[str, set[str]]:
    """Topic names a module takes from its ports: X.pub["t"] / X.sub["t"], or pub["t"] / sub["t"] after
    `pub, sub = proc.ports.pub, proc.ports.sub`."""
    used: dict[str, set[str]] = {"pub": set(), "sub": set()}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
        ):
            v = node.value
            name = v.attr if isinstance(v, ast.Attribute) else v.id if isinstance(v, ast.Name) else None
            if name in used:
                used[name].add(node.slice.value)
    return used


def _opens_sockets_itself(tree: ast.Module) -> list[str]:
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id == "Bus":
                calls.append(f"Bus(...) at line {node.lineno}")
            if (
                isinstance(f, ast.Attribute)
                and f.attr in ("pub", "sub", "open")
                and isinstance(f.value, ast.Name)
                and f.value.id == "bus"
            ):
                calls.append(f"bus.{f.attr}(...) at line {node.lineno}")
    return calls


@pytest.mark.parametrize("spec", PROCS, ids=[p.name for p in PROCS])
def test_process_uses_exactly_its_rows_sockets(spec):
    tree = _source(spec.module)
    assert _opens_sockets_itself(tree) == [], f"{spec.module} opens sockets outside its table row"
    used = _used_ports(tree)
    assert used["pub"] == set(spec.pubs), f"{spec.name}: publishes {used['pub']}, table says {spec.pubs}"
    if spec.name == "recordd":  # records every topic of its row, by iterating its ports
        assert used["sub"] == set() and "ports.sub.values" in ast.unparse(tree)
    else:
        assert used["sub"] == set(spec.subs), f"{spec.name}: subscribes {used['sub']}, table says {spec.subs}"


@pytest.mark.parametrize("spec", PROCS, ids=[p.name for p in PROCS])
def test_process_main_opens_the_row_and_refuses_other_topics(spec, bus):
    ports = open_ports(spec.name, bus)
    try:
        assert set(ports.pub) == set(spec.pubs) and set(ports.sub) == set(spec.subs)
        assert all(p.topic.name == n for n, p in ports.pub.items())
        with pytest.raises(KeyError, match="edge/system/process_config.py"):
            ports.sub["no-such-topic"]
    finally:
        ports.close()


def test_helpers_outside_the_table_get_no_sockets(bus):
    ports = open_ports("damp", bus)
    assert not ports.pub and not ports.sub
