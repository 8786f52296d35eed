"""The fault suite's measures (issue 8 item 10), on the whole simulated stack (every sim process of the table: simd,
controlsd, watchdogd, navigatord, vlmd with fixed answers, simcamd rendering, recordd) with the Go2 walking:

* kill -9, and SIGSTOP for `stop_s` then SIGCONT, of each process: the safe state it must end in and the time from the
  signal to it (monotonic clock; control's states by their send stamps, damping LowCmds by their DDS arrival here),
  the robot's tilt from the simulator's ground truth while the fault lasts, whether anything walked without a new
  command afterwards, and how many recorded messages were lost (controlState messages this process received that
  are missing from the recordings, read back to their end);
* both cores loaded by two busy processes during a walk (the loop's lateness, lag events, missed ticks, its mode);
* configs that could fell the robot, a malformed YAML file and a wrong path (exit code, the one line, no LowCmd).

Processes are supervised as systemd does on the robot (each on its own; Restart= restarts it, here the bench does),
not as `edge run`, which stops the whole stack when any one process dies.

    nice -n 19 python -m edge.tools.fault_bench --runs 3 --out runs/faults.json    # markdown table on stdout
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.msg.messages import ControlState, SimTruth
from edge.msg.recording import read_recording
from edge.system.health import HealthView
from edge.tools.errors import OperatorError
from edge.tools.operator_client import instruct
from edge.tools.report_common import UPRIGHT_TILT_RAD
from edge.tools.safety_bench import DdsObserver, SimStack, dds_domain

log = logging.getLogger("fault_bench")

FAULT_PROCS = ("simd", "controlsd", "watchdogd", "navigatord", "vlmd", "simcamd", "recordd")
VLM_DRIVEN = ("vlmd", "simcamd")  # faults of the VLM path: the VLM drives the walk, not the operator
SAFE_STATE = {
    "simd": "control damps (LowState stale)",
    "controlsd": "watchdog damps (LowCmd stream stopped)",
    "watchdogd": "control goes on, reports degraded (no LowCmd watchdog)",
    "navigatord": "velocity command stale: zero velocity; the action dropped, then hold",
    "vlmd": "no new action: hold once the queue ends",
    "simcamd": "no new action: hold once the queue ends",
    "recordd": "control goes on; recording readable, nothing before the fault lost",
}


@dataclass
class Observation:
    """What the bench saw after a fault: control's states (send stamp s, message), ground truth, the watchdog."""

    states: list[tuple[float, ControlState]] = field(default_factory=list)
    truth: list[SimTruth] = field(default_factory=list)

    def first(self, t0: float, pred) -> float | None:
        return next((t - t0 for t, m in self.states if t >= t0 and pred(m)), None)

    def max_tilt(self) -> float | None:
        return max((max(abs(m.roll_rad), abs(m.pitch_rad)) for m in self.truth), default=None)

    def min_z(self) -> float | None:
        return min((m.z_m for m in self.truth), default=None)


def moving(m: ControlState) -> bool:
    """Control walking with a velocity (walk mode at zero velocity is the way to hold, not motion)."""
    return m.mode == "walk" and abs(m.vx_m_s) + abs(m.vy_m_s) + abs(m.wz_rad_s) > 0.01


