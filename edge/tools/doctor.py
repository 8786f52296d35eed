"""`edge doctor`: every check a team needs before the first walk, each pass / warn / fail with the fix.

    edge doctor [--engines DIR] [--lowstate-s 2] [--skip-robot]     (exit 1 when a check fails)

Runs anywhere: on a development machine it ends with the list of what this machine lacks for the robot. The probes
live where they belong (drivers.jetson, engines.cudart / engines.manifest, drivers.unitree.go2, drivers.realsense,
calibration.store); this module only judges their answers. Versions and sources: docs/jetson.md, docs/deployment.md.
"""

from __future__ import annotations

import fcntl
import importlib
import importlib.metadata
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from edge.tools.checks import GB, Check, Status


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _vt(v: str) -> tuple[int, ...]:
    from drivers.jetson import version_tuple

    return version_tuple(v)


# ------------------------------------------------------------------------------------------------------ platform
def platform_checks(root: str = "/") -> list[Check]:
    from drivers import jetson

    out = []
    l4t = jetson.l4t_release(root)
    problem = jetson.l4t_supported(l4t)
    if problem is None:
        out.append(Check("platform", "L4T / JetPack", "pass", f"L4T {l4t} (JetPack {jetson.jetpack_for(l4t)})"))
    else:
        out.append(Check("platform", "L4T / JetPack", "fail", problem, "JetPack 6.1 / 6.2 on an Orin"))
    mod = jetson.module(root)
    if mod is not None:
        out.append(Check("platform", "module", "pass", f"{mod.model} ({mod.name or mod.part or 'unknown part'})"))
    mode = jetson.power_mode()
    if mode is None:
        out.append(Check("platform", "power mode", "fail", "nvpmodel not available", "run on the Orin"))
    else:
        ok = mode.upper().startswith("MAXN")
        out.append(
            Check("platform", "power mode", "pass" if ok else "warn", mode, "" if ok else "sudo nvpmodel -m 0 (MAXN)")
        )
    clocks = jetson.clocks_locked()
    if clocks is None:
        out.append(Check("platform", "clocks", "fail", "jetson_clocks not available", "run on the Orin"))
    else:
        loose = sorted(k for k, v in clocks.items() if not v)
        out.append(
            Check(
                "platform",
                "clocks",
                "warn" if loose else "pass",
                f"not locked: {', '.join(loose)}" if loose else "CPU / GPU / EMC at maximum",
                "sudo jetson_clocks" if loose else "",
            )
        )
    govs = jetson.cpu_governors(root)
    slow = sorted({g for g in govs.values() if g != "performance"})
    out.append(
        Check(
            "platform",
            "CPU governor",
            "warn" if slow or not govs else "pass",
            f"{len(govs)} CPUs: {', '.join(sorted(set(govs.values()))) or 'unknown'}",
            "set scaling_governor to performance (jetson_clocks does it)" if slow or not govs else "",
        )
    )
    mem = jetson.meminfo(root)
    total, avail, swap = mem.get("MemTotal", 0), mem.get("MemAvailable", 0), mem.get("SwapTotal", 0)
    out.append(
        Check(
            "platform",
            "memory",
            "pass" if total >= 15 * GB else "warn",
            f"{total / GB:.1f} GB total, {avail / GB:.1f} GB available, swap {swap / GB:.1f} GB",
            "" if total >= 15 * GB else "< 16 GB: see `build_engines.py --plan` (remote offload)",
        )
    )
    if swap == 0:
        out.append(Check("platform", "swap", "warn", "no swap", "trtllm-build peaks above steady state: add swap"))
    return out


def disk_check(engines_dir: Path, need_gb: float = 20.0) -> Check:
    where = engines_dir
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free
    ok = free >= need_gb * GB
    return Check(
        "platform",
        "free disk for engines",
        "pass" if ok else "warn",
        f"{free / GB:.0f} GB free at {where}",
        "" if ok else f"≥ {need_gb:.0f} GB: checkpoint + TensorRT-LLM checkpoint + engines",
    )


