"""Faults on the control side, with the simulated Go2 walking (edge.tools.safety_bench has the stack and the measures;
the precise numbers over 10 runs each are in docs/results.md):

kill -9 of control → the LowCmd watchdog damps (the simulator keeps the last command, as the motor boards do) and the
robot stays upright; the restarted control stands up again and the navigator never resumes the walk; the remote's
L2+B and `edge estop` damp and latch; a second controller is refused, naming the first.

One stack per module, tests in file order. Time bounds here are generous sanity bounds, not the targets.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile

import pytest

from drivers.unitree.go2 import probe_lowcmd
from edge.controls.commander import CommanderConflict, check_sole_commander
from edge.tools.safety_bench import (
    SimStack,
    cli_estop_while_walking,
    kill_control_while_walking,
    remote_estop_while_walking,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def stack():
    s = SimStack()
    try:
        s.wait_mode(("hold",), 60)
        yield s
    finally:
        s.close()


def test_watchdog_watches_and_each_process_reports_its_scheduling(stack):
    wd = stack.watchdog.latest()
    st = stack.op.control.latest().msg
    assert wd is not None and wd.msg.state == "watching", wd
    print(f"\ncontrolsd: {st.realtime}; watchdogd: {wd.msg.realtime}")
    assert st.realtime and wd.msg.realtime and st.boot_id


def test_the_probe_names_the_controller_and_leaves_the_stacks_own_watchdog_out(stack):
    control_pid, watchdog_pid = stack.mgr.children["controlsd"].pid, stack.mgr.children["watchdogd"].pid
    writers = {w.pid: w for w in probe_lowcmd(stack.domain, "lo")}
    assert writers[control_pid].samples > 0 and writers[control_pid].local
    assert writers[watchdog_pid].samples == 0  # watching: silent
    with pytest.raises(CommanderConflict, match=rf"\(pid {control_pid}\) on .*LowCmd in the probe window") as e:
        check_sole_commander(stack.cfg)
    assert f"pid {watchdog_pid}" not in str(e.value)


def test_a_second_controller_on_the_same_domain_is_refused(stack):
    other_bus = tempfile.mkdtemp(prefix="edge-other-", dir="/tmp")
    r = subprocess.run(
        [sys.executable, "-m", "edge.controls.controlsd", "--set", f"bus.run_dir={other_bus}", "--set",
         f"robot.dds_domain={stack.domain}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 3, r.stdout + r.stderr
    assert f"refusing to start: DDS domain {stack.domain} is in use by controlsd" in r.stdout + r.stderr
    assert stack.op.control.latest().msg.mode == "hold"  # the first stack never noticed


def test_kill_9_of_control_while_walking_damps_and_the_robot_stays_up(stack):
    r = kill_control_while_walking(stack)
    print(f"\nkill -9 → first damping LowCmd {r['damping_ms']:.1f} ms; {r}")
    assert r["damping_ms"] is not None and r["damping_ms"] < 150
    assert r["upright"] and r["max_tilt_rad"] < 0.5
    assert r["restarted_in"] == "hold" and not r["walked_after_restart"] and r["navigator_dropped"] >= 1
    assert stack.watchdog.latest().msg.state == "watching"  # yielded to the restarted control


def test_remote_l2_b_damps_at_once_and_latches(stack):
    r = remote_estop_while_walking(stack)
    print(f"\nremote L2+B → first damping LowCmd {r['press_to_damping_ms']:.1f} ms")
    assert r["reason"] == "e-stop (remote L2+B)"
    assert r["press_to_damping_ms"] is not None and r["press_to_damping_ms"] < 100
    stack.restart_control()
    stack.wait_mode(("hold",), 40)


def test_edge_estop_damps_and_latches(stack):
    r = cli_estop_while_walking(stack)
    print(f"\nedge estop → first damping LowCmd {r['command_to_damping_ms']:.0f} ms (process {r['process_ms']:.0f} ms)")
    assert r["rc"] == 0 and r["reason"] == "e-stop (operator: bench)"
    assert r["command_to_damping_ms"] is not None and r["command_to_damping_ms"] < 5000
