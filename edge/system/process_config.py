"""The process table (PROCS): one record per robot process. It drives `edge run` (subprocesses for dev and the
simulator) and the systemd units in systemd/ (generated; a test keeps the committed files equal to the output)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from edge.common.config import Frozen
from edge.msg.messages import TOPICS

Profile = Literal["sim", "robot"]


class ProcessSpec(Frozen):
    name: str
    module: str
    description: str
    cpus: tuple[int, ...] = ()  # affinity on the Orin (cores 0–5 on Orin NX/AGX 8-core variants)
    rt_priority: int = Field(0, ge=0, le=99)  # SCHED_FIFO priority; 0 = normal scheduling
    nice: int = 0
    restart: Literal["always", "on-failure", "no"] = "on-failure"
    watchdog_s: float = 0.0  # systemd WatchdogSec, fed only while the loop keeps its deadlines
    # Start-up bound without progress, s: systemd TimeoutStartSec (each loading-progress report extends it by this
    # much, EXTEND_TIMEOUT_USEC) and the launcher's wait for the process's ready state (edge.system.health).
    start_timeout_s: float = Field(60.0, gt=0, le=3600)
    # `edge run` starts this process only once these (where they are part of the run) report ready: on a 2-core
    # development machine a model load or renderer start-up starves a stand-up that runs at the same time. The robot's
    # systemd units are not ordered by it (control has its own cores and SCHED_FIFO there).
    launch_after: tuple[str, ...] = ()
    damp_on_stop: bool = False  # ExecStopPost= runs edge.controls.damp after any stop, crash or restart
    pubs: tuple[str, ...] = ()
    subs: tuple[str, ...] = ()
    profiles: tuple[Profile, ...] = ("sim", "robot")
    # What the process needs on the robot beyond the common sandbox (render_sandbox); real-time follows rt_priority.
    needs_dds: bool = False  # the robot's NIC for DDS: UDP multicast, netlink for the interface lookup
    needs_usb: bool = False  # USB and V4L2 devices (the RealSense), groups video and plugdev
    needs_gpu: bool = False  # the Jetson GPU's device nodes (group video) and a cache directory (CUDA JIT, models)
    writes_runs: bool = False  # the recordings directory, /var/lib/edge/runs (StateDirectory=edge/runs)
    takes_stack_lock: bool = False  # the DDS-domain lock in /run/lock (edge.controls.commander), shared machine-wide

    @model_validator(mode="after")
    def _one_name(self):
        """One name per process: process = module (edge.<package>.<name>) = unit (edge-<name>.service) = logger."""
        if self.module.rsplit(".", 1)[-1] != self.name:
            raise ValueError(f"process {self.name!r} must live in a module named {self.name!r}, not {self.module!r}")
        return self


PROCS: tuple[ProcessSpec, ...] = (
    ProcessSpec(
        name="simd",
        module="edge.sim.simd",
        description="MuJoCo Go2 speaking the Go2 DDS topics",
        rt_priority=60,  # stands in for the robot's motor boards: below control and the watchdog
        restart="no",
        pubs=("simTruth",),
        subs=("simRemote",),
        profiles=("sim",),
        needs_dds=True,
    ),
    ProcessSpec(
        name="simcamd",
        module="edge.sim.simcamd",
        description="simulated head camera (MuJoCo offscreen)",
        restart="no",
        pubs=("cameraFrame",),
        subs=("simTruth",),
        profiles=("sim",),
    ),
    ProcessSpec(
        name="camerad",
        module="edge.camera.camerad",
        description="RealSense colour (and depth) frames",
        cpus=(1,),
        restart="always",
        pubs=("cameraFrame",),
        profiles=("robot",),
        needs_usb=True,
    ),
    ProcessSpec(
        name="controlsd",
        module="edge.controls.controlsd",
        description="50 Hz joint control loop",
        cpus=(3,),
        rt_priority=80,
        launch_after=("vlmd", "simcamd", "camerad"),
        restart="on-failure",
        watchdog_s=0.5,
        damp_on_stop=True,
        pubs=("controlState", "odometry"),
        subs=("velocityCommand", "estop", "operatorCommand", "watchdogState"),
        needs_dds=True,
        takes_stack_lock=True,
        needs_gpu=True,  # control.backend tensorrt runs the policy on the GPU
    ),
    ProcessSpec(
        name="watchdogd",
        module="edge.controls.watchdogd",
        description="LowCmd watchdog: damps whenever control's LowCmd stream stops",
        cpus=(2,),  # not control's core: a control spinning at FIFO 80 must not starve it
        rt_priority=70,  # highest after control
        restart="always",
        watchdog_s=0.5,
        pubs=("watchdogState",),
        needs_dds=True,
    ),
    ProcessSpec(
        name="navigatord",
        module="edge.navigation.navigatord",
        description="language actions → velocity setpoints (open or closed loop)",
        cpus=(2,),
        nice=-5,
        restart="always",
        pubs=("velocityCommand", "actionResult", "navigatorStatus", "navigatorStep"),
        subs=("actionText", "odometry", "controlState"),
    ),
    ProcessSpec(
        name="vlmd",
        module="edge.vlm.vlmd",
        description="navigation VLM: instruction + frames → next action",
        cpus=(4, 5),
        start_timeout_s=300.0,  # per loading stage: an 8B checkpoint read or engine deserialise on the Orin
        restart="always",
        pubs=("actionText", "vlmOutput", "vlmStep"),
        subs=("instruction", "cameraFrame", "controlState", "navigatorStatus", "actionResult"),
        needs_gpu=True,
    ),
    ProcessSpec(
        name="recordd",
        module="edge.system.recordd",
        description="records the bus to MCAP for Foxglove, reports and replay",
        nice=10,
        restart="always",
        writes_runs=True,
        subs=(
            "actionResult",
            "controlState",
            "odometry",
            "velocityCommand",
            "navigatorStatus",
            "simTruth",
            "vlmOutput",
            "watchdogState",
            "navigatorStep",
            "vlmStep",
            "cameraFrame",
        ),
    ),
)


def procs_for(profile: Profile, only: list[str] | None = None, block: list[str] | None = None) -> list[ProcessSpec]:
    names = {p.name for p in PROCS}
    for n in (only or []) + (block or []):
        if n not in names:
            raise ValueError(f"unknown process {n!r}; known: {sorted(names)}")
    return [p for p in PROCS if profile in p.profiles and (not only or p.name in only) and p.name not in (block or [])]


def check_table(procs: tuple[ProcessSpec, ...] = PROCS) -> None:
    """Static checks: unique names, known topics, one publisher per topic (operator tools excepted)."""
    names = [p.name for p in procs]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate process names: {names}")
    for p in procs:
        for t in p.pubs + p.subs:
            if t not in TOPICS:
                raise ValueError(f"{p.name}: unknown topic {t!r}")
        for d in p.launch_after:
            if d not in names or d == p.name:
                raise ValueError(f"{p.name}: launch_after names {d!r}, not another process of the table")
    for profile in ("sim", "robot"):
        publishers: dict[str, str] = {}
        for p in (p for p in procs if profile in p.profiles):
            for t in p.pubs:
                if t in publishers:
                    raise ValueError(f"topic {t!r} published by both {publishers[t]} and {p.name} ({profile})")
                publishers[t] = p.name


check_table()  # at import: every process and tool sees a consistent table


# ---- systemd --------------------------------------------------------------------------------------------------

UNIT_PREFIX = "edge-"
TARGET = "edge.target"


def unit_name(p: ProcessSpec) -> str:
    return f"{UNIT_PREFIX}{p.name}.service"


def render_service(p: ProcessSpec, python: str, workdir: str, config: str) -> str:
    exec_args = f"{python} -m {p.module} --config {config}"
    lines = [
        "[Unit]",
        f"Description=edge {p.name}: {p.description}",
        f"PartOf={TARGET}",
        "After=network-online.target",
        "Wants=network-online.target",  # DDS binds the robot's NIC
        "StartLimitIntervalSec=60",
        "StartLimitBurst=5",
        "",
        "[Service]",
        # READY=1 when the process reports ready (edge.system.health), STATUS= with its state and loading progress
        "Type=notify",
        "NotifyAccess=main",
        f"TimeoutStartSec={p.start_timeout_s:g}s",
    ]
    if p.watchdog_s:
        lines += [f"WatchdogSec={int(p.watchdog_s * 1000)}ms"]
    lines += [f"ExecStart={exec_args}"]
    if p.damp_on_stop:
        lines += [f"ExecStopPost={python} -m edge.controls.damp --config {config}"]
    lines += [
        f"Restart={p.restart}",
        "RestartSec=1",
        f"WorkingDirectory={workdir}",
        "Environment=PYTHONUNBUFFERED=1",
        "RuntimeDirectory=edge",
        "RuntimeDirectoryPreserve=yes",
        "KillSignal=SIGINT",
        "TimeoutStopSec=5",
    ]
    if p.cpus:
        lines += [f"CPUAffinity={' '.join(map(str, p.cpus))}"]
    if p.rt_priority:
        lines += [
            "CPUSchedulingPolicy=fifo",
            f"CPUSchedulingPriority={p.rt_priority}",
            "LimitRTPRIO=95",
            "LimitMEMLOCK=infinity",
        ]
    if p.nice:
        lines += [f"Nice={p.nice}"]
    lines += render_sandbox(p)
    lines += ["", "[Install]", f"WantedBy={TARGET}", ""]
    return "\n".join(lines)


SERVICE_USER = "edge"  # created by the install steps (README "On the robot"); every unit runs as it
STATE_DIR = "/var/lib/edge"  # runs/ (recordings, written by recordd) and engines/ (read-only at run time)


def render_sandbox(p: ProcessSpec) -> list[str]:
    """Least privilege (systemd.exec(5)): a dedicated user, no capabilities, read-only system, private /tmp, no new
    privileges, a system-call allow-list; then only what the table row declares: real-time scheduling
    (rt_priority), the robot's NIC (needs_dds), USB devices (needs_usb), the GPU (needs_gpu), the recordings
    directory (writes_runs), the machine-wide lock directory (takes_stack_lock). Bus sockets live in /run/edge,
    mode 0750, files 0660 (UMask 0007): the user and the group edge only. Each unit stays at `systemd-analyze
    security` exposure ≤ 4.0 (tests/unit/test_units_security.py); the directives and what is left out and why are in
    docs/design.md, "Least privilege"."""
    families = ["AF_UNIX", "AF_INET", "AF_INET6"]  # the bus (ipc, optional tcp), the remote VLM
    if p.needs_dds or p.needs_usb:
        families.append("AF_NETLINK")  # DDS: the interface's addresses (getifaddrs); libusb: hot-plug events
    lines = [
        f"User={SERVICE_USER}",
        f"Group={SERVICE_USER}",
        "UMask=0007",
        "RuntimeDirectoryMode=0750",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateMounts=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "ProtectProc=invisible",
        "RestrictNamespaces=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "RemoveIPC=yes",
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@privileged",
        "SystemCallErrorNumber=EPERM",
        f"RestrictAddressFamilies={' '.join(families)}",
    ]
    if not p.rt_priority:
        lines.append("RestrictRealtime=yes")  # real-time processes keep sched_setscheduler (CPUSchedulingPolicy)
    groups = ({"video", "plugdev"} if p.needs_usb else set()) | ({"video"} if p.needs_gpu else set())
    if groups:
        lines.append(f"SupplementaryGroups={' '.join(sorted(groups))}")
    if p.needs_gpu:
        # The Orin's GPU nodes (/dev/nvmap, /dev/nvhost-*, /dev/nvgpu/*) differ between L4T releases: /dev is kept.
        lines += [
            "CacheDirectory=edge",
            "Environment=XDG_CACHE_HOME=/var/cache/edge CUDA_CACHE_PATH=/var/cache/edge/nv",
        ]
    elif p.needs_usb:
        lines += ["DevicePolicy=closed", "DeviceAllow=char-usb_device rw", "DeviceAllow=char-video4linux rw"]
    else:
        lines.append("PrivateDevices=yes")
    if p.writes_runs:
        lines += ["StateDirectory=edge/runs", "StateDirectoryMode=0750"]
    if p.takes_stack_lock:  # read-only under ProtectSystem=strict otherwise, and a private /tmp is no shared lock
        lines.append("ReadWritePaths=/run/lock")
    return lines


def render_target(procs: list[ProcessSpec]) -> str:
    wants = " ".join(unit_name(p) for p in procs)
    return "\n".join(
        [
            "[Unit]",
            "Description=edge: onboard vision-language navigation stack",
            f"Wants={wants}",
            "After=network-online.target",
            "Wants=network-online.target",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ]
    )


def render_units(
    python: str = "/opt/edge/venv/bin/python", workdir: str = "/opt/edge/src", config: str = "/etc/edge/go2.yaml"
) -> dict[str, str]:
    """Units for the robot profile (the simulator never runs under systemd)."""
    procs = procs_for("robot")
    units = {unit_name(p): render_service(p, python, workdir, config) for p in procs}
    units[TARGET] = render_target(procs)
    return units


def write_units(out_dir: str | Path, **kw) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_units(**kw).items():
        (out / name).write_text(text)
        written.append(out / name)
    return written