# ------------------------------------------------------------------------------------------------------ packages
def package_checks() -> list[Check]:
    out = []

    def imports(mod: str) -> str | None:
        try:
            importlib.import_module(mod)
            return None
        except Exception as e:  # broken installs raise anything
            return f"{type(e).__name__}: {e}"

    trt = _version("tensorrt")
    err = imports("tensorrt")
    if err or trt is None:
        out.append(
            Check(
                "packages",
                "tensorrt",
                "fail",
                err or "not installed",
                "JetPack's TensorRT: the venv needs --system-site-packages (scripts/setup.sh)",
            )
        )
    else:
        ok = (10, 3) <= _vt(trt)[:2] < (11, 0)
        out.append(
            Check("packages", "tensorrt", "pass" if ok else "fail", trt, "" if ok else "TensorRT 10.3 (JetPack 6)")
        )
    cp = _version("cuda-python")
    if cp is None:
        out.append(Check("packages", "cuda-python", "fail", "not installed", "pip install 'cuda-python>=12.6.1,<12.7'"))
    else:
        ok = (12, 6, 1) <= _vt(cp) < (12, 7)
        why = "13.x has no cuda.cudart (TensorRT-LLM 0.12 imports it)" if _vt(cp) >= (13,) else "JetPack 6: 12.6.x"
        out.append(
            Check(
                "packages",
                "cuda-python",
                "pass" if ok else "fail",
                cp,
                "" if ok else f"{why}: 'cuda-python>=12.6.1,<12.7'",
            )
        )
    tl = _version("tensorrt_llm") or _version("tensorrt-llm")
    err = imports("tensorrt_llm") if tl else "not installed"
    if err:
        out.append(
            Check("packages", "tensorrt_llm", "fail", err, "TensorRT-LLM v0.12.0-jetson wheel (scripts/setup.sh)")
        )
    else:
        ok = _vt(tl or "0")[:2] == (0, 12)
        out.append(Check("packages", "tensorrt_llm", "pass" if ok else "warn", tl or "?", "" if ok else "0.12-jetson"))
    np_v = _version("numpy") or "0"
    out.append(
        Check("packages", "numpy", "pass" if _vt(np_v) < (2,) else "fail", np_v, "" if _vt(np_v) < (2,) else "numpy<2")
    )
    tv = _version("transformers")
    if tv is not None:
        ok = _vt(tv) <= (4, 42, 4)
        out.append(
            Check("packages", "transformers", "pass" if ok else "warn", tv, "" if ok else "TensorRT-LLM 0.12: ≤ 4.42.4")
        )
    torch_v = _version("torch")
    if torch_v is None:
        out.append(Check("packages", "torch", "fail", "not installed", "NVIDIA's Jetson torch wheel (setup.sh)"))
    else:
        try:
            import torch

            cuda = torch.cuda.is_available()
        except Exception as e:
            cuda, torch_v = False, f"{torch_v} ({type(e).__name__}: {e})"
        out.append(
            Check(
                "packages",
                "torch",
                "pass" if cuda else "fail",
                f"{torch_v}, CUDA {'available' if cuda else 'not available'}",
                "" if cuda else "NVIDIA's Jetson torch 2.5.0a0+872d972e41.nv24.08 (PyPI's aarch64 torch has no GPU)",
            )
        )
    return out


def cuda_check() -> Check:
    from engines.cudart import detect_cuda, load_cudart

    cudart = load_cudart()
    got = detect_cuda(cudart) if cudart is not None else {}
    if not got:
        return Check("gpu", "CUDA device", "fail", "no CUDA driver / device visible", "run on the Orin (JetPack 6)")
    return Check(
        "gpu",
        "CUDA device",
        "pass",
        f"{got['gpu_name']}, compute capability {got['compute_capability']}, CUDA {got['cuda']}",
    )


def engine_checks(engines_dir: Path) -> list[Check]:
    from engines.manifest import ManifestError, verify

    manifests = sorted(engines_dir.rglob("*.manifest.json")) if engines_dir.is_dir() else []
    if not manifests:
        return [
            Check(
                "engines",
                "manifests",
                "fail",
                f"none under {engines_dir}",
                "python build_engines.py --config configs/engines.yaml",
            )
        ]
    out = []
    for m in manifests:
        try:
            manifest, reasons = verify(m)
        except (ManifestError, OSError) as e:
            out.append(Check("engines", m.name, "fail", str(e), "rebuild: build_engines.py --force"))
            continue
        fallback = manifest.backend in ("onnxruntime", "transformers") and manifest.kind in ("vision", "llm")
        status: Status = "fail" if reasons else ("warn" if fallback else "pass")
        detail = "; ".join(reasons) if reasons else f"{manifest.backend} {manifest.precision} matches this machine"
        fix = "rebuild on this machine: build_engines.py" if reasons else ""
        if fallback and not reasons:
            detail += " (a development fallback: slow / large at real scale)"
            fix = "build the TensorRT engines on the Orin"
        out.append(Check("engines", str(m.relative_to(engines_dir)), status, detail, fix))
    return out


# ------------------------------------------------------------------------------------------------------ robot link
def ipv4_of(interface: str) -> str | None:
    """The interface's IPv4 address (SIOCGIFADDR), None when it has none or does not exist."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", interface.encode()[:15]))  # SIOCGIFADDR
        return socket.inet_ntoa(packed[20:24])
    except OSError:
        return None
    finally:
        s.close()


def nic_check(interface: str, profile: str = "robot") -> Check:
    """The robot profile needs the NIC up on the Go2's 192.168.123.x subnet; the simulator only needs it to exist."""
    state = Path(f"/sys/class/net/{interface}/operstate")
    if not state.exists():
        return Check("robot", f"NIC {interface}", "fail", "no such interface", "set robot.interface in go2.yaml")
    up = state.read_text().strip()
    addr = ipv4_of(interface)
    subnet_ok = profile == "sim" or (addr is not None and addr.startswith("192.168.123."))
    ok = up in ("up", "unknown") and addr is not None and subnet_ok
    return Check(
        "robot",
        f"NIC {interface}",
        "pass" if ok else "fail",
        f"{up}, address {addr or 'none'}",
        "" if ok else "connect the Go2's Ethernet; give the NIC a 192.168.123.x/24 address (not .161, the robot's)",
    )


