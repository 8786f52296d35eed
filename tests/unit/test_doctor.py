"""`edge doctor`: each probe judged pass / warn / fail with the fix, on a fake Jetson file tree and on this machine
(which lacks the Orin: the run must say exactly what)."""

from __future__ import annotations

from pathlib import Path

from drivers import jetson
from edge.tools.doctor import disk_check, engine_checks, format_checks, platform_checks, realtime_check

RELEASE = "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8 01:49:37 UTC"


def fake_orin(root: Path, release: str = RELEASE, governor: str = "performance") -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "nv_tegra_release").write_text(release + "\n")
    dt = root / "proc" / "device-tree"
    dt.mkdir(parents=True)
    (dt / "model").write_bytes(b"NVIDIA Jetson AGX Orin Developer Kit\x00")
    (dt / "nvidia,dtsfilename").write_bytes(b"/dvs/tegra234-p3701-0005-p3737-0000.dts\x00")
    (root / "proc" / "meminfo").write_text(
        "MemTotal:       65536000 kB\nMemAvailable:   60000000 kB\nSwapTotal: 0 kB\n"
    )
    for i in range(2):
        d = root / "sys" / "devices" / "system" / "cpu" / f"cpu{i}" / "cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_governor").write_text(governor + "\n")
    return root


def test_jetson_facts_from_the_file_tree(tmp_path):
    root = fake_orin(tmp_path)
    assert jetson.l4t_release(root) == "36.4.3" and jetson.jetpack_for("36.4.3") == "6.2"
    m = jetson.module(root)
    assert m is not None and m.name == "AGX Orin 64GB" and m.ram_gb == 64
    assert jetson.meminfo(root)["MemTotal"] == 65536000 * 1024
    assert jetson.parse_nvpmodel("NV Power Mode: MAXN\n0\n") == "MAXN"
    clocks = jetson.parse_jetson_clocks(
        "SOC family:tegra234  Machine:NVIDIA Jetson AGX Orin\n"
        "cpu0: Online=1 Governor=schedutil MinFreq=1728000 MaxFreq=2201600 CurrentFreq=1728000\n"
        "GPU MinFreq=1300500000 MaxFreq=1300500000 CurrentFreq=1300500000\n"
        "EMC MinFreq=204000000 MaxFreq=3199000000 CurrentFreq=3199000000 FreqOverride=1\n"
    )
    assert clocks == {"cpu0": False, "GPU": True, "EMC": True}


def test_platform_checks_on_a_fake_orin(tmp_path):
    checks = {c.name: c for c in platform_checks(str(fake_orin(tmp_path)))}
    assert checks["L4T / JetPack"].status == "pass" and "JetPack 6.2" in checks["L4T / JetPack"].detail
    assert checks["module"].detail.endswith("(AGX Orin 64GB)")
    assert checks["CPU governor"].status == "pass" and checks["memory"].status == "pass"
    assert checks["swap"].status == "warn"


def test_jetpack_5_and_6_0_fail_with_the_fix(tmp_path):
    for rel, jp in (
        ("# R35 (release), REVISION: 3.1, GCID: 1", "5.1.1"),
        ("# R36 (release), REVISION: 3.0, GCID: 1", "6.0"),
    ):
        root = fake_orin(tmp_path / jp, release=rel, governor="schedutil")
        checks = {c.name: c for c in platform_checks(str(root))}
        c = checks["L4T / JetPack"]
        assert c.status == "fail" and f"JetPack {jp}" in c.detail and "reflash" in c.detail
        assert checks["CPU governor"].status == "warn"


def test_engine_manifests_are_judged(tmp_path):
    [c] = engine_checks(tmp_path)
    assert c.status == "fail" and "build_engines.py" in c.fix


def test_report_ends_with_what_is_missing(tmp_path):
    checks = platform_checks(str(tmp_path)) + [disk_check(tmp_path / "engines"), realtime_check()]
    text = format_checks(checks)
    assert "FAIL  platform  L4T / JetPack: not a Jetson" in text
    assert text.splitlines()[-1].startswith("this machine lacks: L4T / JetPack")
