"""`make demo`: the simulated Go2 driven through the whole stack (sim ⇄ DDS ⇄ control ⇄ ZeroMQ ⇄ navigator ⇄ VLM).

Runs, each on a fresh simulator:
  vln                       the headline: vision-language navigation with the trained model (models/nav10) on a
                            val-unseen episode (NAV_DEMO_EPISODE): layout loaded by the simulator, instruction → head
                            camera → vlmd (ONNX vision + transformers LLM) → parser → navigator → control; its
                            outcome (reached or not, with the reason) in episode.json and the log, never a crash
  open_loop / closed_loop   a scripted operator stands in for the VLM (configs/demo_script.txt): execution accuracy
  vlm_overlap / vlm_no_overlap   instruction → head camera → VLM process (fixed answers, 0.8 s inference) → motion:
                            robot idle time waiting for the VLM, with and without overlapping inference and motion
  vlm_tiny_navila           the real NaVILA code path on tiny random weights: garbage answers → invalid → hold
  load_rt / load_no_rt      the same short walk while two busy processes load every core, with SCHED_FIFO for
                            control, watchdog and simulator, and without (realtime.enabled: false): the control
                            loop's period error side by side (the no-RT run may damp; it is a comparison)
Writes runs/<stamp>/report.json and report.png, and points runs/latest at them. A run that fails (its stack does
not start, a process dies, the episode does not end) is logged and is a FAILED row of the report; the others run.
A run in which control damps (latched: a LowState gap over 50 ms, a tilt, an e-stop) ends there, as the robot would:
a DAMPED row with control's reason, the defined safe state, not a failure of the demo (docs/results.md, "Fresh
clones", 2026-12-02: under load the 2-core machine showed such gaps, and what caused them).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from drivers.sim.nav_world import MAX_ANSWERS
from edge.common.config import REPO_ROOT, load_config
from edge.common.yaml_config import parse_overrides
from edge.msg.bus import Bus
from edge.system.manager import Manager
from edge.system.process_config import procs_for
from edge.tools.errors import OperatorError
from edge.tools.operator_client import Operator, instruct, read_script
from edge.tools.report import STACK_FILE, RunFailed, build_report

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
        op.wait_mode(("hold", "damp"), stand_timeout_s)  # damped at stand-up: the run ends at once (damp_reason)
        yield mgr, op, bus
        time.sleep(1.0)  # the recorder keeps the robot settling after the last action, for the report
    finally:
        # what follows is the shutdown, not the run (edge.tools.report.until_stop)
        (run_out / STACK_FILE).write_text(json.dumps({"stop_mono_ns": time.monotonic_ns()}) + "\n")
        op.close()
        mgr.stop()


def damp_reason(op: Operator) -> str | None:
    """Control's reason while it damps (latched until control restarts: nothing more can run), else None."""
    c = op.control.latest()
    return c.msg.reason if c is not None and c.msg.mode == "damp" else None


def say_all(op: Operator, sentences: list[str], name: str, mgr: Manager | None = None) -> None:
    """Each sentence after the previous one is done, as a VLM would be queried after each action. Stops, logging
    why, once control damps (the run is then a DAMPED row); any other operator error propagates (a FAILED row)."""
    for sentence in sentences:
        if mgr is not None and mgr.dead():
            raise OperatorError(f"{name}: a process died: {mgr.dead()}")
        try:  # once control damps, say() refuses at once with its reason
            for r in op.wait_for(op.say(sentence, source="script")):
                log.info(
                    "%-45s %-8s commanded %+.3f estimated %+.3f (%s: %s)",
                    r.text,
                    r.kind,
                    r.commanded,
                    r.estimated,
                    r.outcome,
                    r.reason,
                )
        except OperatorError as e:
            if why := damp_reason(op):  # the defined safe state: the run ends here, as on the robot
                log.warning("%s: control damped (%s): the run ends here (%s)", name, why, e)
                return
            raise


def run_script(sentences: list[str], run_out: Path, execution: str, config: str | None = None) -> Path:
    """The scripted operator's sentences (say_all) through the stack without a camera or VLM."""
    with sim_stack(run_out, [f"navigator.execution={execution}", "sim.camera_hz=0"], False, config) as (mgr, op, _):
        say_all(op, sentences, run_out.name, mgr)
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
            say_all(op, LOAD_SCRIPT, run_out.name, mgr)  # the no-RT run may damp: what it is there to show
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
            if why := damp_reason(op):  # the episode cannot go on: a DAMPED row, as the robot would end
                log.warning("%s: control damped during the VLM episode (%s): the run ends here", run_out.name, why)
                return run_out / RECORDING
        if not over:
            raise OperatorError(f"{run_out.name}: VLM episode did not end within {timeout_s:g} s")
        log.info("episode over: %s", over)
        while time.monotonic() < deadline:  # let the navigator finish what it was given
            if op.navigator_idle():
                break
            time.sleep(0.05)
    return run_out / RECORDING