class FaultStack(SimStack):
    """The whole sim stack (SimStack with the VLM, the head camera and the recorder), plus a queued controlState
    subscription whose stamps are compared with the recordings."""

    def __init__(self, overrides: tuple[str, ...] = ()):
        self.rec_dir = tempfile.mkdtemp(prefix="edge-rec-", dir="/tmp")
        fwd = "The next action is move forward 50 cm."
        answers = f"[{fwd}, {fwd}, {fwd}, The next action is stop.]"  # an episode of ≈ 5 s that ends by itself
        super().__init__(
            (
                "sim.camera_hz=2",
                "sim.landmarks=false",  # an open floor: the robot walks ≈ 1 m per fault, ≈ 15 m a run
                "vlm.model=fixed",
                f"vlm.fixed_answers={answers}",
                "vlm.fixed_latency_s=0.3",
                f"recorder.out_dir={self.rec_dir}",
                *overrides,
            ),
            block=(),
        )
        self.states = self.bus.sub("controlState", conflate=False)
        self.vlm_out = self.bus.sub("vlmOutput", conflate=False)
        self.seen_ns: list[int] = []  # send stamps of every controlState this process received
        self.startup_damps: list[str] = []  # stand-ups that ended in damp (their reasons)
        self.damps_before_fault: list[str] = []  # control damped on its own while the bench set up a fault
        self.health = HealthView(self.bus, [p.name for p in self.mgr.procs])

    def collect(self, seconds: float, obs: Observation | None = None, until=None) -> Observation:
        """Drain control's states and ground truth for `seconds` (or until until(obs) is true)."""
        obs = obs or Observation()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for r in self.states.wait(0.02):
                self.seen_ns.append(r.mono_ns)
                obs.states.append((r.mono_ns * 1e-9, r.msg))
            obs.truth += [r.msg for r in self.truth.drain()]
            if until is not None and until(obs):
                break
        return obs

    def mode(self) -> str:
        r = self.op.control.latest()
        return "" if r is None or r.age_s() > 0.5 else r.msg.mode

    def recover(self, timeout_s: float = 60.0) -> None:
        """Every process running and reporting up, control holding: dead ones restarted (the simulator first; a
        control latched in damp, or one whose simulator restarted, restarted too)."""
        sim_restarted = False
        for name in FAULT_PROCS:
            if self.mgr.children[name].poll() is not None:
                log.info("restarting %s", name)
                self.restart(name)
                sim_restarted = sim_restarted or name == "simd"
                if name == "simd":
                    self.mgr.wait_ready(names=["simd"])
        since_ns = 0
        if self.mode() == "walk":  # an operator sentence still running; a VLM episode ends with its own stop
            self.op.say("stop")
        if sim_restarted or self.mode() == "damp":
            since_ns = self._restart_control()
        self.mgr.wait_ready(timeout_s)
        for _ in range(3):  # a stand-up that damps (a LowState gap under load) is a safe end: counted, tried again
            st = self.wait_control(("hold", "damp"), since_ns, timeout_s)
            if st.mode == "hold":
                break
            self.startup_damps.append(st.reason)
            log.warning("control damped before holding (%s): restarting it", st.reason)
            since_ns = self._restart_control()
            self.mgr.wait_ready(timeout_s)
        else:
            raise RuntimeError(f"control damped on 3 stand-ups in a row: {self.startup_damps[-3:]}")
        self.op.say("stop")  # whatever the navigator still had, it drops
        self.wait_settled(timeout_s)
        self.collect(0.3)

    def wait_settled(self, timeout_s: float) -> None:
        """Navigator idle (nothing executing or queued) and control holding at once: a lag's 1 s hold while a walk
        is still running is not a settled robot (under load it fooled recover() into flooding a walking stack)."""
        end = time.monotonic() + timeout_s
        nav = ctl = None
        while time.monotonic() < end:
            nav, ctl = self.op.status.latest(), self.op.control.latest()
            if self.op.navigator_idle() and ctl is not None and ctl.age_s() < 0.5 and ctl.msg.mode == "hold":
                return
            self.op.status.wait(0.05)
        raise TimeoutError(
            f"not settled within {timeout_s:g} s: navigator "
            f"{'silent' if nav is None else f'{nav.msg.state}, {nav.msg.queue_len} queued'}, control "
            f"{'silent' if ctl is None else ctl.msg.mode}"
        )

    def _restart_control(self) -> int:
        self.restart("controlsd")
        return time.monotonic_ns()

    def wait_control(self, modes: tuple[str, ...], since_ns: int, timeout_s: float) -> ControlState:
        """Control's first state in `modes` sent after since_ns (a restarted control's, not its predecessor's)."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            r = self.op.control.latest()
            if r is not None and r.mono_ns > since_ns and r.msg.mode in modes:
                return r.msg
            self.op.control.wait(0.05)
        raise TimeoutError(f"control not in {'/'.join(modes)} within {timeout_s:g} s")

    def drive(self, vlm: bool) -> None:
        """Walk forward: a VLM episode (fixed answers, 50 cm each) or one operator sentence."""
        if vlm:
            instruct(self.bus, "walk forward down the corridor", self.cfg)
            end = time.monotonic() + 15.0
            while time.monotonic() < end and self.mode() != "walk":
                time.sleep(0.02)
            if self.mode() != "walk":
                raise TimeoutError("the VLM never made the robot walk")
        else:
            self.walk("move forward 150 cm")
        self.collect(0.3)

    def recorded_ns(self) -> set[int]:
        """Send stamps of every controlState in the recordings (MCAP, edge.msg.recording), each read to its end; a
        file cut short by a killed recorder is read to its last whole record (counted in self.cut_files)."""
        out: set[int] = set()
        self.cut_files = 0
        for p in sorted(Path(self.rec_dir).glob("*.mcap")):
            rec = read_recording(p)
            self.cut_files += not rec.complete
            out.update(r["mono_ns"] for r in rec.topics.get("controlState", []))
        return out

    def close(self) -> None:
        self.states.close()
        self.vlm_out.close()
        self.health.close()
        super().close()


def inject(stack: FaultStack, name: str, how: str, stop_s: float = 1.0, window_s: float = 2.0) -> dict:
    """One fault while walking: `how` is "kill" (SIGKILL) or "stop" (SIGSTOP for stop_s, then SIGCONT). Returns the
    row's measures; the stack is left for recover()."""
    stack.drive(vlm=name in VLM_DRIVEN)
    proc = stack.mgr.children[name]
    stack.states.drain()
    stack.truth.drain()
    stack.vlm_out.drain()
    t0 = time.monotonic()
    proc.send_signal(signal.SIGKILL if how == "kill" else signal.SIGSTOP)
    obs = stack.collect(stop_s if how == "stop" else window_s)
    t_cont = None
    if how == "stop":
        t_cont = time.monotonic()
        proc.send_signal(signal.SIGCONT)
        stack.collect(window_s, obs)
    row: dict = {"process": name, "fault": "kill -9" if how == "kill" else f"SIGSTOP {stop_s:g} s + SIGCONT"}
    row["safe_state"] = SAFE_STATE[name]
    damping_at = stack.observer.first_damping_after(t0, timeout_s=0.0)
    dmp = None if damping_at is None or damping_at > t0 + stop_s + window_s else (damping_at - t0) * 1e3
    if name == "controlsd":
        row["time_ms"] = dmp
        row["safe"] = dmp is not None
    elif name == "simd":
        t = obs.first(t0, lambda m: m.mode == "damp")
        row["time_ms"] = None if t is None else t * 1e3
        row["safe"] = t is not None
    elif name == "navigatord":
        t = obs.first(t0, lambda m: m.vx_m_s == 0.0 and m.reason.startswith("velocity stale"))
        th = obs.first(t0, lambda m: m.mode == "hold")
        row["time_ms"] = None if t is None else t * 1e3
        row["hold_ms"] = None if th is None else th * 1e3
        row["safe"] = t is not None and th is not None
    elif name in VLM_DRIVEN and how == "stop":  # the episode goes on after SIGCONT: new answers are commands
        row["safe_state"] = "queued actions go on, no damping; the episode resumes after SIGCONT"
        row["time_ms"] = None
        row["safe"] = not any(m.mode == "damp" for _, m in obs.states)
        row["vlm_answers_during_stop"] = sum(
            t0 * 1e9 <= r.msg.launched_mono_ns <= (t_cont or 0) * 1e9 for r in stack.vlm_out.drain()
        )
    elif name in VLM_DRIVEN:
        obs = stack.collect(8.0, obs, until=lambda o: o.first(t0, lambda m: m.mode == "hold") is not None)
        th = obs.first(t0, lambda m: m.mode == "hold")
        row["time_ms"] = None if th is None else th * 1e3
        row["safe"] = th is not None
    else:  # watchdogd, recordd: control must simply go on
        row["time_ms"] = None
        row["safe"] = not any(m.mode == "damp" for _, m in obs.states) and dmp is None
    if name == "watchdogd":
        end = time.monotonic() + 1.0
        while time.monotonic() < end and stack.health.state("controlsd") is None:
            stack.health.poll(0.1)
        wd = stack.health.state("watchdogd")
        row["watchdog_reported"] = "gone" if wd is None else f"{wd.state}: {wd.reason}"
        ctl = stack.health.state("controlsd")
        row["control_reported"] = "" if ctl is None else f"{ctl.state}: {ctl.reason}"
    # after the safe state: nothing walks without a new command (a resumed control or navigator included)
    t_safe = t0 + (row["time_ms"] or 0.0) * 1e-3 + (row.get("hold_ms") or 0.0) * 1e-3
    if name in ("controlsd", "simd", "navigatord") or (name in VLM_DRIVEN and how == "kill"):
        after = stack.collect(1.0, obs)
        # after SIGCONT nothing may move again (a resumed navigator or control); after a kill, once safe
        since = t_cont + 0.2 if t_cont is not None else t_safe + 0.05
        row["walked_after"] = any(moving(m) for t, m in after.states if t > since)
        row["safe"] = row["safe"] and not row["walked_after"]
    if t_cont is not None:
        row["after_resume"] = next((m.mode for t, m in obs.states if t > t_cont), "no controlState")
    damped = next((m.reason for _, m in obs.states if m.mode == "damp"), "")
    if damped and name not in ("simd", "controlsd"):  # this fault never stops LowState: another cause, recorded
        row["control_damped"] = damped
    tilt = obs.max_tilt()
    row["max_tilt_rad"] = tilt
    row["upright"] = None if tilt is None else tilt < UPRIGHT_TILT_RAD  # damping lowers the base, it must not tip it
    row["min_base_z_m"] = obs.min_z()
    row["t0_ns"] = int(t0 * 1e9)
    return row


