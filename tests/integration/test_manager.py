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
    time.sleep(1.5)
    mgr.children["navigatord"].kill()
    t0 = time.monotonic()
    assert mgr.supervise() == 1
    assert time.monotonic() - t0 < 5
    assert all(c.poll() is not None for c in mgr.children.values())
    assert mgr.children["recordd"].returncode == 0  # asked to stop, stopped cleanly


def test_sigint_stops_all_cleanly(run_dir):
    mgr = _manager(run_dir)
    mgr.start()
    threading.Timer(1.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    assert mgr.supervise() == 0
    assert {n: c.returncode for n, c in mgr.children.items()} == {"navigatord": 0, "recordd": 0}
    assert read_recording(f"{run_dir}/bus.mcap").complete  # stopped cleanly: MCAP summary and footer written