# ---- vision-language navigation with the trained model (issue 10; docs/navigation.md §8) ------------------------
NAV_CHECKPOINT = "models/nav10"
NAV_ENGINES = REPO_ROOT / "configs" / "engines_nav10.yaml"  # its ONNX vision tower (parity-gated) + LLM manifest
NAV_VISION_MANIFEST = REPO_ROOT / "build" / "engines_nav10" / "vision" / "vision.onnx.manifest.json"
NAV_PATH_STEP_M = 0.05  # the truth path keeps a pose per 5 cm moved: the gait's sway (≈ 1 cm) adds no length
# The demo's headline episode: val-unseen (layout never trained on), one the model solves offline and, in each of
# its runs, through the stack with its stop well inside the success radius (docs/results.md, "The current model").
NAV_DEMO_EPISODE = {  # training.episodes.make_episodes("val_unseen", 3, 2, seed=1)[5] (tests/unit/test_nav_world.py)
    "episode_id": "val_unseen-1002-1",
    "layout_seed": 1002,
    "instruction": "Go through the doorway and stop at the pink ball.",
    "start": [2.640826272153995, 2.6741916939361485, 0.3141863386469823],
    "goal": "pink ball",
}


def nav_vlm_overrides(overlap: bool = False) -> list[str]:
    """vlmd on the trained model, the robot's path: ONNX vision (built by build_engines.py from configs/
    engines_nav10.yaml, here if missing or stale) + transformers LLM; Habitat-rule history (`primitive`)."""
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "build_engines.py"), "--config", str(NAV_ENGINES), "--stage", "onnx"],
        cwd=REPO_ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return [
        "vlm.model=navila",
        f"vlm.checkpoint={NAV_CHECKPOINT}",
        f"vlm.vision_manifest={NAV_VISION_MANIFEST}",
        "vlm.history=primitive",
        f"vlm.overlap={str(overlap).lower()}",
        f"vlm.max_queries={MAX_ANSWERS}",
    ]


