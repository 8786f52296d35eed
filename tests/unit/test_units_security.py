"""Least privilege on the robot: every generated unit runs as the user edge, sandboxed, with only what its table row
declares, and stays at `systemd-analyze security` exposure ≤ 4.0 (the analysis is offline: no systemd needed)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.common.config import REPO_ROOT
from edge.system.process_config import PROCS, ProcessSpec, procs_for, render_service, unit_name, write_units

THRESHOLD = 40  # tenths: exposure 4.0 (systemd-analyze(1), --threshold=)


def _systemd_version() -> int:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        return 0
    m = re.match(r"systemd (\d+)", subprocess.run([exe, "--version"], capture_output=True, text=True).stdout)
    return int(m.group(1)) if m else 0


SYSTEMD = _systemd_version()
needs_offline_security = pytest.mark.skipif(
    SYSTEMD < 250,
    reason=f"systemd-analyze security --offline needs systemd ≥ 250 (NEWS, v250); here: "
    f"{SYSTEMD or 'no systemd-analyze'} (JetPack 6 ships 249: this check runs on CI)",
)


def _exposure(unit: Path, threshold: int = THRESHOLD) -> tuple[int, float]:
    r = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", f"--threshold={threshold}", str(unit)],
        capture_output=True,
        text=True,
    )
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d)", r.stdout + r.stderr)
    assert m, r.stdout[-500:] + r.stderr[-500:]
    return r.returncode, float(m.group(1))


def _units(tmp_path) -> list[Path]:
    write_units(tmp_path, python=str(Path(sys.executable).resolve()), workdir=str(REPO_ROOT))
    return [tmp_path / unit_name(p) for p in procs_for("robot")]


@needs_offline_security
def test_every_unit_is_at_most_exposure_4(tmp_path):
    scores = {}
    for unit in _units(tmp_path):
        rc, scores[unit.name] = _exposure(unit)
        assert rc == 0 and scores[unit.name] <= 4.0, f"{unit.name}: exposure {scores[unit.name]} > 4.0"
    print("exposure:", scores)  # docs/results.md quotes these


@needs_offline_security
def test_the_threshold_does_fail_an_unsandboxed_unit(tmp_path):
    unit = _units(tmp_path)[0]
    head = unit.read_text().split("User=")[0]  # the unit without its sandbox: as before least privilege
    bare = tmp_path / "edge-bare.service"
    bare.write_text(head + "\n[Install]\nWantedBy=edge.target\n")
    rc, score = _exposure(bare)
    assert rc != 0 and score > 9.0


@needs_offline_security
def test_a_new_row_gets_its_sandbox_from_what_it_declares(tmp_path):
    """E.g. a watchdog: real-time and DDS, like control; it needs no row-specific unit code."""
    watchdog = ProcessSpec(
        name="watchdogd",
        module="edge.controls.watchdogd",
        description="damps when control stops",
        rt_priority=90,
        cpus=(3,),
        needs_dds=True,
    )
    text = render_service(watchdog, "/usr/bin/python3", "/", "/etc/edge/go2.yaml")
    lines = set(text.splitlines())
    assert {"CPUSchedulingPolicy=fifo", "PrivateDevices=yes", "User=edge"} <= lines
    assert "RestrictRealtime=yes" not in lines and any("AF_NETLINK" in x for x in lines)
    (tmp_path / "edge-watchdogd.service").write_text(text)
    assert _exposure(tmp_path / "edge-watchdogd.service")[1] <= 4.0


def test_each_unit_gets_only_what_its_row_declares():
    units = {p.name: set(render_service(p, "/py", "/src", "/etc/edge/go2.yaml").splitlines()) for p in PROCS}
    common = {
        "User=edge",
        "Group=edge",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "UMask=0007",
        "RuntimeDirectoryMode=0750",
    }
    for p in PROCS:
        u = units[p.name]
        assert common <= u, f"{p.name}: missing {common - u}"
        assert ("RestrictRealtime=yes" in u) == (p.rt_priority == 0), p.name
        assert ("DeviceAllow=char-usb_device rw" in u) == (p.needs_usb and not p.needs_gpu), p.name
        assert ("PrivateDevices=yes" in u) == (not p.needs_usb and not p.needs_gpu), p.name
        assert ("CacheDirectory=edge" in u) == p.needs_gpu, p.name
        assert ("StateDirectory=edge/runs" in u) == p.writes_runs, p.name
        assert any("AF_NETLINK" in x for x in u) == (p.needs_dds or p.needs_usb), p.name
        assert ("ReadWritePaths=/run/lock" in u) == p.takes_stack_lock, p.name
        assert not any(x.startswith("AmbientCapabilities=") for x in u), p.name
        rw = [x for x in u if x.startswith("ReadWritePaths=")]
        assert rw in ([], ["ReadWritePaths=/run/lock"]), f"{p.name}: {rw}"
    assert "CPUSchedulingPolicy=fifo" in units["controlsd"] and "LimitRTPRIO=95" in units["controlsd"]


# What a process can import decides what its sandbox must allow: DDS (the Unitree SDK over CycloneDDS), the
# RealSense (pyrealsense2 over libusb / V4L2), the GPU (TensorRT runners, the VLM's PyTorch / TensorRT-LLM).
NEEDS_BY_IMPORT = {
    "needs_dds": ("drivers.unitree",),
    "needs_usb": ("drivers.realsense",),
    "needs_gpu": ("engines.trt_runner", "engines.vlm"),
}


@pytest.mark.parametrize("spec", PROCS, ids=[p.name for p in PROCS])
def test_a_row_declares_every_need_its_imports_have(spec):
    """A process that can reach the DDS driver, the camera driver or a GPU runtime (function-level imports
    included) must declare it, or its unit would lock it out on the robot; and declares nothing it cannot reach."""
    import grimp

    graph = grimp.build_graph("edge", "drivers", "engines", cache_dir=None)
    for need, packages in NEEDS_BY_IMPORT.items():
        reaches = any(graph.chain_exists(importer=spec.module, imported=pkg, as_packages=True) for pkg in packages)
        assert getattr(spec, need) == reaches, (
            f"{spec.name}: {need}={getattr(spec, need)} but imports reach {packages}: {reaches}"
        )


@pytest.mark.parametrize("spec", PROCS, ids=[p.name for p in PROCS])
def test_a_row_that_takes_the_stack_lock_may_write_the_lock_directory(spec):
    import importlib.util

    source = Path(importlib.util.find_spec(spec.module).origin).read_text()
    assert spec.takes_stack_lock == ("acquire_stack_lock(" in source), spec.name