def inject_recovered(stack: FaultStack, name: str, how: str, stop_s: float = 1.0, tries: int = 3) -> dict:
    """recover(), then inject(); control damping on its own (a LowState gap when other real-time processes starve the
    simulator: a safe end, but not this fault's) before or during a fault that cannot cause it is counted in
    stack.damps_before_fault and the fault tried again."""
    for _ in range(tries - 1):
        stack.recover()
        try:
            row = inject(stack, name, how, stop_s=stop_s)
        except (TimeoutError, OperatorError) as e:
            if stack.mode() != "damp":
                raise
            last = stack.op.control.latest()
            reason = "" if last is None else last.msg.reason
            stack.damps_before_fault.append(reason)
            log.warning("control damped before the %s fault (%s; %s): again", name, reason, e)
            continue
        if not row.get("control_damped", "").startswith("LowState stale"):
            return row
        # the simulator starved (other real-time processes on this machine): a safe end, not this fault's
        stack.damps_before_fault.append(f"during {name} {how}: {row['control_damped']}")
        log.warning("control damped during the %s fault (%s), not from it: again", name, row["control_damped"])
    stack.recover()
    return inject(stack, name, how, stop_s=stop_s)


def add_data_lost(stack: FaultStack, rows: list[dict], margin_s: float = 0.2) -> None:
    """Per row: controlState messages this process received stamped from 1 s before the fault until 3 s after it
    (before the fault, for a recorder fault) that no recording holds. margin_s: messages that were still in the
    killed recorder's socket queue are not counted (they were never the recorder's)."""
    recorded = stack.recorded_ns()
    seen = sorted(stack.seen_ns)
    for row in rows:
        t0 = row["t0_ns"]
        hi = t0 - int(margin_s * 1e9) if row["process"] == "recordd" and row["fault"] == "kill -9" else t0 + int(3e9)
        want = [s for s in seen if t0 - int(1e9) <= s <= hi]
        row["lost"] = sum(s not in recorded for s in want)
        row["checked"] = len(want)
        if row["process"] == "recordd" and row["fault"] == "kill -9":  # how far before the kill the recording ends
            before = [s for s in recorded if s < t0]
            row["recording_ends_ms_before"] = (t0 - max(before)) * 1e-6 if before else None
            row["lost_in_margin"] = sum(s not in recorded for s in seen if hi < s < t0)