def run_nav_episode(
    run_out: Path, episode: dict, vlm_overrides: list[str], config: str | None = None, timeout_s: float = 420.0
) -> dict:
    """One VLN episode on the whole stack: the simulator loads the episode's layout (sim.nav_layout) and starts the
    Go2 at its pose; the operator gives the instruction; it ends at the model's STOP (then the navigator finishes),
    at nav_world.MAX_ANSWERS answers or too many unparseable ones (vlmd ends the episode), at a fall or damping, or at
    `timeout_s`. Writes episode.json next to the recording; returns it with the truth path and the VLM figures.
    Success as training.rollout.score: stopped with the base centre within SUCCESS_RADIUS_M of the goal's centre.

    episode: {episode_id, layout_seed, instruction, start: [x, y, yaw] (m, m, rad), goal: landmark name}."""
    from drivers.sim.nav_world import SUCCESS_RADIUS_M, generate_layout

    goal = generate_layout(episode["layout_seed"]).landmark(episode["goal"])
    x0, y0, yaw0 = episode["start"]
    overrides = [
        "navigator.execution=closed_loop",
        "sim.camera_hz=5",
        f"sim.nav_layout={episode['layout_seed']}",
        f"sim.start_pose=[{x0}, {y0}, {yaw0}]",
        *vlm_overrides,
    ]
    path: list[list[float]] = []
    latest: list[float] = []  # the newest true pose (the path's points are NAV_PATH_STEP_M apart)
    answers: list[dict] = []
    done: set[int] = set()  # query ids the navigator has finished
    reason, idle_s, idle_n = "", 0.0, 0
    t0 = time.monotonic()
    with sim_stack(run_out, overrides, True, config) as (mgr, op, bus):
        outputs, truth = bus.sub("vlmOutput"), bus.sub("simTruth", conflate=False)

        def track() -> bool:
            """Keep the truth path (a pose per NAV_PATH_STEP_M) and the newest pose; True once the robot is down."""
            down = False
            for t in truth.drain():
                latest[:] = [t.msg.x_m, t.msg.y_m, t.msg.yaw_rad]
                if not path or math.hypot(latest[0] - path[-1][0], latest[1] - path[-1][1]) >= NAV_PATH_STEP_M:
                    path.append(list(latest))
                down = down or t.msg.fallen
            return down

        track()
        t_ready = time.monotonic()
        instruct(bus, episode["instruction"], op.cfg)
        deadline, over = t_ready + timeout_s, ""
        while not reason:
            if mgr.dead():
                raise OperatorError(f"{run_out.name}: a process died: {mgr.dead()}")
            for r in outputs.wait(0.1):
                m = r.msg
                answers.append({"query_id": m.query_id, "text": m.text, "total_ms": m.total_ms, "error": m.error})
                log.info("VLM %d (%s, %.0f ms): %r", m.query_id, m.trigger, m.total_ms, m.text)
                over = over or m.episode_over
            done.update(r.msg.query_id for r in op.results.drain())
            down = track()
            if why := damp_reason(op):  # first: a robot damped at stand-up lies, which is no fall
                reason = f"damped ({why})"
            elif down:
                reason = "fell"
            elif over:
                reason = "stop" if over == "STOP" else over
            elif len(answers) >= op.cfg.vlm.max_queries and answers[-1]["query_id"] in done and op.navigator_idle():
                # vlmd asks no more (no message says so) and the navigator has run the last answer
                reason = over = f"{len(answers)} answers without stop"
            elif time.monotonic() > deadline:
                reason = f"timeout ({timeout_s:g} s)"
        if over:  # let the navigator finish what it was given (bounded), then the final pose
            end = time.monotonic() + 30.0
            while time.monotonic() < end and not op.navigator_idle():
                time.sleep(0.05)
            time.sleep(0.5)
        c = op.control.latest()
        if track() and reason == "stop":
            reason = "fell"
        elif reason == "stop" and c is not None and c.msg.mode == "damp":
            reason = f"damped after stop ({c.msg.reason})"
        elif reason == "stop" and mgr.dead():
            reason = f"a process died after stop: {mgr.dead()}"
        st = op.status.latest()
        if st is not None:
            idle_s, idle_n = st.msg.vlm_wait_s, st.msg.vlm_waits
        t_end = time.monotonic()
    if latest and latest != path[-1]:
        path.append(list(latest))  # the final pose ends the path: NE from where the robot really stopped
    last = path[-1] if path else [x0, y0, yaw0]
    ne = math.hypot(last[0] - goal.x, last[1] - goal.y)
    stopped = reason == "stop"
    out = {
        "episode_id": episode.get("episode_id", ""),
        "layout_seed": episode["layout_seed"],
        "instruction": episode["instruction"],
        "start": [x0, y0, yaw0],
        "goal": {"colour": goal.colour, "shape": goal.shape, "x": goal.x, "y": goal.y, "radius_m": goal.radius},
        "success_radius_m": SUCCESS_RADIUS_M,
        "success": stopped and ne <= SUCCESS_RADIUS_M,
        "stop_reason": reason,
        "stopped": stopped,
        "final": last,
        "ne_m": ne,
        "path": path,
        "answers": answers,
        "vlm_idle_s": idle_s,
        "vlm_idle_waits": idle_n,
        "episode_s": t_end - t_ready,
        "wall_s": time.monotonic() - t0,
    }
    (run_out / "episode.json").write_text(json.dumps(out, indent=1) + "\n")
    log.info(
        "%s: %s, NE %.2f m, %d answers, %s",
        run_out.name,
        "SUCCESS" if out["success"] else "not reached",
        ne,
        len(answers),
        reason,
    )
    return out


RUNS = ("vln", "open_loop", "closed_loop", "vlm_overlap", "vlm_no_overlap", "vlm_tiny_navila", "load_rt", "load_no_rt")


def _run_one(mode: str, stamp: Path, script: Path, fixed: list[str], config: str | None) -> Path:
    if mode in ("open_loop", "closed_loop"):
        return run_script(read_script(script), stamp / mode, mode, config)
    if mode in ("vlm_overlap", "vlm_no_overlap"):
        return run_vlm_episode(stamp / mode, [*fixed, f"vlm.overlap={mode == 'vlm_overlap'}"], config)
    if mode in ("load_rt", "load_no_rt"):
        return run_loaded(stamp / mode, mode == "load_rt", config)
    if mode == "vln":  # reaching the goal or not is in episode.json; a fall or a failed run is a report row
        run_nav_episode(stamp / mode, NAV_DEMO_EPISODE, nav_vlm_overrides(), config)
        return stamp / mode / RECORDING
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
    if (
        stamp / "vln" / "episode.json"
    ).is_file():  # reached or not: reported, never a failure of the demo (a fall is, through report["fell"])
        ep = json.loads((stamp / "vln" / "episode.json").read_text())
        report["vln"] = {k: ep[k] for k in ("instruction", "success", "stop_reason", "ne_m", "success_radius_m")}
        (stamp / "report.json").write_text(json.dumps(report, indent=2))
        log.info(
            "vln: %r → %s (%s), %.2f m from the goal (success radius %.2f m)",
            ep["instruction"],
            "REACHED" if ep["success"] else "NOT REACHED",
            ep["stop_reason"],
            ep["ne_m"],
            ep["success_radius_m"],
        )
    latest = out_root / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    os.symlink(stamp.name, latest)
    return report
