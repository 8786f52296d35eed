"""`make demo`: the simulated Go2 driven through the whole stack (sim ⇄ DDS ⇄ control ⇄ ZeroMQ ⇄ navigator ⇄
scripted operator), once with open-loop timing (as NaVILA) and once closed-loop on the robot's own estimate.
Writes runs/<stamp>/report.json and report.png, and points runs/latest at them."""
from __future__ import annotations

import logging
import os
import random
import tempfile
import time
from pathlib import Path

from edge.bus import Bus
from edge.config import REPO_ROOT, load_config
from edge.manager import Manager
from edge.operator import Operator, read_script
from edge.process_config import procs_for
from edge.report import build_report

log = logging.getLogger("demo")
DEMO_SCRIPT = REPO_ROOT / "configs" / "demo_script.txt"


def run_stack_script(sentences: list[str], run_out: Path, execution: str, config: str | None = None,
                     extra_overrides: list[str] = (), stand_timeout_s: float = 30.0) -> Path:
    """Start sim + control + navigator + recorder, stand up, send each sentence after the previous one is done,
    stop everything. Returns the recorded bus log."""
    run_dir = tempfile.mkdtemp(prefix="edge-", dir="/tmp")
    domain = random.randint(100, 200)          # keeps concurrent runs on one machine apart
    overrides = [f"bus.run_dir={run_dir}", f"robot.dds_domain={domain}", f"navigator.execution={execution}",
                 "sim.camera_hz=0", *extra_overrides]
    run_out.mkdir(parents=True, exist_ok=True)
    bus_log = run_out / "bus.jsonl"
    cfg = load_config(config, dict(o.split("=", 1) for o in overrides))
    mgr = Manager(procs_for("sim", block=["vlm"]), config, overrides, extra_args={"recorder": ["--out", str(bus_log)]})
    mgr.start()
    op = Operator(Bus(cfg.bus.run_dir, cfg.bus.tcp))
    try:
        op.wait_mode(("hold",), stand_timeout_s)
        time.sleep(0.5)
        for sentence in sentences:
            if mgr.dead():
                raise RuntimeError(f"a process died: {mgr.dead()}")
            qid = op.say(sentence, source="script")
            for r in op.wait_for(qid):
                log.info("%-45s %-9s commanded %+.3f estimated %+.3f (%s)", r.text, r.kind, r.commanded,
                         r.estimated, r.outcome)
        time.sleep(1.0)
    finally:
        op.close()
        mgr.stop()
    return bus_log


def run_demo(out_root: Path, modes: list[str], script: Path = DEMO_SCRIPT, config: str | None = None) -> dict:
    stamp = out_root / time.strftime("%Y%m%d-%H%M%S")
    sentences = read_script(script)
    logs = {}
    for mode in modes:
        t0 = time.monotonic()
        logs[mode] = run_stack_script(sentences, stamp / mode, mode, config)
        log.info("%s run: %.1f s", mode, time.monotonic() - t0)
    report = build_report(logs, stamp)
    latest = out_root / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    os.symlink(stamp.name, latest)
    return report