def load_during_walk(stack: FaultStack, seconds: float = 4.0, hogs: int = 2) -> dict:
    """`hogs` busy processes (one per core here) while the robot walks: control's lateness, lag events and mode."""
    stack.walk("move forward 300 cm")
    stack.states.drain()
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(hogs)]
    t0 = time.monotonic()
    try:
        obs = stack.collect(seconds)
    finally:
        for b in busy:
            b.kill()
            b.wait()
    st = [m for _, m in obs.states]
    late = np.array([m.lateness_ms for m in st]) if st else np.zeros(1)
    modes = sorted({m.mode for m in st})
    tilt = obs.max_tilt()
    return {
        "process": "both cores",
        "fault": f"{hogs} busy processes for {seconds:g} s",
        "safe_state": "control keeps its deadlines (walk goes on) or holds on a lag event",
        "time_ms": None,
        "realtime": st[-1].realtime if st else "",
        "modes": modes,
        "lag_events": (st[-1].lag_events - st[0].lag_events) if st else None,
        "missed_ticks": (st[-1].missed_ticks - st[0].missed_ticks) if st else None,
        "lateness_p99_ms": float(np.percentile(late, 99)),
        "lateness_max_ms": float(late.max()),
        "safe": bool(st) and "damp" not in modes,
        "max_tilt_rad": tilt,
        "upright": None if tilt is None else tilt < UPRIGHT_TILT_RAD,
        "t0_ns": int(t0 * 1e9),
    }


