"""One commander per robot: the per-bus-directory and per-DDS-domain locks (edge.controls.commander), and the wait for
the robot's network interface (drivers.unitree.go2.wait_for_interface)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from drivers.unitree.go2 import interface_problem, wait_for_interface
from edge.common.config import load_config
from edge.controls.commander import CommanderConflict, acquire_stack_lock, own_watchdog, register_watchdog


def _cfg(tmp_path, domain=231):
    return load_config("configs/sim.yaml", {"bus.run_dir": str(tmp_path), "robot.dds_domain": domain})


HOLD = """
import sys, time
from edge.common.config import load_config
from edge.controls.commander import acquire_stack_lock
lock = acquire_stack_lock(load_config("configs/sim.yaml", {"bus.run_dir": sys.argv[1], "robot.dds_domain": 231}),
                          "other stack")
print("held", flush=True)
sys.stdin.read()
"""


def test_a_second_stack_is_refused_naming_the_first_and_may_start_once_it_is_gone(tmp_path):
    other = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert other.stdout.readline().strip() == "held"
        with pytest.raises(CommanderConflict, match=rf"other stack \(pid {other.pid}\) on"):
            acquire_stack_lock(_cfg(tmp_path), "controlsd")
        with pytest.raises(CommanderConflict, match="DDS domain 231"):  # another bus directory, same domain
            acquire_stack_lock(_cfg(tmp_path / "elsewhere"), "controlsd")
    finally:
        other.stdin.close()
        other.wait(10)
    acquire_stack_lock(_cfg(tmp_path), "controlsd").close()  # the kernel dropped the dead holder's lock


def test_a_lock_held_by_our_own_launcher_counts_as_ours(tmp_path):
    lock = acquire_stack_lock(_cfg(tmp_path), "edge run")
    try:  # a child (as controlsd under `edge run`) sees its parent's record and goes on
        code = (
            "import sys; from edge.common.config import load_config; "
            "from edge.controls.commander import acquire_stack_lock; "
            f"acquire_stack_lock(load_config('configs/sim.yaml', {{'bus.run_dir': {str(tmp_path)!r}, "
            "'robot.dds_domain': 231}), 'controlsd'); print('ok')"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert out.stdout.strip() == "ok", out.stderr
    finally:
        lock.close()


def test_the_watchdog_registers_itself_for_the_probe(tmp_path):
    cfg = _cfg(tmp_path)
    assert own_watchdog(cfg) is None
    register_watchdog(cfg)
    host, pid = own_watchdog(cfg)
    assert pid == os.getpid() and host


def test_interface_wait_is_bounded_and_names_what_is_missing():
    assert interface_problem("lo") == ""
    assert interface_problem("nosuchif0") == "does not exist"
    seen = iter(["does not exist", "is down", "has no IPv4 address", ""])
    clock = iter(range(100))
    wait_for_interface("eth9", 30, problem=lambda n: next(seen), sleep=lambda s: None, clock=lambda: next(clock))
    with pytest.raises(RuntimeError, match=r"network interface 'eth9' is down \(waited 3.0 s; robot.interface\)"):
        t = iter(range(100))
        wait_for_interface("eth9", 3, problem=lambda n: "is down", sleep=lambda s: None, clock=lambda: next(t))
