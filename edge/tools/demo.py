"""`make demo`: the simulated Go2 driven through the whole stack (sim ⇄ DDS ⇄ control ⇄ ZeroMQ ⇄ navigator ⇄ VLM).

Runs, each on a fresh simulator:
  open_loop / closed_loop   a scripted operator stands in for the VLM (configs/demo_script.txt): execution accuracy
  vlm_overlap / vlm_no_overlap   instruction → head camera → VLM process (fixed answers, 0.8 s inference) → motion:
                            robot idle time waiting for the VLM, with and without overlapping inference and motion
  vlm_tiny_navila           the real NaVILA code path on tiny random weights: garbage answers → invalid → hold
  load_rt / load_no_rt      the same short walk while two busy processes load every core, with SCHED_FIFO for
                            control, watchdog and simulator, and without (realtime.enabled: false): the control
                            loop's period error side by side (the no-RT run may damp; it is a comparison)
Writes runs/<stamp>/report.json and report.png, and points runs/latest at them. A run that fails (its stack does
not start, a process dies, the episode does not end) is logged and is a FAILED row of the report; the others run.
"""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from edge.common.config import REPO_ROOT, load_config
from edge.common.yaml_config import parse_overrides
from edge.msg.bus import Bus
from edge.system.manager import Manager
from edge.system.process_config import procs_for
from edge.tools.errors import OperatorError
from edge.tools.operator_client import Operator, instruct, read_script
from edge.tools.report import RunFailed, build_report

log = logging.getLogger("demo")
RECORDING = "bus.mcap"  # each run's recording (edge/msg/recording.py), in its folder
DEMO_SCRIPT = REPO_ROOT / "configs" / "demo_script.txt"
INSTRUCTION = "Walk forward past the sofa, turn left and stop in front of the door."
VLM_ANSWERS = [
    "The next action is move forward 50 cm.",
    "The next action is turn left 30 degrees.",
    "The next action is move forward 50 cm.",
    "The next action is turn right 15 degrees.",
    "The next action is stop.",
]


@contextmanager
def sim_stack(
    run_out: Path, overrides: list[str], with_vlm: bool, config: str | None = None, stand_timeout_s: float = 40.0
):
    """Start sim + control + navigator + recorder (+ VLM), wait until every process reports ready (bounded, with an
    error naming what is not) and the robot stands, stop all on exit."""
    run_dir = tempfile.mkdtemp(prefix="edge-", dir="/tmp")
    overrides = [f"bus.run_dir={run_dir}", f"robot.dds_domain={random.randint(100, 200)}", *overrides]
    run_out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(config, parse_overrides(overrides))
    mgr = Manager(
        procs_for("sim", block=[] if with_vlm else ["vlmd", "simcamd"]),
        config,
        overrides,
        extra_args={"recordd": ["--out", str(run_out / RECORDING)]},
    )
    bus = Bus(cfg.bus.run_dir, cfg.bus.tcp)
    op = Operator(bus, cfg, name="demo")
    try:
        mgr.start()
        mgr.wait_ready()
        op.wait_mode(("hold",), stand_timeout_s)
        yield mgr, op, bus
        time.sleep(1.0)  # the recorder keeps the robot settling after the last action, for the report
    finally:
        op.close()
        mgr.stop()


def run_script(sentences: list[str], run_out: Path, execution: str, config: str | None = None) -> Path:
    """Each sentence after the previous one is done, as a VLM would be queried after each action."""
    with sim_stack(run_out, [f"navigator.execution={execution}", "sim.camera_hz=0"], False, config) as (mgr, op, _):
        for sentence in sentences:
            if mgr.dead():
                raise OperatorError(f"{run_out.name}: a process died: {mgr.dead()}")
            for r in op.wait_for(op.say(sentence, source="script")):
                log.info(
                    "%-45s %-8s commanded %+.3f estimated %+.3f (%s)",
                    r.text,
                    r.kind,
                    r.commanded,
                    r.estimated,
                    r.outcome,
                )
    return run_out / RECORDING


LOAD_SCRIPT = ["The next action is move forward 50 cm.", "The next action is turn left 30 degrees."]
BUSY_PROCESSES = 2


