"""Unitree Go2 over DDS (unitree_sdk2py): LowCmd/LowState conversion with CRC, the robot-side RobotIO, the
simulator-side endpoint, the other-writers monitor and probe of rt/lowcmd, and sport-mode release. The only module that
imports `unitree_sdk2py` (and raw `cyclonedds`).

Conventions: docs/go2.md §1–§3, §6, §10. Joints 0–11 in SDK order; motor slots 12–19 carry stop sentinels.
`ChannelFactoryInitialize` is a process-wide singleton: one DDS domain/NIC per process, set once via `dds_init`.
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsParticipant, BuiltinTopicDcpsPublication
from cyclonedds.core import Policy, Qos
from cyclonedds.domain import Domain, DomainParticipant
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from unitree_sdk2py.comm.motion_switcher.motion_switcher_client import MotionSwitcherClient
from unitree_sdk2py.core.channel import ChannelFactory, ChannelFactoryInitialize, ChannelPublisher, ChannelSubscriber
from unitree_sdk2py.core.channel_config import ChannelConfigHasInterface
from unitree_sdk2py.go2.sport.sport_client import SportClient
from unitree_sdk2py.idl.default import unitree_go_msg_dds__LowCmd_, unitree_go_msg_dds__LowState_
from unitree_sdk2py.idl.unitree_go.msg.dds_ import LowCmd_, LowState_
from unitree_sdk2py.rpc import internal as rpc_codes
from unitree_sdk2py.utils.crc import CRC

from drivers.c_stderr import stderr_to_log
from drivers.geometry import quat_to_rpy
from drivers.go2.constants import HEAD, LEVEL_FLAG_LOW, MOTOR_MODE_SERVO, NUM_JOINTS, POS_STOP_F, VEL_STOP_F
from drivers.go2.remote import key_mask
from drivers.robot_io import JointCommand, RobotState

log = logging.getLogger(__name__)

TOPIC_LOWCMD = "rt/lowcmd"
TOPIC_LOWSTATE = "rt/lowstate"

_crc = CRC()  # SDK singleton (ctypes crc32_core on Linux)

# ---------------------------------------------------------------------------------------------------------------- DDS
_dds_lock = threading.Lock()
_dds_config: Optional[tuple[int, str]] = None

_IFF_UP, _SIOCGIFADDR = 0x1, 0x8915  # linux/if.h, linux/sockios.h


def interface_problem(name: str) -> str:
    """What keeps DDS from using network interface `name` now ("" = usable): missing, down, no carrier, or no
    IPv4 address (CycloneDDS binds the interface's address). Linux (sysfs, SIOCGIFADDR)."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return "does not exist"
    sysfs = Path("/sys/class/net") / name
    try:
        flags, oper = int((sysfs / "flags").read_text(), 16), (sysfs / "operstate").read_text().strip()
    except (OSError, ValueError):
        flags, oper = _IFF_UP, "unknown"  # no sysfs: let the address check decide
    if not flags & _IFF_UP:
        return "is down"
    if oper in ("down", "lowerlayerdown", "notpresent", "dormant"):  # RFC 2863 operational state; lo: unknown
        return "has no carrier (cable, switch, robot off?)"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sk:
        try:
            fcntl.ioctl(sk.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        except OSError:
            return "has no IPv4 address"
    return ""


def wait_for_interface(
    name: str,
    timeout_s: float,
    *,
    problem: Callable[[str], str] = interface_problem,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    log_every_s: float = 5.0,
) -> None:
    """Wait (bounded) until `name` is up with an address, logging what is missing: at boot the robot's NIC may come
    up after this process starts. RuntimeError naming the interface and the problem once timeout_s has passed."""
    t0 = last_log = clock()
    waited_for = ""
    while True:
        why = problem(name)
        if not why:
            if waited_for:
                log.info("network interface %s is up after %.1f s", name, clock() - t0)
            return
        first, waited_for = not waited_for, why
        waited = clock() - t0
        if waited >= timeout_s:
            raise RuntimeError(f"network interface {name!r} {why} (waited {waited:.1f} s; robot.interface)")
        if first or clock() - last_log >= log_every_s:
            log.warning("waiting for network interface %s: it %s (%.1f of %.1f s)", name, why, waited, timeout_s)
            last_log = clock()
        sleep(min(0.2, max(0.0, timeout_s - waited)))


def dds_init(domain: int, interface: str, interface_wait_s: float = 0.0) -> None:
    """Initialise the process-wide DDS channel factory on `interface` (never autodetect), after waiting up to
    interface_wait_s for the interface to be up. Idempotent for the same (domain, interface); a different pair raises,
    because the SDK silently keeps the first one."""
    global _dds_config
    if not isinstance(domain, int) or not 0 <= domain <= 232:
        raise ValueError(f"DDS domain must be an int in 0..232, got {domain!r}")
    if not interface or not isinstance(interface, str):
        raise ValueError("a network interface name is required (e.g. 'lo' for sim, the robot NIC for hardware)")
    with _dds_lock:
        if _dds_config is not None:
            if _dds_config != (domain, interface):
                raise RuntimeError(
                    f"DDS already initialised on domain {_dds_config[0]} / {_dds_config[1]!r} in this "
                    f"process; cannot switch to {domain} / {interface!r} (one domain per process)"
                )
            return
        if getattr(ChannelFactory, "_ChannelFactory__initialized", False):
            raise RuntimeError("DDS channel factory was initialised outside dds_init; domain/interface unknown")
        wait_for_interface(interface, interface_wait_s)
        try:
            with stderr_to_log(log, "cyclonedds"):  # its C warnings, in our log format
                ChannelFactoryInitialize(domain, interface)
        except Exception as e:  # the SDK raises a bare Exception and prints the cause
            raise RuntimeError(f"ChannelFactoryInitialize({domain}, {interface!r}) failed: {e}") from e
        _dds_config = (domain, interface)


def dds_config() -> Optional[tuple[int, str]]:
    """(domain, interface) set by dds_init in this process, or None."""
    return _dds_config


# ------------------------------------------------------------------------------------------------------- conversion
def _f32(x) -> list[float]:
    """Round to float32 (what goes on the wire) and return Python floats."""
    with np.errstate(over="ignore"):  # beyond float32 range → inf, refused by the finiteness check
        return np.asarray(x, dtype=np.float32).astype(np.float64).tolist()


def fill_lowcmd(msg: LowCmd_, cmd: JointCommand) -> None:
    """Write `cmd` into `msg` (header, 20 slots, CRC). Values are stored float32-rounded, so `msg` equals the wire."""
    q, dq, kp, kd, tau = (_f32(getattr(cmd, n)) for n in ("q", "dq", "kp", "kd", "tau"))
    if not all(math.isfinite(v) for a in (q, dq, kp, kd, tau) for v in a):
        raise ValueError("refusing to send a non-finite JointCommand (NaN/inf, or beyond float32 range)")
    msg.head[0], msg.head[1] = HEAD
    msg.level_flag = LEVEL_FLAG_LOW
    for i, m in enumerate(msg.motor_cmd):
        m.mode = MOTOR_MODE_SERVO
        if i < NUM_JOINTS:
            m.q, m.dq, m.kp, m.kd, m.tau = q[i], dq[i], kp[i], kd[i], tau[i]
        else:
            m.q, m.dq, m.kp, m.kd, m.tau = POS_STOP_F, VEL_STOP_F, 0.0, 0.0, 0.0
    msg.crc = _crc.Crc(msg)


def make_lowcmd(cmd: JointCommand) -> LowCmd_:
    msg = unitree_go_msg_dds__LowCmd_()
    fill_lowcmd(msg, cmd)
    return msg


def crc_ok(msg: LowCmd_ | LowState_) -> bool:
    """Recompute the CRC (docs/go2.md §3) and compare with msg.crc."""
    return _crc.Crc(msg) == msg.crc


def lowcmd_to_joint_command(msg: LowCmd_) -> JointCommand:
    """Slots 0–11 of a LowCmd (does not check the CRC: see crc_ok)."""
    m = msg.motor_cmd[:NUM_JOINTS]
    return JointCommand(
        q=np.array([x.q for x in m]),
        dq=np.array([x.dq for x in m]),
        kp=np.array([x.kp for x in m]),
        kd=np.array([x.kd for x in m]),
        tau=np.array([x.tau for x in m]),
    )


def lowstate_to_robot_state(msg: LowState_, recv_mono_s: float) -> RobotState:
    m, imu = msg.motor_state[:NUM_JOINTS], msg.imu_state
    return RobotState(
        q=np.array([x.q for x in m]),
        dq=np.array([x.dq for x in m]),
        tau=np.array([x.tau_est for x in m]),
        quat_wxyz=imu.quaternion,
        gyro=imu.gyroscope,
        accel=imu.accelerometer,
        foot_force=msg.foot_force,
        tick=int(msg.tick),
        recv_mono_s=recv_mono_s,
        wireless_remote=bytes(msg.wireless_remote),
    )


def _vec(x, n: int, name: str) -> list[float]:
    v = _f32(x)
    if len(v) != n:
        raise ValueError(f"{name}: expected {n} values, got {len(v)}")
    return v


def fill_lowstate(
    msg: LowState_, q, dq, tau, quat_wxyz, gyro, accel, foot_force, tick: int, wireless_remote: bytes = bytes(40)
) -> None:
    """Simulator side: write a state into `msg` (joints 0–11, IMU incl. rpy, foot_force as int16, tick, the 40
    wireless-remote bytes) and set CRC."""
    if len(wireless_remote) != 40:
        raise ValueError(f"wireless_remote: expected 40 bytes, got {len(wireless_remote)}")
    q, dq, tau = _vec(q, NUM_JOINTS, "q"), _vec(dq, NUM_JOINTS, "dq"), _vec(tau, NUM_JOINTS, "tau")
    quat = _vec(quat_wxyz, 4, "quat_wxyz")
    ff = np.clip(np.rint(np.asarray(foot_force, dtype=np.float64)), -32768, 32767).astype(int).tolist()
    if len(ff) != 4:
        raise ValueError(f"foot_force: expected 4 values, got {len(ff)}")
    for i in range(NUM_JOINTS):
        m = msg.motor_state[i]
        m.q, m.dq, m.tau_est = q[i], dq[i], tau[i]
    imu = msg.imu_state
    imu.quaternion = quat
    imu.gyroscope = _vec(gyro, 3, "gyro")
    imu.accelerometer = _vec(accel, 3, "accel")
    imu.rpy = _f32(quat_to_rpy(quat))
    msg.foot_force = ff
    msg.tick = int(tick) & 0xFFFFFFFF  # uint32 counter wraps
    msg.wireless_remote = list(wireless_remote)
    msg.crc = _crc.Crc(msg)


def make_lowstate(
    q, dq, tau, quat_wxyz, gyro, accel, foot_force, tick: int, wireless_remote: bytes = bytes(40)
) -> LowState_:
    msg = unitree_go_msg_dds__LowState_()
    fill_lowstate(msg, q, dq, tau, quat_wxyz, gyro, accel, foot_force, tick, wireless_remote)
    return msg


# ------------------------------------------------------------------------------------------------ robot (RobotIO)
class Go2Robot:
    """RobotIO for the control process: reads rt/lowstate, writes rt/lowcmd (with CRC). lowstate=False: a writer
    only (the LowCmd watchdog, the damper).

    remote_estop (keys, damping command): the wireless-remote e-stop at the driver. The LowState handler (CycloneDDS's
    listener thread) checks the keys in every LowState as it arrives; when all are held it latches, writes the damping
    command at once and replaces every later write with it. So a press reaches the motors within one LowState period
    plus a DDS hop, not at the control loop's next tick (docs/go2.md §12); the loop latches damp too when it sees it."""

    def __init__(
        self,
        domain: int,
        interface: str,
        *,
        interface_wait_s: float = 0.0,
        lowstate: bool = True,
        remote_estop: Optional[tuple[tuple[str, ...], JointCommand]] = None,
    ):
        dds_init(domain, interface, interface_wait_s)
        self._estop_mask = 0 if remote_estop is None else key_mask(remote_estop[0])
        self._estop_cmd = None if remote_estop is None else remote_estop[1]
        self._estop_latched = False
        self._lock = threading.Lock()
        self._raw: Optional[LowState_] = None
        self._raw_t = 0.0
        self._n_states = 0
        self._cached: Optional[RobotState] = None
        self._cached_n = 0
        self._closed = False
        self._write_lock = threading.Lock()
        self._cmd_msg = unitree_go_msg_dds__LowCmd_()
        self._n_cmds = 0
        self._pub = ChannelPublisher(TOPIC_LOWCMD, LowCmd_)
        self._pub.Init()
        self._sub: Optional[ChannelSubscriber] = None
        if lowstate:
            self._sub = ChannelSubscriber(TOPIC_LOWSTATE, LowState_)
            self._sub.Init(self._on_state, 0)  # handler runs in Cyclone's listener thread

    def _on_state(self, msg: LowState_) -> None:
        t = time.monotonic()
        with self._lock:
            if not self._closed:
                self._raw, self._raw_t = msg, t
                self._n_states += 1
        if self._estop_mask and not self._estop_latched:
            r = msg.wireless_remote
            if (r[2] | r[3] << 8) & self._estop_mask == self._estop_mask:
                try:  # never raise into the DDS listener thread
                    self._latch_estop()
                except Exception:
                    log.exception("remote e-stop: damping write failed (the control loop damps at its next tick)")

    def _latch_estop(self) -> None:
        assert self._estop_cmd is not None
        with self._write_lock:
            if self._closed or self._estop_latched:
                return
            self._estop_latched = True
            fill_lowcmd(self._cmd_msg, self._estop_cmd)
            self._pub.Write(self._cmd_msg)
            self._n_cmds += 1
        log.warning("remote e-stop held: damping, latched")

    @property
    def remote_estop_latched(self) -> bool:
        return self._estop_latched

    def latest_state(self) -> Optional[RobotState]:
        with self._lock:
            raw, t, n = self._raw, self._raw_t, self._n_states
        if raw is None:
            return None
        if n != self._cached_n:  # convert each message once
            self._cached, self._cached_n = lowstate_to_robot_state(raw, t), n
        return self._cached

    def write(self, cmd: JointCommand) -> JointCommand:
        with self._write_lock:
            if self._closed:
                raise RuntimeError("Go2Robot is closed")
            if self._estop_latched and self._estop_cmd is not None:
                cmd = self._estop_cmd
            fill_lowcmd(self._cmd_msg, cmd)
            if not self._pub.Write(self._cmd_msg):
                raise RuntimeError("DDS write of rt/lowcmd failed")
            self._n_cmds += 1
            return lowcmd_to_joint_command(self._cmd_msg)  # float32 values as on the wire

    @property
    def states_received(self) -> int:
        return self._n_states

    @property
    def commands_sent(self) -> int:
        return self._n_cmds

    def close(self) -> None:
        with self._write_lock, self._lock:
            if self._closed:
                return
            self._closed = True
        if self._sub is not None:
            self._sub.Close()
        self._pub.Close()


def collect_lowstate(
    domain: int, interface: str, seconds: float, max_states: int | None = None, first_within_s: float | None = None
) -> list[RobotState]:
    """Listen to rt/lowstate (read only: nothing is published) for `seconds` or until `max_states` arrived; returns
    the states received, in order. For calibration and `edge doctor`. first_within_s: wait that long for the first
    message, then listen `seconds` from it (readiness, not a fixed window); an empty list when none came."""
    dds_init(domain, interface)
    states: list[RobotState] = []
    done, first = threading.Event(), threading.Event()
    lock = threading.Lock()

    def on_state(msg: LowState_) -> None:
        with lock:
            if done.is_set():
                return
            states.append(lowstate_to_robot_state(msg, time.monotonic()))
            first.set()
            if max_states is not None and len(states) >= max_states:
                done.set()

    sub = ChannelSubscriber(TOPIC_LOWSTATE, LowState_)
    sub.Init(on_state, 0)
    try:
        if first_within_s is None or first.wait(first_within_s):
            done.wait(seconds)
    finally:
        done.set()
        sub.Close()
    with lock:
        return list(states)


# --------------------------------------------------------------------------------------------------- simulator side
class Go2SimEndpoint:
    """Simulator process: receives rt/lowcmd (CRC-checked), publishes rt/lowstate."""

    def __init__(self, domain: int, interface: str, log_every: int = 100):
        dds_init(domain, interface)
        self._log_every = max(1, int(log_every))
        self._lock = threading.Lock()
        self._latest: Optional[tuple[JointCommand, float]] = None
        self._n_cmds = self._n_drops = self._n_errors = self._n_states = 0
        self._closed = False
        self._pub_lock = threading.Lock()
        self._state_msg = unitree_go_msg_dds__LowState_()
        self._pub = ChannelPublisher(TOPIC_LOWSTATE, LowState_)
        self._pub.Init()
        self._sub = ChannelSubscriber(TOPIC_LOWCMD, LowCmd_)
        self._sub.Init(self._on_cmd, 0)

    def _on_cmd(self, msg: LowCmd_) -> None:
        t = time.monotonic()
        try:  # never raise into the DDS listener thread
            if not crc_ok(msg):
                with self._lock:
                    self._n_drops += 1
                    n = self._n_drops
                if (n - 1) % self._log_every == 0:
                    log.warning("rt/lowcmd: dropped message with bad CRC (%d dropped so far)", n)
                return
            cmd = lowcmd_to_joint_command(msg)
            with self._lock:
                if not self._closed:
                    self._latest = (cmd, t)
                    self._n_cmds += 1
        except Exception:
            with self._lock:
                self._n_errors += 1
                n = self._n_errors
            if (n - 1) % self._log_every == 0:
                log.exception("rt/lowcmd handler error (%d so far)", n)

    def latest_command(self) -> Optional[tuple[JointCommand, float]]:
        """Newest valid command and its time.monotonic() receive time, or None."""
        with self._lock:
            return self._latest

    def publish_state(
        self, q, dq, tau, quat_wxyz, gyro, accel, foot_force, tick: int, wireless_remote: bytes = bytes(40)
    ) -> None:
        with self._pub_lock:
            if self._closed:
                raise RuntimeError("Go2SimEndpoint is closed")
            fill_lowstate(self._state_msg, q, dq, tau, quat_wxyz, gyro, accel, foot_force, tick, wireless_remote)
            if not self._pub.Write(self._state_msg):
                raise RuntimeError("DDS write of rt/lowstate failed")
            self._n_states += 1

    @property
    def commands_received(self) -> int:
        return self._n_cmds

    @property
    def crc_drops(self) -> int:
        return self._n_drops

    @property
    def handler_errors(self) -> int:
        return self._n_errors

    @property
    def states_sent(self) -> int:
        return self._n_states

    def close(self) -> None:
        with self._pub_lock, self._lock:
            if self._closed:
                return
            self._closed = True
        self._sub.Close()
        self._pub.Close()


# ---------------------------------------------------------------------------------------- other rt/lowcmd writers
class LowCmdMonitor:
    """Arrival times of CRC-valid rt/lowcmd samples written by OTHER processes: CycloneDDS `IgnoreLocal.Process` keeps
    this process's own writes out. The LowCmd watchdog's evidence that control is alive is a sample arriving, never
    DDS discovery (a killed writer stays "alive" there for its 10 s lease; docs/go2.md §11)."""

    def __init__(self, domain: int, interface: str, *, interface_wait_s: float = 0.0):
        dds_init(domain, interface, interface_wait_s)
        self._lock = threading.Lock()
        self._last: Optional[float] = None
        self._n = self._bad = 0
        self._channel = ChannelFactory().CreateChannel(TOPIC_LOWCMD, LowCmd_)
        self._channel.SetReader(Qos(Policy.IgnoreLocal.Process), self._on_cmd, 0)

    def _on_cmd(self, msg: LowCmd_) -> None:
        t = time.monotonic()
        ok = crc_ok(msg)  # a corrupt LowCmd is dropped by the motors: it is no sign of a live controller
        with self._lock:
            if ok:
                self._last, self._n = t, self._n + 1
            else:
                self._bad += 1

    def last_received_s(self) -> Optional[float]:
        """time.monotonic() of the newest valid foreign LowCmd, or None before the first."""
        with self._lock:
            return self._last

    @property
    def received(self) -> int:
        return self._n

    @property
    def crc_drops(self) -> int:
        return self._bad

    def close(self) -> None:
        self._channel.CloseReader()


@dataclass(frozen=True)
class LowCmdWriter:
    """A writer of rt/lowcmd found by probe_lowcmd, named by its DDS participant's identity properties (CycloneDDS
    sets __Hostname, __Pid, __ProcessName, __NetworkAddresses; empty when the peer does not)."""

    host: str
    pid: int
    process: str
    address: str
    samples: int  # samples received from it during the probe window

    @property
    def local(self) -> bool:
        return self.host == socket.gethostname()

    def __str__(self) -> str:
        who = f"{self.process or 'unknown process'} (pid {self.pid if self.pid >= 0 else '?'}) on {self.host or '?'}"
        return f"{who}{' at ' + self.address if self.address else ''}: {self.samples} LowCmd in the probe window"


def probe_lowcmd(
    domain: int, interface: str, window_s: float = 0.2, interface_wait_s: float = 0.0
) -> list[LowCmdWriter]:
    """Who else writes rt/lowcmd on (domain, interface): the writers discovered within window_s, each with the samples
    it sent in that window (Unitree's Go2 deploy refuses to start when a sample arrives in 200 ms: unitree_rl_lab
    `deploy/robots/go2/main.cpp`). Uses a participant of its own, deleted before returning; call it before creating
    this process's own LowCmd writer. This process's own writers are left out. Waits up to interface_wait_s for the
    interface (RuntimeError naming what is missing)."""
    own = _dds_config is not None and _dds_config[0] == domain
    if not own:
        wait_for_interface(interface, interface_wait_s)
    dom = None if own else Domain(domain, ChannelConfigHasInterface.replace("$__IF_NAME__$", interface))
    dp = DomainParticipant(domain)
    topic = Topic(dp, TOPIC_LOWCMD, LowCmd_)
    reader = DataReader(dp, topic, Qos(Policy.History.KeepLast(256)))
    pubs = BuiltinDataReader(dp, BuiltinTopicDcpsPublication)
    parts = BuiltinDataReader(dp, BuiltinTopicDcpsParticipant)
    samples: dict[int, int] = {}
    writers: dict[int, object] = {}
    props: dict[object, dict[str, str]] = {}
    try:
        end = time.monotonic() + window_s
        while True:
            for smp in reader.take(N=256):
                h = smp.sample_info.publication_handle
                samples[h] = samples.get(h, 0) + 1
            for w in pubs.take(N=256):
                if w.sample_info.valid_data and w.topic_name == TOPIC_LOWCMD:
                    writers[w.sample_info.instance_handle] = w.participant_key
            for q in parts.take(N=256):
                if q.sample_info.valid_data:
                    props[q.key] = {x.key: x.value for x in q.qos if isinstance(x, Policy.Property)}
            if time.monotonic() >= end:
                break
            time.sleep(0.02)
    finally:
        del reader, topic, pubs, parts, dp, dom  # explicit: lingering DDS entities can hang interpreter exit
    out = []
    for h in set(writers) | set(samples):
        pr = props.get(writers.get(h), {})
        pid = int(pr["__Pid"]) if pr.get("__Pid", "").isdigit() else -1
        host = pr.get("__Hostname", "")
        if pid == os.getpid() and host == socket.gethostname():
            continue
        out.append(
            LowCmdWriter(host, pid, pr.get("__ProcessName", ""), pr.get("__NetworkAddresses", ""), samples.get(h, 0))
        )
    return out


# ------------------------------------------------------------------------------------------------------ sport mode
_RPC_NAMES = {v: k for k, v in vars(rpc_codes).items() if k.startswith("RPC_ERR_") and isinstance(v, int)}


class SportModeError(RuntimeError):
    """A motion_switcher / sport RPC failed (code != 0) or sport mode could not be released."""

    def __init__(self, code: Optional[int], step: str, detail: str = ""):
        self.code, self.step = code, step
        what = f"code {code} ({_RPC_NAMES.get(code, 'service error')})" if code is not None else "failed"
        hint = (
            " — no reply: is the robot on this NIC and DDS domain 0?"
            if code == rpc_codes.RPC_ERR_CLIENT_API_TIMEOUT
            else ""
        )
        super().__init__(f"releasing sport mode: {step} {what}{hint}{': ' + detail if detail else ''}")


def release_sport_mode(
    timeout_s: float = 5.0,
    max_attempts: int = 10,
    *,
    switcher: Optional[MotionSwitcherClient] = None,
    sport: Optional[SportClient] = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Turn the Go2's sport/AI controller off so rt/lowcmd takes effect (docs/go2.md §6). Needs dds_init first.

    Loop: CheckMode → while a mode is active, StandDown, ReleaseMode, wait 1 s. Every RPC code is checked.
    Returns the number of ReleaseMode calls made (0 if already released). `switcher`/`sport` are for tests.
    """
    if switcher is None:
        if _dds_config is None:
            raise RuntimeError("call dds_init(domain, interface) before release_sport_mode")
        switcher = MotionSwitcherClient()
        switcher.SetTimeout(timeout_s)
        switcher.Init()
    for attempt in range(max_attempts + 1):
        code, data = switcher.CheckMode()
        if code != 0:
            raise SportModeError(code, "CheckMode")
        if not isinstance(data, dict):
            raise SportModeError(None, "CheckMode", f"unexpected reply {data!r}")
        name = data.get("name", "")
        if not name:
            return attempt
        if attempt == max_attempts:
            raise SportModeError(None, "ReleaseMode", f"mode {name!r} still active after {max_attempts} releases")
        log.info("sport mode %r active: standing down and releasing (attempt %d)", name, attempt + 1)
        if sport is None:
            sport = SportClient()
            sport.SetTimeout(timeout_s)
            sport.Init()
        code = sport.StandDown()
        if code != 0:
            raise SportModeError(code, "StandDown")
        code, _ = switcher.ReleaseMode()
        if code != 0:
            raise SportModeError(code, "ReleaseMode")
        sleep(1.0)
    raise AssertionError("unreachable")
