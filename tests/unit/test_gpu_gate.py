"""The GPU tests' gate (tests/gpu/gpu_required.py): skip only where the platform clearly has no GPU stack."""

from __future__ import annotations

from tests.gpu.gpu_required import gpu_platform, missing


def test_platform_detection(tmp_path):
    assert gpu_platform(tmp_path) is None
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "nv_tegra_release").write_text("# R36 (release), REVISION: 4.3, GCID: 1\n")
    assert gpu_platform(tmp_path) == "this is a Jetson (L4T)"
    other = tmp_path / "x86"
    (other / "proc" / "driver" / "nvidia").mkdir(parents=True)
    (other / "proc" / "driver" / "nvidia" / "version").write_text("NVRM version: 550\n")
    assert gpu_platform(other) == "an NVIDIA driver is loaded"


def test_import_problems_are_named():
    assert missing(("json",)) == []
    [problem] = missing(("tensorrt_llm_not_here",))
    assert problem.startswith("tensorrt_llm_not_here: ModuleNotFoundError")