@contextmanager
def busy_load(n: int = BUSY_PROCESSES):
    """n processes spinning at normal priority (as the issue's measurement): every core loaded."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def run_loaded(run_out: Path, realtime: bool, config: str | None = None) -> Path:
    """A short closed-loop walk under busy_load(), recording when the load was on (load.json beside the recording)."""
    overrides = ["navigator.execution=closed_loop", "sim.camera_hz=0", f"realtime.enabled={str(realtime).lower()}"]
    with sim_stack(run_out, overrides, False, config) as (mgr, op, _):
        with busy_load():
            start_ns = time.monotonic_ns()
            for sentence in LOAD_SCRIPT:
                try:
                    for r in op.wait_for(op.say(sentence, source="script")):
                        log.info("under load (realtime %s): %s %s (%s)", realtime, r.kind, r.outcome, r.reason)
                except OperatorError as e:  # control damped under the load: what this run is there to show
                    log.warning("under load (realtime %s): %s", realtime, e)
                    break
            end_ns = time.monotonic_ns()
    (run_out / "load.json").write_text(
        json.dumps({"busy_processes": BUSY_PROCESSES, "realtime": realtime, "start_ns": start_ns, "end_ns": end_ns})
    )
    return run_out / RECORDING


def run_vlm_episode(
    run_out: Path, vlm_overrides: list[str], config: str | None = None, timeout_s: float = 60.0
) -> Path:
    """Give the instruction, wait until the VLM ends the episode and the navigator has finished."""
    overrides = ["navigator.execution=closed_loop", "sim.camera_hz=5", *vlm_overrides]
    with sim_stack(run_out, overrides, True, config) as (mgr, op, bus):
        outputs = bus.sub("vlmOutput")
        instruct(bus, INSTRUCTION, op.cfg)
        deadline, over = time.monotonic() + timeout_s, ""
        while not over and time.monotonic() < deadline:
            if mgr.dead():
                raise OperatorError(f"{run_out.name}: a process died: {mgr.dead()}")
            for r in outputs.wait(0.1):
                log.info("VLM %d (%s, %.0f ms): %r", r.msg.query_id, r.msg.trigger, r.msg.total_ms, r.msg.text)
                over = r.msg.episode_over
            c = op.control.latest()
            if c is not None and c.msg.mode == "damp":  # the episode cannot go on: say why at once
                raise OperatorError(f"{run_out.name}: control damped during the VLM episode ({c.msg.reason})")
        if not over:
            raise OperatorError(f"{run_out.name}: VLM episode did not end within {timeout_s:g} s")
        log.info("episode over: %s", over)
        while time.monotonic() < deadline:  # let the navigator finish what it was given
            st = op.status.latest()
            if st is not None and st.age_s() < 0.3 and st.msg.state != "executing" and st.msg.queue_len == 0:
                break
            time.sleep(0.05)
    return run_out / RECORDING


RUNS = ("open_loop", "closed_loop", "vlm_overlap", "vlm_no_overlap", "vlm_tiny_navila", "load_rt", "load_no_rt")


def _run_one(mode: str, stamp: Path, script: Path, fixed: list[str], config: str | None) -> Path:
    if mode in ("open_loop", "closed_loop"):
        return run_script(read_script(script), stamp / mode, mode, config)
    if mode in ("vlm_overlap", "vlm_no_overlap"):
        return run_vlm_episode(stamp / mode, [*fixed, f"vlm.overlap={mode == 'vlm_overlap'}"], config)
    if mode in ("load_rt", "load_no_rt"):
        return run_loaded(stamp / mode, mode == "load_rt", config)
    if mode == "vlm_tiny_navila":
        from exporters.tiny import write_tiny_navila

        ckpt = write_tiny_navila(stamp / "tiny_navila_checkpoint")
        return run_vlm_episode(stamp / mode, ["vlm.model=navila", f"vlm.checkpoint={ckpt}"], config)
    raise AssertionError(mode)  # run_demo checked the names


def run_demo(out_root: Path, modes: list[str], script: Path = DEMO_SCRIPT, config: str | None = None) -> dict:
    unknown = [m for m in modes if m not in RUNS]
    if unknown:
        raise ValueError(f"unknown demo run(s) {unknown}: choose from {', '.join(RUNS)}")
    stamp = out_root / time.strftime("%Y%m%d-%H%M%S")
    logs: dict[str, Path | RunFailed] = {}
    fixed = ["vlm.model=fixed", "vlm.fixed_latency_s=0.8", "vlm.fixed_answers=[" + ", ".join(VLM_ANSWERS) + "]"]
    for mode in modes:
        t0 = time.monotonic()
        try:
            logs[mode] = _run_one(mode, stamp, script, fixed, config)
        except Exception as e:  # noqa: BLE001 — a failed run is a row of the report (FAILED, why), never a lost report
            log.exception("%s run failed", mode)
            logs[mode] = RunFailed(f"{type(e).__name__}: {e}", stamp / mode / RECORDING)
        log.info("%s run: %.1f s", mode, time.monotonic() - t0)
    report = build_report(logs, stamp)
    latest = out_root / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    os.symlink(stamp.name, latest)
    return report
