"""`edge run`'s manager: any child's death, or Ctrl-C, stops every process cleanly."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from edge.msg.recording import read_recording
from edge.system.manager import Manager
from edge.system.process_config import procs_for

pytestmark = pytest.mark.integration
STARTED = ("starting", "ready")


def _manager(run_dir):
    return Manager(
        procs_for("sim", only=["navigatord", "recordd"]),
        None,
        [f"bus.run_dir={run_dir}"],
        extra_args={"recordd": ["--out", f"{run_dir}/bus.mcap"]},
    )


def test_child_death_stops_all(run_dir):
    mgr = _manager(run_dir)
    mgr.start()
    mgr.wait_ready(accept=STARTED)  # both running (alone, the navigator waits for control: "starting")
    mgr.children["navigatord"].kill()
    t0 = time.monotonic()
    assert mgr.supervise() == 1
    assert time.monotonic() - t0 < 5
    assert all(c.poll() is not None for c in mgr.children.values())
    assert mgr.children["recordd"].returncode == 0  # asked to stop, stopped cleanly


def test_sigint_stops_all_cleanly(run_dir):
    mgr = _manager(run_dir)
    mgr.start()
    mgr.wait_ready(accept=STARTED)
    threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    assert mgr.supervise() == 0
    assert {n: c.returncode for n, c in mgr.children.items()} == {"navigatord": 0, "recordd": 0}
    assert read_recording(f"{run_dir}/bus.mcap").complete  # stopped cleanly: MCAP summary and footer written


def test_launch_after_starts_a_process_once_the_others_are_ready(run_dir):
    """navigatord made to launch after recordd: when start() returns, recordd reported ready before navigatord
    was even started."""
    from edge.msg.bus import Bus
    from edge.system.health import HealthView

    nav, rec = procs_for("sim", only=["navigatord", "recordd"])
    view = HealthView(Bus(run_dir), ["recordd"])
    mgr = Manager(
        [nav.model_copy(update={"launch_after": ("recordd",)}), rec],
        None,
        [f"bus.run_dir={run_dir}"],
        extra_args={"recordd": ["--out", f"{run_dir}/bus.mcap"]},
    )
    try:
        mgr.start()
        t_nav = time.monotonic_ns()
        view.wait_ready(10.0, ["recordd"], accept=("ready",))  # its state, however slow the bus is to deliver it
        st = view.latest["recordd"]
        assert st.msg.state == "ready" and st.mono_ns - int(st.msg.state_s * 1e9) < t_nav
        assert mgr.wait_ready(accept=STARTED).keys() == {"navigatord", "recordd"}
    finally:
        mgr.stop()
        view.close()
