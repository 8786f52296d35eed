"""Measure the control-side safety paths on the simulated Go2 (numbers for docs/results.md):

* kill -9 of controlsd while walking → the first damping LowCmd (from watchdogd) and whether the robot stays upright;
  then control is restarted: it must stand up again from lying and never resume the walk (the navigator drops it);
* the remote e-stop (L2+B held in LowState.wireless_remote, injected through the simulator) → the first damping LowCmd;
* the command-line e-stop (`edge estop`, a fresh process as an operator types it) → the first damping LowCmd.

Times are arrival times at a DDS observer in this process (rt/lowstate and rt/lowcmd on loopback, the same clock for
both), so "press → damping" is the LowState carrying the press to the LowCmd that damps, as the motors would see them.

    python -m edge.tools.safety_bench --kills 10 --remotes 10 --clis 10 --out runs/safety.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from drivers.go2.remote import ESTOP_COMBO, decode_remote
from drivers.unitree.go2 import TOPIC_LOWCMD, TOPIC_LOWSTATE, dds_config, dds_init, probe_lowcmd
from edge.common.config import EdgeConfig, load_config
from edge.common.yaml_config import parse_overrides
from edge.msg.bus import Bus
from edge.msg.messages import SimRemote
from edge.system.manager import Manager
from edge.system.process_config import procs_for
from edge.tools.operator_client import Operator, send_once

log = logging.getLogger("safety_bench")


class DdsObserver:
    """Arrival times of rt/lowcmd samples (damping or not) and of LowStates carrying wireless-remote keys, in this
    process. One DDS domain per process: the stack under test must use dds_domain()."""

    def __init__(self, domain: int):
        from unitree_sdk2py.core.channel import ChannelSubscriber
        from unitree_sdk2py.idl.unitree_go.msg.dds_ import LowCmd_, LowState_

        dds_init(domain, "lo")
        self._lock = threading.Lock()
        self.cmds: deque[tuple[float, bool]] = deque(maxlen=100_000)  # (arrival, is damping)
        self.presses: deque[tuple[float, frozenset[str]]] = deque(maxlen=10_000)
        self._subs = [ChannelSubscriber(TOPIC_LOWCMD, LowCmd_), ChannelSubscriber(TOPIC_LOWSTATE, LowState_)]
        self._subs[0].Init(self._on_cmd, 0)
        self._subs[1].Init(self._on_state, 0)

    def _on_cmd(self, msg) -> None:
        t = time.monotonic()
        m = msg.motor_cmd[:12]
        damping = all(x.kp == 0.0 for x in m) and all(x.kd > 0.0 for x in m)
        with self._lock:
            self.cmds.append((t, damping))

    def _on_state(self, msg) -> None:
        raw = bytes(msg.wireless_remote)
        if any(raw[2:4]):
            t = time.monotonic()
            with self._lock:
                self.presses.append((t, decode_remote(raw)))

    def first_damping_after(self, t0: float, timeout_s: float = 2.0) -> float | None:
        return self._wait(lambda: next((t for t, d in list(self.cmds) if t > t0 and d), None), timeout_s)

    def first_press_after(self, t0: float, combo: tuple[str, ...], timeout_s: float = 2.0) -> float | None:
        return self._wait(
            lambda: next((t for t, k in list(self.presses) if t > t0 and all(c in k for c in combo)), None), timeout_s
        )

    @staticmethod
    def _wait(find, timeout_s: float) -> float | None:
        end = time.monotonic() + timeout_s
        while True:
            v = find()
            if v is not None or time.monotonic() > end:
                return v
            time.sleep(0.005)

    def close(self) -> None:
        for s in self._subs:
            s.Close()


def dds_domain() -> int:
    """The domain this process's DDS already uses (one per process), or a random one on which nobody writes rt/lowcmd
    (other stacks and tests may share this machine: control would refuse to start beside them)."""
    cfg = dds_config()
    if cfg is not None:
        return cfg[0]
    for _ in range(20):
        domain = random.randint(20, 230)
        if not probe_lowcmd(domain, "lo", window_s=0.1):
            return domain
    raise RuntimeError("no DDS domain without rt/lowcmd writers found on lo")


class SimStack:
    """simd + controlsd + watchdogd + navigatord (sim profile, auto stand-up) on a fresh bus directory, with an
    operator, ground truth and the DDS observer. Control can be killed and restarted as a supervisor would."""

    def __init__(
        self,
        overrides: tuple[str, ...] = (),
        block: tuple[str, ...] = ("recordd", "vlmd", "simcamd"),
        extra_args: dict[str, list[str]] | None = None,
    ):
        self.domain = dds_domain()
        self.run_dir = tempfile.mkdtemp(prefix="edge-safety-", dir="/tmp")
        self.overrides = [f"bus.run_dir={self.run_dir}", f"robot.dds_domain={self.domain}", "sim.camera_hz=0"]
        self.overrides += list(overrides)
        self.cfg: EdgeConfig = load_config(None, parse_overrides(self.overrides))
        self.observer = DdsObserver(self.domain)
        self.mgr = Manager(procs_for("sim", block=list(block)), None, self.overrides, extra_args=extra_args or {})
        self.mgr.start()
        self.bus = Bus(self.run_dir)
        self.op = Operator(self.bus)
        self.truth = self.bus.sub("simTruth", conflate=False)
        self.watchdog = self.bus.sub("watchdogState")
        self.nav_results = self.bus.sub("actionResult", conflate=False)

    def wait_mode(self, modes: tuple[str, ...], timeout_s: float = 40.0):
        return self.op.wait_mode(modes, timeout_s)

    def restart_control(self) -> subprocess.Popen:
        """Start controlsd again (as systemd's Restart= would) after it died."""
        return self.restart("controlsd")

    def restart(self, name: str) -> subprocess.Popen:
        """Start process `name` again (as systemd's Restart= would), killing it first if it still runs."""
        old = self.mgr.children[name]
        if old.poll() is None:
            old.kill()
        old.wait(10)
        spec = next(p for p in self.mgr.procs if p.name == name)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.mgr.children[name] = subprocess.Popen(self.mgr.command(spec), env=env, start_new_session=True)
        return self.mgr.children[name]

    def walk(self, text: str = "move forward 300 cm", timeout_s: float = 10.0) -> None:
        self.op.say(text)
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            st = self.op.control.latest()
            if st is not None and st.msg.mode == "walk" and st.msg.vx_m_s > 0.3:
                return
            time.sleep(0.01)
        raise TimeoutError("the robot never started walking")

    def max_tilt(self, seconds: float) -> tuple[float, float]:
        """Largest |roll| / |pitch| over the next `seconds` of ground truth, and the last base height."""
        self.truth.drain()
        end, tilt, z = time.monotonic() + seconds, 0.0, math.nan
        while time.monotonic() < end:
            for r in self.truth.wait(0.05):
                tilt = max(tilt, abs(r.msg.roll_rad), abs(r.msg.pitch_rad))
                z = r.msg.z_m
        return tilt, z

    def close(self) -> None:
        self.op.close()
        self.mgr.stop()
        self.observer.close()
        shutil.rmtree(self.run_dir, ignore_errors=True)


def kill_control_while_walking(stack: SimStack) -> dict:
    """kill -9 controlsd while walking: ms to the first damping LowCmd, tilt over the next 3 s; then restart control
    and check it stands up from lying and the navigator does not resume the walk."""
    stack.walk()
    time.sleep(0.5)
    t_kill = time.monotonic()
    stack.mgr.children["controlsd"].send_signal(signal.SIGKILL)
    t_damp = stack.observer.first_damping_after(t_kill)
    tilt, z = stack.max_tilt(3.0)
    wd = stack.watchdog.latest()
    stack.restart_control()
    st = stack.wait_mode(("hold",), 40)
    walked, t_end = False, time.monotonic() + 3.0
    while time.monotonic() < t_end:  # no new command: it must not walk again
        c = stack.op.control.latest()
        walked = walked or (c is not None and c.msg.mode == "walk")
        time.sleep(0.02)
    # the navigator drops the walk when control's state stops (navigator.control_lost_s) or, at the latest, when a
    # restarted control shows a new boot_id
    gone = ("control restarted", "no controlState")
    dropped = [r.msg for r in stack.nav_results.drain() if r.msg.reason.startswith(gone)]
    return {
        "damping_ms": None if t_damp is None else (t_damp - t_kill) * 1e3,
        "watchdog_reaction_ms": None if wd is None else wd.msg.reaction_ms,
        "max_tilt_rad": tilt,
        "base_z_m": z,
        "upright": tilt < 0.5,
        "restarted_in": st.msg.mode,
        "walked_after_restart": walked,
        "navigator_dropped": len(dropped),
    }


def remote_estop_while_walking(stack: SimStack) -> dict:
    """L2+B on the remote (held 0.3 s): ms from the first LowState carrying it to the first damping LowCmd."""
    stack.walk()
    time.sleep(0.3)
    t0 = time.monotonic()
    send_once(stack.bus, "simRemote", SimRemote(keys=ESTOP_COMBO, hold_s=0.3))
    t_press = stack.observer.first_press_after(t0, ESTOP_COMBO)
    t_damp = None if t_press is None else stack.observer.first_damping_after(t_press)
    st = stack.wait_mode(("damp",), 5)
    return {
        "press_to_damping_ms": None if t_damp is None or t_press is None else (t_damp - t_press) * 1e3,
        "reason": st.msg.reason,
    }


def cli_estop_while_walking(stack: SimStack, edge: str = "") -> dict:
    """`edge estop` as typed (a fresh process): ms from launching it to the first damping LowCmd, and its run time.
    edge: the `edge` executable to time (default: this environment's)."""
    stack.walk()
    time.sleep(0.3)
    edge = edge or str(Path(sys.executable).parent / "edge")
    cmd = [edge] if Path(edge).exists() else [sys.executable, "-m", "edge.tools.cli"]
    cmd += [a for o in stack.overrides for a in ("--set", o)] + ["estop", "--reason", "bench"]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    t_exit = time.monotonic()
    t_damp = stack.observer.first_damping_after(t0)
    st = stack.wait_mode(("damp",), 5)
    return {
        "command_to_damping_ms": None if t_damp is None else (t_damp - t0) * 1e3,
        "process_ms": (t_exit - t0) * 1e3,
        "rc": proc.returncode,
        "reason": st.msg.reason,
    }


def _stats(values: list[float]) -> dict:
    v = np.array([x for x in values if x is not None], dtype=float)
    if not len(v):
        return {"n": 0}
    return {
        "n": int(len(v)),
        "min": float(v.min()),
        "p50": float(np.percentile(v, 50)),
        "p99": float(np.percentile(v, 99)),
        "max": float(v.max()),
    }


def run_bench(kills: int, remotes: int, clis: int, overrides: tuple[str, ...] = (), edge: str = "") -> dict:
    stack = SimStack(overrides)
    out: dict = {"kills": [], "remotes": [], "clis": []}
    try:
        stack.wait_mode(("hold",), 60)
        for name, n, fn in (
            ("kills", kills, kill_control_while_walking),
            ("remotes", remotes, remote_estop_while_walking),
            ("clis", clis, lambda s: cli_estop_while_walking(s, edge)),
        ):
            for i in range(n):
                r = fn(stack)
                log.info("%s %d: %s", name, i + 1, r)
                out[name].append(r)
                if name != "kills":  # e-stop latched: a restarted control stands up again
                    stack.restart_control()
                    stack.wait_mode(("hold",), 40)
        out["summary"] = {
            "kill_to_damping_ms": _stats([r["damping_ms"] for r in out["kills"]]),
            "kill_upright": f"{sum(r['upright'] for r in out['kills'])}/{len(out['kills'])}",
            "kill_max_tilt_rad": max((r["max_tilt_rad"] for r in out["kills"]), default=None),
            "kill_no_walk_after_restart": f"{sum(not r['walked_after_restart'] for r in out['kills'])}/{kills}",
            "remote_press_to_damping_ms": _stats([r["press_to_damping_ms"] for r in out["remotes"]]),
            "cli_command_to_damping_ms": _stats([r["command_to_damping_ms"] for r in out["clis"]]),
            "cli_process_ms": _stats([r["process_ms"] for r in out["clis"]]),
        }
        st, wd = stack.op.control.latest(), stack.watchdog.latest()
        out["realtime"] = {
            "controlsd": None if st is None else st.msg.realtime,
            "watchdogd": None if wd is None else wd.msg.realtime,
        }
    finally:
        stack.close()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="safety_bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--remotes", type=int, default=10)
    ap.add_argument("--clis", type=int, default=10)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override for the stack")
    ap.add_argument("--edge", default="", help="the `edge` executable whose estop is timed (default: this venv's)")
    ap.add_argument("--out", default="runs/safety.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)12s %(levelname)s %(message)s")
    res = run_bench(args.kills, args.remotes, args.clis, tuple(args.set), args.edge)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1))
    print(json.dumps(res["summary"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
