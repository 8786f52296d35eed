"""The Jetson platform as the OS shows it: L4T / JetPack release, module, power mode, clocks, CPU governor, memory.

Every reader takes `root` (default "/") so tests run on a fake file tree; none raises on a non-Jetson machine (they
return None). Facts and sources: docs/jetson.md §1 (L4T → JetPack table, `/etc/nv_tegra_release` format, module part
numbers, `nvpmodel -q`, `jetson_clocks --show`, unified memory read from /proc/meminfo).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# L4T release → JetPack (jetson-containers' NVIDIA_JETPACK table, docs/jetson.md §1). Unknown → None.
JETPACK_FROM_L4T = {
    "35.3.1": "5.1.1",
    "35.4.1": "5.1.2",
    "35.5.0": "5.1.3",
    "35.6.0": "5.1.4",
    "36.2.0": "6.0 DP",
    "36.3.0": "6.0",
    "36.4.0": "6.1",
    "36.4.2": "6.1.1",
    "36.4.3": "6.2",
    "36.4.4": "6.2.1",
    "36.4.7": "6.2.1",
    "36.5.0": "6.2.1",
}
# TensorRT-LLM v0.12.0-jetson needs JetPack 6.1 (README4Jetson); the engines need TensorRT >= 10 (JetPack 6.1: 10.3).
MIN_L4T = (36, 4, 0)
# Module part numbers (jetson_stats MODULE_NAME_TABLE) → (name, RAM GB).
MODULES: dict[str, tuple[str, int | None]] = {
    "p3701-0005": ("AGX Orin 64GB", 64),
    "p3701-0004": ("AGX Orin 32GB", 32),
    "p3701-0000": ("AGX Orin (developer kit module)", None),
    "p3767-0000": ("Orin NX 16GB", 16),
    "p3767-0001": ("Orin NX 8GB", 8),
    "p3767-0003": ("Orin Nano 8GB", 8),
    "p3767-0004": ("Orin Nano 4GB", 4),
    "p3767-0005": ("Orin Nano 8GB (devkit)", 8),
}


def parse_nv_tegra_release(text: str) -> str | None:
    """First line of /etc/nv_tegra_release, '# R36 (release), REVISION: 4.3, GCID: …' → '36.4.3'; None if not."""
    m = re.search(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    if not m:
        return None
    parts = (m.group(1) + "." + m.group(2)).split(".")
    return ".".join((parts + ["0"])[:3])


def _read(root: str | Path, rel: str) -> str | None:
    try:
        return (Path(root) / rel).read_bytes().decode(errors="replace")
    except OSError:
        return None


def l4t_release(root: str | Path = "/") -> str | None:
    """'36.4.3' on a Jetson, None elsewhere."""
    text = _read(root, "etc/nv_tegra_release")
    return parse_nv_tegra_release(text) if text else None


def version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


def jetpack_for(l4t: str | None) -> str | None:
    return JETPACK_FROM_L4T.get(l4t or "")


def l4t_supported(l4t: str | None) -> str | None:
    """None when this L4T can run the engines (JetPack ≥ 6.1), else the reason, naming the fix."""
    if l4t is None:
        return "not a Jetson (no /etc/nv_tegra_release)"
    if version_tuple(l4t) < MIN_L4T:
        jp = jetpack_for(l4t) or "older than 6.1"
        return (
            f"L4T {l4t} (JetPack {jp}) is too old: TensorRT-LLM 0.12-jetson needs JetPack 6.1+ (L4T 36.4+, TensorRT "
            "10.3); reflash with SDK Manager (JetPack 6.1/6.2) — docs/deployment.md, hardware matrix"
        )
    return None


@dataclass(frozen=True)
class Module:
    model: str  # /proc/device-tree/model, e.g. "NVIDIA Jetson AGX Orin Developer Kit"
    part: str | None  # e.g. p3701-0005
    name: str | None  # e.g. AGX Orin 64GB
    ram_gb: int | None


def module(root: str | Path = "/") -> Module | None:
    model = _read(root, "proc/device-tree/model")
    if model is None:
        return None
    dts = _read(root, "proc/device-tree/nvidia,dtsfilename") or ""
    part = next((p for p in MODULES if p in dts), None)
    name, ram = MODULES.get(part or "", (None, None))
    return Module(model.rstrip("\x00").strip(), part, name, ram)


def meminfo(root: str | Path = "/") -> dict[str, int]:
    """/proc/meminfo in bytes ({'MemTotal': …, 'MemAvailable': …, 'SwapTotal': …}); {} when unreadable.
    On a Jetson CPU and GPU share this memory: budget engines against it (nvidia-smi reads N/A there)."""
    text = _read(root, "proc/meminfo") or ""
    out = {}
    for line in text.splitlines():
        m = re.match(r"(\w+):\s+(\d+)\s*kB", line)
        if m:
            out[m.group(1)] = int(m.group(2)) * 1024
    return out


def cpu_governors(root: str | Path = "/") -> dict[str, str]:
    """{cpuN: governor} from /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor."""
    base = Path(root) / "sys/devices/system/cpu"
    out = {}
    for f in sorted(base.glob("cpu[0-9]*/cpufreq/scaling_governor")):
        try:
            out[f.parent.parent.name] = f.read_text().strip()
        except OSError:
            continue
    return out


def parse_nvpmodel(text: str) -> str | None:
    """`nvpmodel -q` output → the power mode name ('NV Power Mode: MAXN' → 'MAXN')."""
    m = re.search(r"NV Power Mode:\s*(\S+)", text)
    return m.group(1) if m else None


def parse_jetson_clocks(text: str) -> dict[str, bool]:
    """`jetson_clocks --show` → {engine: locked}: CPU / GPU lines are locked when MinFreq == MaxFreq (== CurrentFreq
    when given), EMC when its current frequency equals its maximum (jetson_stats jetson_clocks.py)."""
    out = {}
    for line in text.splitlines():
        vals = dict(re.findall(r"(MinFreq|MaxFreq|CurrentFreq|FreqOverride)=(\d+)", line))
        name = line.split(":", 1)[0].strip() if ":" in line.split(" ", 1)[0] else line.split(" ", 1)[0]
        if line.startswith("EMC") and "MaxFreq" in vals and "CurrentFreq" in vals:
            out["EMC"] = vals["CurrentFreq"] == vals["MaxFreq"]
        elif "MaxFreq" in vals and "MinFreq" in vals:
            out[name] = vals["MinFreq"] == vals["MaxFreq"]
    return out


def run_tool(argv: list[str], timeout_s: float = 5.0) -> str | None:
    """stdout of a platform tool (nvpmodel, jetson_clocks), or None when absent or failing."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout if res.returncode == 0 else None


def power_mode() -> str | None:
    out = run_tool(["nvpmodel", "-q"])
    return parse_nvpmodel(out) if out else None


def clocks_locked() -> dict[str, bool] | None:
    out = run_tool(["jetson_clocks", "--show"])
    return parse_jetson_clocks(out) if out else None