def malformed_count(stack: FaultStack, name: str) -> int | None:
    """The malformed messages process `name` has dropped so far (its processState detail), None if not heard."""
    st = stack.health.state(name)
    return None if st is None else int(st.detail.get("malformed", "0"))


def flood(stack: FaultStack, n: int = 10_000) -> dict:
    """n malformed messages (edge.tools.garbage) on every topic the running stack takes from outside (the queued
    PUSH/PULL inputs: actionText, estop, operatorCommand, simRemote, instruction), with the robot holding: every
    process alive, control still holding (no damp, no walk from garbage, its deadlines kept), each flood counted by
    the process it landed in. The published (PUB/SUB) topics are flooded process by process in
    tests/integration/test_processes_survive_garbage.py: on a running stack only their one publisher can send."""
    import zmq

    from edge.msg.messages import TOPICS
    from edge.tools.garbage import malformed
    from edge.tools.operator_client import consumer_of

    consumers = {t: consumer_of(t) for t, spec in TOPICS.items() if spec.consumer_binds}
    stack.health.poll(0.6)
    before = {c: malformed_count(stack, c) or 0 for c in set(consumers.values())}
    stack.states.drain()
    ctx: zmq.Context = zmq.Context.instance()
    t0 = time.monotonic()
    for topic in consumers:
        sock = ctx.socket(zmq.PUSH)
        sock.setsockopt(zmq.SNDTIMEO, 5000)
        sock.setsockopt(zmq.LINGER, 5000)
        sock.connect(stack.bus.endpoint(topic))
        gen = malformed(topic)
        for _ in range(n):
            sock.send(next(gen))  # blocks (≤ 5 s) while the consumer's queue is full: nothing is dropped on the way
        sock.close()
    send_s = time.monotonic() - t0
    obs = stack.collect(2.0)
    stack.health.poll(0.6)
    counted = {}
    for c in set(consumers.values()):
        got = malformed_count(stack, c)
        counted[c] = None if got is None else got - before[c]
    st = [m for _, m in obs.states]
    late = np.array([m.lateness_ms for m in st]) if st else np.zeros(1)
    tilt = obs.max_tilt()
    return {
        "process": "every input topic",
        "fault": f"{n:,} malformed messages on each of {', '.join(consumers)}",
        "safe_state": "all alive, control holding, every flood counted",
        "time_ms": None,
        "sent_s": send_s,
        "dead": [name for name, _ in stack.mgr.dead()],
        "modes": sorted({m.mode for m in st}),
        "counted": counted,
        "lateness_max_ms": float(late.max()),
        "lag_events": (st[-1].lag_events - st[0].lag_events) if st else None,
        "safe": not stack.mgr.dead() and {m.mode for m in st} == {"hold"},
        "max_tilt_rad": tilt,
        "upright": None if tilt is None else tilt < UPRIGHT_TILT_RAD,
        "t0_ns": int(t0 * 1e9),
    }


# ---- bad configs -----------------------------------------------------------------------------------------------

