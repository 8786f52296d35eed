"""scripts/setup.sh picks the install path from the platform (a fake root with /etc/nv_tegra_release stands in for
the Orin): x86 as always; JetPack 6.1/6.2 → a venv that sees JetPack's TensorRT, the Jetson extras and constraints,
wheels from the folder / index the user names; JetPack 5 and 6.0 refused with the reason and the fix."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _plan(tmp_path: Path, release: str | None, **env: str) -> subprocess.CompletedProcess:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True, exist_ok=True)
    if release is not None:
        (root / "etc" / "nv_tegra_release").write_text(release + "\n")
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "setup.sh"), "--plan", str(tmp_path / "venv")],
        capture_output=True,
        text=True,
        env={**os.environ, "EDGE_ROOTFS": str(root), **env},
        timeout=60,
    )


def test_x86_path_is_unchanged(tmp_path):
    res = _plan(tmp_path, None)
    assert res.returncode == 0, res.stderr
    assert "-e .[sim,go2,realsense,export,dev]" in res.stdout and "--system-site-packages" not in res.stdout


@pytest.mark.parametrize("rev, jp", [("4.3", "6.2"), ("4.0", "6.1")])
def test_jetpack_6_1_and_6_2_get_the_jetson_path(tmp_path, rev, jp):
    res = _plan(
        tmp_path,
        f"# R36 (release), REVISION: {rev}, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8",
        EDGE_JETSON_WHEELS="/opt/jetson-wheels",
    )
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert f"L4T 36.{rev}" in out and "venv: python3 -m venv --system-site-packages" in out
    assert (
        "--find-links /opt/jetson-wheels -c requirements/jetpack6-constraints.txt "
        "-e .[go2,realsense,export,jetson,test]" in out
    )
    assert "tensorrt_llm: pip install --no-deps tensorrt_llm==0.12.0" in out


def test_wheel_index_url_and_offline_wheelhouse(tmp_path):
    rel = "# R36 (release), REVISION: 4.3, GCID: 1, BOARD: generic, EABI: aarch64, DATE: x"
    out = _plan(tmp_path, rel, EDGE_JETSON_WHEELS="https://example.invalid/jp6/cu126").stdout
    assert "--extra-index-url https://example.invalid/jp6/cu126" in out
    out = _plan(tmp_path, rel, EDGE_WHEELHOUSE="/media/usb/wheelhouse").stdout
    assert "pip install --no-index --find-links /media/usb/wheelhouse" in out
    out = _plan(tmp_path, rel).stdout
    assert "missing: EDGE_JETSON_WHEELS" in out


@pytest.mark.parametrize(
    "release, l4t",
    [
        ("# R35 (release), REVISION: 3.1, GCID: 32827747", "35.3.1"),
        ("# R36 (release), REVISION: 3.0, GCID: 1", "36.3.0"),
    ],
)
def test_jetpack_5_and_6_0_are_refused_with_the_fix(tmp_path, release, l4t):
    res = _plan(tmp_path, release)
    assert res.returncode == 1
    assert f"L4T {l4t}" in res.stderr and "JetPack 6.1 or 6.2" in res.stderr and "docs/deployment.md" in res.stderr


def _apt_wait(tmp_path: Path, cmd: str, wait_s: int) -> subprocess.CompletedProcess:
    """Runs setup.sh's apt_wait on CMD (a stand-in for apt-get that prints apt 2.6's lock message)."""
    script = f"""set -euo pipefail
say() {{ echo "setup: $*"; }}; die() {{ echo "setup: $*" >&2; exit 1; }}
eval "$(sed -n '/^apt_wait() {{/,/^}}/p' {ROOT / "scripts" / "setup.sh"})"
apt_wait bash -c {cmd!r}
echo done"""
    env = {**os.environ, "EDGE_APT_LOCK_WAIT_S": str(wait_s)}
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)


LOCKED = 'echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 42 (apt-get)" >&2; exit 100'


def test_apt_waits_for_a_held_lock_then_runs(tmp_path):
    # "held" while the counter file is short: fails twice with apt's lock message, then succeeds
    res = _apt_wait(tmp_path, f"echo x >> n; [ $(wc -l < n) -ge 3 ] || {{ {LOCKED}; }}", 30)
    assert res.returncode == 0, res.stderr
    assert "apt is busy (held by process 42 (apt-get)): waiting" in res.stdout and res.stdout.endswith("done\n")
    assert (tmp_path / "n").read_text().count("x") == 3


def test_apt_lock_wait_is_bounded_and_other_errors_fail_at_once(tmp_path):
    res = _apt_wait(tmp_path, LOCKED, 1)
    assert res.returncode == 1 and "apt's lock still held after 1 s" in res.stderr
    res = _apt_wait(tmp_path, 'echo "E: Unable to locate package nope" >&2; exit 100', 30)
    assert res.returncode == 1 and "Unable to locate package nope" in res.stderr and "failed:" in res.stderr