def lowstate_check(domain: int, interface: str, seconds: float, profile: str = "robot") -> Check:
    from drivers.unitree.go2 import collect_lowstate

    try:
        states = collect_lowstate(domain, interface, seconds)
    except Exception as e:  # DDS refuses the interface, …
        return Check("robot", "LowState", "fail", f"{type(e).__name__}: {e}", "check robot.interface / dds_domain")
    if not states:
        return Check(
            "robot",
            f"LowState on domain {domain}",
            "fail",
            f"nothing on rt/lowstate in {seconds:.0f} s",
            "start the simulator: edge run --only simd"
            if profile == "sim"
            else "robot on, Ethernet connected, domain 0",
        )
    span = states[-1].recv_mono_s - states[0].recv_mono_s
    rate = (len(states) - 1) / span if span > 0 else 0.0
    return Check("robot", f"LowState on domain {domain}", "pass", f"{len(states)} messages, {rate:.0f} Hz")


def realsense_check() -> Check:
    from drivers.realsense import list_devices

    try:
        devices = list_devices()
    except ImportError:
        return Check("robot", "RealSense", "fail", "pyrealsense2 not installed", "pip install pyrealsense2 (setup.sh)")
    if not devices:
        return Check("robot", "RealSense", "fail", "no device found", "plug the camera into a USB 3 port")
    slow = [d for d in devices if not d["usb"].startswith("3")]
    detail = ", ".join(f"{d['name']} {d['serial']} USB {d['usb']}" for d in devices)
    return Check(
        "robot",
        "RealSense on USB 3",
        "warn" if slow else "pass",
        detail,
        "USB 2 limits resolution / fps: use a 5 Gb/s port and cable" if slow else "",
    )


def realtime_check() -> Check:
    """SCHED_FIFO 80 (controlsd's) allowed? Tried in a child process, so this one is not changed."""
    code = "import os; os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(80))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if res.returncode == 0:
        return Check("robot", "real-time scheduling", "pass", "SCHED_FIFO 80 permitted")
    return Check(
        "robot",
        "real-time scheduling",
        "fail",
        res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "refused",
        "run controlsd as its systemd unit (LimitRTPRIO) or grant rtprio in /etc/security/limits.conf",
    )


# ------------------------------------------------------------------------------------------------------ all
def run_doctor(cfg, engines_dir: Path, lowstate_s: float = 2.0, robot: bool = True) -> list[Check]:
    from edge.tools.calibrate import calibration_checks

    checks = platform_checks() + [disk_check(engines_dir)] + package_checks() + [cuda_check()]
    checks += engine_checks(engines_dir)
    if robot:
        nic = nic_check(cfg.robot.interface, cfg.profile)
        checks.append(nic)
        if nic.status == "pass":
            checks.append(lowstate_check(cfg.robot.dds_domain, cfg.robot.interface, lowstate_s, cfg.profile))
        checks += [realsense_check(), realtime_check()]
    checks += calibration_checks(cfg)
    return checks


def format_checks(checks: list[Check]) -> str:
    mark = {"pass": "PASS", "warn": "WARN", "fail": "FAIL"}
    lines = []
    for c in checks:
        lines.append(f"{mark[c.status]}  {c.area:9s} {c.name}: {c.detail}")
        if c.fix and c.status != "pass":
            lines.append(f"{'':15s}fix: {c.fix}")
    failed = [c for c in checks if c.status == "fail"]
    warned = [c for c in checks if c.status == "warn"]
    lines.append(f"\n{len(checks) - len(failed) - len(warned)} pass, {len(warned)} warn, {len(failed)} fail")
    if failed:
        lines.append("this machine lacks: " + "; ".join(f"{c.name}" for c in failed))
    return "\n".join(lines)


def main(args) -> int:
    from edge.common.config import load_config
    from edge.system.process_main import parse_overrides

    cfg = load_config(args.config, parse_overrides(args.set))
    checks = run_doctor(cfg, Path(args.engines), args.lowstate_s, robot=not args.skip_robot)
    if args.json:
        print(json.dumps([asdict(c) for c in checks], indent=1))
    else:
        print(format_checks(checks))
    return 1 if any(c.status == "fail" for c in checks) else 0


def add_parser(sub) -> None:
    p = sub.add_parser("doctor", help="check this machine, its engines, the robot link and calibration")
    p.add_argument("--engines", default=os.environ.get("EDGE_ENGINES", "/opt/edge/engines"))
    p.add_argument("--lowstate-s", type=float, default=2.0, help="how long to listen for LowState")
    p.add_argument("--skip-robot", action="store_true", help="no NIC / DDS / camera / real-time checks")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=main)