POLICY = "configs/policies/go2_robot_lab.yaml"
# (case, what is wrong, --set overrides or a whole --config file, the text the one line must hold)
BAD_CONFIGS: tuple[tuple[str, list[str], str], ...] = (
    ("policy kp 1000", ["policy:kp: 1000.0"], "kp"),
    ("policy kd 50", ["policy:kd: 50.0"], "kd"),
    ("policy rate 5000 Hz", ["policy:rate_hz: 5000"], "rate_hz"),
    ("safety.max_kp 1000", ["safety.max_kp=1000"], "safety.max_kp"),
    ("safety.max_vx_m_s 100", ["safety.max_vx_m_s=100"], "safety.max_vx_m_s"),
    ("navigator.forward_speed_m_s 50", ["navigator.forward_speed_m_s=50"], "navigator.forward_speed_m_s"),
    ("navigator.publish_hz 1e6", ["navigator.publish_hz=1000000"], "navigator.publish_hz"),
    ("control.stand_kp 1000", ["control.stand_kp=1000"], "control.stand_kp"),
    ("safety.damp_kd 50", ["safety.damp_kd=50"], "safety.damp_kd"),
    ("safety.watchdog_timeout_s 1", ["safety.watchdog_timeout_s=1"], "safety.watchdog_timeout_s"),
    ("malformed YAML", ["file:robot: [dds_domain: 1\n  interface lo"], "yaml"),
    ("wrong config path", ["path:/nonexistent/go2.yaml"], "/nonexistent/go2.yaml"),
)


def _bad_config_cmd(what: list[str], work: Path, base: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "edge.controls.controlsd", *(a for o in base for a in ("--set", o))]
    for w in what:
        if w.startswith("policy:"):
            text = Path(POLICY).read_text()
            key = w[len("policy:") :].split(":")[0]
            lines = [ln for ln in text.splitlines() if not ln.startswith(f"{key}:")]
            lines.append(w[len("policy:") :])
            path = work / f"policy-{key}.yaml"  # the shipped contract (its model is a pkg:// reference), one value off
            path.write_text("\n".join(lines) + "\n")
            cmd += ["--set", f"control.policy={path}"]
        elif w.startswith("file:"):
            path = work / "malformed.yaml"
            path.write_text(w[len("file:") :])
            cmd += ["--config", str(path)]
        elif w.startswith("path:"):
            cmd += ["--config", w[len("path:") :]]
        else:
            cmd += ["--set", w]
    return cmd


def bad_configs(timeout_s: float = 120.0) -> list[dict]:
    """Start controlsd with each bad config (all at once) while a DDS observer listens on its domain: exit code,
    the stderr lines, whether the one line names the field, and whether any LowCmd was sent."""
    domain = dds_domain()
    observer = DdsObserver(domain)
    work = Path(tempfile.mkdtemp(prefix="edge-badcfg-", dir="/tmp"))
    base = [f"bus.run_dir={work}", f"robot.dds_domain={domain}"]
    t0 = time.monotonic()
    procs = []
    for case, what, needle in BAD_CONFIGS:
        cmd = _bad_config_cmd(what, work, base)
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append((case, needle, p, time.monotonic()))
    rows = []
    try:
        for case, needle, p, started in procs:
            out, _ = p.communicate(timeout=timeout_s)
            lines = [ln for ln in out.splitlines() if ln.strip()]
            rows.append(
                {
                    "case": case,
                    "rc": p.returncode,
                    "lines": lines,
                    "one_line": sum(" ERROR " in ln for ln in lines) == 1 and "Traceback" not in out,
                    "names_it": bool(lines) and " ERROR " in lines[-1] and needle.lower() in lines[-1].lower(),
                    "exit_ms": (time.monotonic() - started) * 1e3,
                }
            )
        time.sleep(0.2)
        lowcmds = sum(1 for t, _ in list(observer.cmds) if t >= t0)
    finally:
        for _, _, p, _ in procs:
            if p.poll() is None:
                p.kill()
        observer.close()
    for r in rows:
        r["lowcmds_on_domain"] = lowcmds
    return rows


# ---- the table -------------------------------------------------------------------------------------------------


def _fmt_ms(v) -> str:
    return "—" if v is None else f"{v:.0f} ms"


