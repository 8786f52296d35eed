from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.common.config import REPO_ROOT
from edge.msg.messages import TOPICS
from edge.system.process_config import PROCS, ProcessSpec, check_table, procs_for, render_units, unit_name, write_units


def test_table_is_consistent():
    check_table()
    assert {p.name for p in procs_for("sim")} >= {"simd", "controlsd", "navigatord"}
    assert "simd" not in {p.name for p in procs_for("robot")}
    subscribed = {t for p in PROCS for t in p.subs}
    published = {t for p in PROCS for t in p.pubs}
    operator_topics = {"actionText", "estop", "operatorCommand", "instruction", "simRemote"}  # edge say / … / remote
    assert subscribed <= published | operator_topics
    assert set(TOPICS) >= subscribed | published


def test_one_name_per_process_module_unit_and_logger():
    for p in PROCS:
        module = importlib.import_module(p.module)
        assert p.module.rsplit(".", 1)[-1] == p.name
        assert module.log.name == p.name, f"{p.module} logs as {module.log.name!r}"
        assert unit_name(p) == f"edge-{p.name}.service"
    with pytest.raises(ValueError, match="must live in a module named 'navigator'"):
        ProcessSpec(name="navigator", module="edge.navigation.navigatord", description="x")


def test_duplicate_publisher_is_refused():
    twin = ProcessSpec(name="x", module="edge.x", description="x", pubs=("controlState",))
    with pytest.raises(ValueError, match="published by both"):
        check_table(PROCS + (twin,))


def test_launch_after_names_other_processes():
    bad = next(p for p in PROCS if p.name == "navigatord").model_copy(update={"launch_after": ("vlm",)})
    with pytest.raises(ValueError, match="launch_after names 'vlm'"):
        check_table(tuple(bad if p.name == "navigatord" else p for p in PROCS))


def test_unknown_process_name_is_refused():
    with pytest.raises(ValueError, match="unknown process"):
        procs_for("sim", only=["contrlsd"])


def test_committed_units_equal_generated():
    committed = REPO_ROOT / "systemd"
    for name, text in render_units().items():
        assert (committed / name).read_text() == text, f"{name} is stale: run `make units`"
    assert {p.name for p in committed.iterdir()} == set(render_units())


def test_control_unit_has_realtime_watchdog_and_damping():
    unit = render_units()["edge-controlsd.service"]
    for line in (
        "Type=notify",
        "WatchdogSec=500ms",
        "CPUSchedulingPolicy=fifo",
        "CPUSchedulingPriority=80",
        "CPUAffinity=3",
        "ExecStopPost=/opt/edge/venv/bin/python -m edge.controls.damp",
        "Restart=on-failure",
    ):
        assert line in unit


def test_every_unit_is_notify_with_a_start_bound():
    """READY=1 comes from the process's health (edge.system.health) when it reports ready; loading progress extends
    TimeoutStartSec by the same amount (EXTEND_TIMEOUT_USEC), so the bound is per loading stage."""
    for p in procs_for("robot"):
        unit = render_units()[unit_name(p)]
        assert "Type=notify" in unit and "NotifyAccess=main" in unit, p.name
        assert f"TimeoutStartSec={p.start_timeout_s:g}s" in unit, p.name
        assert ("WatchdogSec=" in unit) == bool(p.watchdog_s), p.name
    assert next(p for p in PROCS if p.name == "vlmd").start_timeout_s >= 120  # an 8B model stage on the Orin


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_accepts_units(tmp_path):
    # Same generator, paths that exist here (verify checks that ExecStart= binaries exist).
    write_units(
        tmp_path,
        python=str(Path(sys.executable).resolve()),
        workdir=str(REPO_ROOT),
        config=str(REPO_ROOT / "configs" / "go2.yaml"),
    )
    files = sorted(str(p) for p in tmp_path.iterdir())
    r = subprocess.run(
        ["systemd-analyze", "verify", *files],
        capture_output=True,
        text=True,
        env={"SYSTEMD_UNIT_PATH": f"{tmp_path}:", "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
    # and it does reject a broken unit
    (tmp_path / "edge-controlsd.service").write_text(
        render_units()["edge-controlsd.service"].replace("CPUSchedulingPolicy=fifo", "CPUSchedulingPolicy=fastest")
    )
    r = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "edge-controlsd.service")],
        capture_output=True,
        text=True,
        env={"SYSTEMD_UNIT_PATH": f"{tmp_path}:", "PATH": "/usr/bin:/bin"},
    )
    assert "fastest" in r.stderr