def table(rows: list[dict]) -> str:
    """The markdown table of docs/results.md: scenario, safe state, time to it, upright, data lost."""
    out = [
        "| Scenario | Safe state (as seen) | Time to it | Upright (max tilt) | Data lost |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        times = r.get("times_ms") or [r.get("time_ms")]
        t = [x for x in times if x is not None]
        when = "—" if not t else (f"{min(t):.0f}–{max(t):.0f} ms" if len(t) > 1 else f"{t[0]:.0f} ms")
        if t and len(t) < len(times):
            when += f" ({len(times) - len(t)} of {len(times)} never)"
        tilt = r.get("max_tilt_rad")
        up = "n/a (sim dead)" if r.get("upright") is None else ("yes" if r["upright"] else "**no**")
        if tilt is not None:
            up += f" ({tilt:.2f} rad)"
        lost = r.get("lost")
        lost_s = "—" if lost is None else f"{lost} of {r.get('checked', 0)}"
        state = r["safe_state"] + ("" if r.get("safe", True) else " — **not reached**")
        if r.get("after_resume") and r["process"] in ("controlsd", "simd"):
            state += f"; after SIGCONT control is in {r['after_resume']}"
        if r.get("walked_after"):
            state += "; **walked again without a command**"
        out.append(f"| {r['process']}: {r['fault']} | {state} | {when} | {up} | {lost_s} |")
    return "\n".join(out)


def merge_runs(runs: list[list[dict]]) -> list[dict]:
    """Rows of several runs of the same scenarios: times as a list, worst tilt, lost summed, safe only if always."""
    merged = []
    for group in zip(*runs):
        r = dict(group[0])
        r["times_ms"] = [g.get("time_ms") for g in group]
        tilts = [g["max_tilt_rad"] for g in group if g.get("max_tilt_rad") is not None]
        r["max_tilt_rad"] = max(tilts) if tilts else None
        ups = [g.get("upright") for g in group if g.get("upright") is not None]
        r["upright"] = all(ups) if ups else None
        r["lost"] = sum(g.get("lost") or 0 for g in group) if any("lost" in g for g in group) else None
        r["checked"] = sum(g.get("checked") or 0 for g in group)
        r["safe"] = all(g.get("safe", True) for g in group)
        r["walked_after"] = any(g.get("walked_after") for g in group)
        r["after_resume"] = "/".join(sorted({g["after_resume"] for g in group if g.get("after_resume")}))
        merged.append(r)
    return merged


def run_suite(runs: int = 1, stop_s: float = 1.0) -> dict:
    all_rows: list[list[dict]] = []
    stack = FaultStack()
    try:
        for i in range(runs):
            rows = []
            for how in ("stop", "kill"):
                for name in FAULT_PROCS:
                    row = inject_recovered(stack, name, how, stop_s=stop_s)
                    log.info("run %d %s %s: %s", i + 1, name, how, row)
                    rows.append(row)
            stack.recover()
            rows.append(load_during_walk(stack))
            stack.recover()
            rows.append(flood(stack))
            all_rows.append(rows)
        stack.recover()
        stack.mgr.stop()  # the recorder flushes and closes: every file read to its end
        for rows in all_rows:
            add_data_lost(stack, rows)
        cut = stack.cut_files
    finally:
        stack.close()
    return {
        "rows": merge_runs(all_rows),
        "runs": all_rows,
        "recordings_cut_short": cut,
        "startup_damps": stack.startup_damps,
        "damps_before_fault": stack.damps_before_fault,
        "bad_configs": bad_configs(),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="fault_bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=1, help="repetitions of every fault on one stack")
    ap.add_argument("--stop-s", type=float, default=1.0, help="how long SIGSTOP lasts before SIGCONT")
    ap.add_argument("--out", default="runs/faults.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)12s %(levelname)s %(message)s")
    res = run_suite(args.runs, args.stop_s)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1, default=str))
    print(table(res["rows"]))
    print(f"\nrecordings cut short (recorder killed), read to their last whole record: {res['recordings_cut_short']}")
    for r in res["bad_configs"]:
        print(f"bad config {r['case']}: rc {r['rc']}, {r['lowcmds_on_domain']} LowCmd, {r['lines'][-1:]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
