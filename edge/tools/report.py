"""Run report from recordings: per-action commanded / estimated / true, falls, control-loop timing, VLM timings, what
scheduling each real-time process got, lag events, LowCmd-watchdog events, and the control loop under load with and
without real-time scheduling (demo runs load_rt / load_no_rt, whose load window is in load.json beside the recording).

Input: one MCAP recording per run (written by edge.system.recordd; edge/msg/recording.py), complete or cut short by
a kill, or a RunFailed (the run's stack failed; its recording, if any, is still read). Beside a recording: load.json
(demo load runs) and episode.json (a VLN episode: layout seed, instruction, start, goal, success). Ground truth
(simTruth) is used here only, when the run was simulated.
Output: report.json and report.png (edge/tools/report_plots.py): one row per run with a PASS / FELL / DAMPED / FAILED
header and its reason, the top-down path (with the episode's layout and goal), a timeline, the amounts, the control
period histogram, VLM latencies and the camera frames each VLM query used. A run that failed, or whose recording is
missing, cut short or empty, is a row saying what failed: one bad run never loses the report.
`edge report RECORDING` makes the report of any recorded session.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.msg.recording import Recording, RecordingError, read_recording
from edge.tools.report_common import UPRIGHT_TILT_RAD, episode_line, true_amount, truth_arrays
from edge.tools.report_plots import plot_report

log = logging.getLogger("report")
NOMINAL_PERIOD_MS = 20.0
EPISODE_FILE = "episode.json"  # a VLN episode's definition and result, beside its recording
LOAD_FILE = "load.json"
STACK_FILE = "stack.json"  # beside a demo / evaluation recording: when the stack began to stop (monotonic ns)


@dataclass(frozen=True)
class RunFailed:
    """A run whose stack failed (did not start, a process died, an episode timed out): reason says what failed;
    recording is where its recorder was writing (read if it exists, for whatever it holds)."""

    reason: str
    recording: Path | None = None


def run_label(rec: Recording) -> str:
    """A recorded session's name in the report: its navigator's execution mode, else the file name."""
    status = rec.topics.get("navigatorStatus", [])
    return status[0]["msg"]["execution"] if status else rec.path.stem


def loop_stats(states: list[dict]) -> dict:
    periods = np.array([r["msg"]["period_ms"] for r in states[1:]])
    err = np.abs(periods - NOMINAL_PERIOD_MS) if len(periods) else np.zeros(1)
    return {
        "ticks": len(states),
        "missed": int(states[-1]["msg"]["missed_ticks"]) if states else 0,
        "period_error_p50_ms": float(np.percentile(err, 50)),
        "period_error_p99_ms": float(np.percentile(err, 99)),
        "period_error_max_ms": float(err.max()),
        "work_p99_ms": float(np.percentile([r["msg"]["work_ms"] for r in states], 99)) if states else 0.0,
    }


def safety_stats(log: dict[str, list[dict]]) -> dict:
    """Scheduling per real-time process (the last word of each), lag events and LowCmd-watchdog stops."""
    last = {t: (log.get(t) or [{}])[-1].get("msg", {}) for t in ("controlState", "watchdogState", "simTruth")}
    states = log.get("controlState", [])
    return {
        "realtime": {
            "controlsd": last["controlState"].get("realtime", ""),
            "watchdogd": last["watchdogState"].get("realtime", ""),
            "simd": last["simTruth"].get("realtime", ""),
        },
        "lag_events": last["controlState"].get("lag_events", 0),
        "lag_holds": [r["msg"]["reason"] for r in states if r["msg"]["reason"].startswith("lag:")][:20],
        "watchdog_stops": last["watchdogState"].get("stops", 0),
        "watchdog_reaction_ms": last["watchdogState"].get("reaction_ms", -1.0),
    }


def summarize_run(log: dict[str, list[dict]], execution: str) -> dict:
    truth = log.get("simTruth", [])
    tr = truth_arrays(truth) if truth else None
    actions = []
    for r in log.get("actionResult", []):
        m = r["msg"]
        true = true_amount(tr, m["kind"], m["start_mono_ns"], m["end_mono_ns"]) if tr is not None else None
        unit_scale = 100.0 if m["kind"] == "forward" else math.degrees(1.0)
        row = {
            "text": m["text"],
            "kind": m["kind"],
            "execution": execution,
            "outcome": m["outcome"],
            "commanded": m["commanded"],
            "estimated": m["estimated"],
            "true": true,
            "error": None if true is None or m["kind"] not in ("forward", "turn") else true - m["commanded"],
            "unit": "m" if m["kind"] == "forward" else "rad",
            "duration_s": (m["end_mono_ns"] - m["start_mono_ns"]) * 1e-9,
            "start_mono_ns": m["start_mono_ns"],
            "end_mono_ns": m["end_mono_ns"],
            "reason": m["reason"],
        }
        row["error_display"] = None if row["error"] is None else round(row["error"] * unit_scale, 2)
        actions.append(row)
    states = log.get("controlState", [])
    stood_ns = next((r["mono_ns"] for r in states if r["msg"]["mode"] == "hold"), None)
    upright = [r for r in truth if stood_ns is not None and r["mono_ns"] >= stood_ns]
    # Without simulator truth (a robot recording) whether it fell is not known here: None.
    fell = None if not truth else first_fall(states, truth) is not None or never_stood_up(states)
    min_z = min((r["msg"]["z_m"] for r in upright), default=None)
    modes = [r["msg"]["mode"] for r in states]
    run = {
        "execution": execution,
        "actions": actions,
        "fell": fell,
        "loop": loop_stats(states),
        "damped": "damp" in modes,
        "min_base_z_m_after_stand": min_z,
    }
    run |= safety_stats(log)
    if log.get("vlmOutput"):
        run["vlm"] = vlm_stats(log)
    return run


def loaded_loop(log: dict[str, list[dict]], window: dict) -> dict:
    """The control loop's timing while the busy processes ran (window from load.json)."""
    states = [r for r in log.get("controlState", []) if window["start_ns"] <= r["mono_ns"] <= window["end_ns"]]
    missed = (states[-1]["msg"]["missed_ticks"] - states[0]["msg"]["missed_ticks"]) if states else 0
    return loop_stats(states) | {"missed": missed, "busy_processes": window["busy_processes"]}


def vlm_stats(log: dict[str, list[dict]]) -> dict:
    """Per-query timings, and how long the robot stood idle between VLM actions waiting for the next answer."""
    queries = [
        {
            k: r["msg"][k]
            for k in (
                "query_id",
                "trigger",
                "text",
                "total_ms",
                "vision_ms",
                "prefill_ms",
                "decode_ms",
                "vision_calls",
                "cache_hits",
                "new_tokens",
                "frame_ids",
                "error",
                "episode_over",
            )
        }
        for r in log["vlmOutput"]
    ]
    status = log.get("navigatorStatus", [])
    last = status[-1]["msg"] if status else {}
    totals = [q["total_ms"] for q in queries]
    return {
        "queries": queries,
        "n_queries": len(queries),
        "total_ms_p50": float(np.percentile(totals, 50)),
        "total_ms_max": float(max(totals)),
        "early_queries": sum(q["trigger"] == "early" for q in queries),
        "idle_wait_s": last.get("vlm_wait_s", 0.0),
        "idle_waits": last.get("vlm_waits", 0),
        "episode_over": next((q["episode_over"] for q in queries if q["episode_over"]), ""),
    }


def accuracy_table(runs: dict[str, dict]) -> list[dict]:
    rows = []
    for execution, run in runs.items():
        for kind, unit in (("forward", "cm"), ("turn", "deg")):
            errs = [
                abs(a["error_display"])
                for a in run["actions"]
                if a["kind"] == kind and a["error"] is not None and a["outcome"] in ("completed", "timeout")
            ]  # rejected / preempted actions never ran as commanded, blocked ones ran into something
            if errs:
                rows.append(
                    {
                        "execution": execution,
                        "kind": kind,
                        "n": len(errs),
                        "unit": unit,
                        "mean_abs_error": round(float(np.mean(errs)), 2),
                        "max_abs_error": round(max(errs), 2),
                    }
                )
    return rows


def recording_stats(rec: Recording) -> dict:
    """How big a recording is and how fast it grows (disk planning: recorder.max_mb)."""
    stamps = [m["log_mono_ns"] for msgs in rec.topics.values() for m in msgs]
    duration = (max(stamps) - min(stamps)) * 1e-9 if stamps else 0.0
    size = rec.path.stat().st_size
    return {
        "file": str(rec.path),
        "complete": rec.complete,
        "messages": rec.count(),
        "images": rec.images,
        "duration_s": round(duration, 2),
        "mb": round(size / 1e6, 3),
        "mb_per_min": round(size / 1e6 / duration * 60, 2) if duration else None,
    }


def run_start_ns(log: Mapping[str, list[dict]]) -> int:
    """The run's time origin for the report's timelines: its earliest message stamp (0 for an empty log)."""
    return min((msgs[0]["mono_ns"] for msgs in log.values() if msgs), default=0)


def first_fall(states: list[dict], truth: list[dict]) -> dict | None:
    """The first simulator-truth record that is a fall, or None. The robot starts lying: falls count once control has
    stood it up (hold). Control damping lowers it onto its belly, the defined safe state (truth then reads 'fallen'):
    from control's first damp on, only tipping over (|roll| or |pitch| ≥ UPRIGHT_TILT_RAD) is a fall."""
    stood_ns = next((r["mono_ns"] for r in states if r["msg"]["mode"] == "hold"), None)
    if stood_ns is None:
        return None
    damp_ns = next((r["mono_ns"] for r in states if r["msg"]["mode"] == "damp"), None)
    for r in truth:
        if r["mono_ns"] < stood_ns:
            continue
        m = r["msg"]
        if damp_ns is None or r["mono_ns"] < damp_ns:
            if m["fallen"]:
                return r
        elif max(abs(m["roll_rad"]), abs(m["pitch_rad"])) >= UPRIGHT_TILT_RAD:
            return r
    return None


def never_stood_up(states: list[dict]) -> bool:
    """Control never reached hold, and not because it damped first (a LowState gap at stand-up: the robot lies,
    damped, as it started; the row is DAMPED)."""
    modes = {r["msg"]["mode"] for r in states}
    return "hold" not in modes and "damp" not in modes


def run_outcome(log: Mapping[str, list[dict]], run: dict, failure: str = "") -> dict:
    """The row's header: status FAILED (the run or its recording failed), FELL (simulator truth: fallen once
    standing, or never stood up without control damping), DAMPED (control or the LowCmd watchdog damped) or PASS;
    reason says what and when (seconds since the run's first message)."""
    t0 = run_start_ns(log)
    events: list[tuple[int, str, str]] = []  # (mono_ns, what, detail), told in time order
    states, truth = log.get("controlState", []), log.get("simTruth", [])
    damp = next((r for r in states if r["msg"]["mode"] == "damp"), None)
    if damp is not None:
        events.append((damp["mono_ns"], "control damped", f": {damp['msg']['reason']}"))
    wd = next((r for r in log.get("watchdogState", []) if r["msg"]["state"] == "damping"), None)
    if wd is not None:
        events.append((wd["mono_ns"], "LowCmd watchdog damped", f": {wd['msg']['reason']}"))
    fall_s, never_stood = None, False
    if run["fell"]:
        fall = first_fall(states, truth)
        if fall is None:
            never_stood = True
        else:
            fall_s = (fall["mono_ns"] - t0) * 1e-9
            mode = next((r["msg"]["mode"] for r in reversed(states) if r["mono_ns"] <= fall["mono_ns"]), "?")
            events.append((fall["mono_ns"], "fell", f" (base z {fall['msg']['z_m']:.2f} m, control in {mode})"))
    notes = ["never stood up (control never reached hold)"] if never_stood else []
    notes += [f"{what} at {(t - t0) * 1e-9:.1f} s{detail}" for t, what, detail in sorted(events)]
    if failure:
        status, notes = "FAILED", [failure, *notes]
    elif run["fell"]:
        status = "FELL"
    elif damp is not None or wd is not None:
        status = "DAMPED"
    else:
        status = "PASS"
    outcomes = [a["outcome"] for a in run["actions"]]
    counts = ", ".join(f"{outcomes.count(o)} {o}" for o in dict.fromkeys(outcomes))
    return {
        "status": status,
        "reason": "; ".join(notes) or ("no fall, no damping" if run["fell"] is False else "no damping"),
        "fall_s": fall_s,
        "actions": counts,
    }


def read_episode(run_dir: Path, log: Mapping[str, list[dict]]) -> dict | None:
    """episode.json beside the recording (a VLN episode), with the final distance to the goal from simulator truth
    when the run has it (navigation error, m). None when there is none; {"error": …} when it cannot be read."""
    path = run_dir / EPISODE_FILE
    if not path.exists():
        return None
    try:
        ep = json.loads(path.read_text())
        goal = ep["goal"]
        truth = log.get("simTruth", [])
        if truth:
            last = truth[-1]["msg"]
            ep["final_distance_m"] = round(math.hypot(last["x_m"] - goal["x"], last["y_m"] - goal["y"]), 3)
        return ep
    except (OSError, ValueError, KeyError, TypeError) as e:
        return {"error": f"{path}: {type(e).__name__}: {e}"}


def load_run(source: Path | Recording | RunFailed) -> tuple[Recording | None, Path | None, str]:
    """(the run's recording with its images, or None; its path; what failed, or "")."""
    if isinstance(source, RunFailed):
        failure, path = source.reason, source.recording
    else:
        failure, path = "", source.path if isinstance(source, Recording) else Path(source)
    if path is None:
        return None, None, failure or "no recording"
    rec = source if isinstance(source, Recording) else None
    if rec is None:
        try:
            rec = read_recording(path, images=True)
        except FileNotFoundError:
            return None, path, "; ".join(filter(None, [failure, f"recording missing: {path}"]))
        except (OSError, RecordingError) as e:
            return None, path, "; ".join(filter(None, [failure, f"recording unreadable: {e}"]))
    if not rec.count():
        failure = "; ".join(filter(None, [failure, f"recording empty (no bus messages): {path}"]))
    return rec, path, failure


def until_stop(log_: dict[str, list[dict]], run_dir: Path) -> tuple[dict[str, list[dict]], str]:
    """The run's messages before its stack began to stop (STACK_FILE beside the recording, written by the demo),
    and a note when control damped after that: the processes get SIGINT together, and controlsd damps on the
    LowState the stopped simulator no longer sends — the shutdown, not the run."""
    try:
        stop_ns = int(json.loads((run_dir / STACK_FILE).read_text())["stop_mono_ns"])
    except (OSError, ValueError, KeyError, TypeError):
        return log_, ""
    cut = {t: [m for m in msgs if m["mono_ns"] < stop_ns] for t, msgs in log_.items()}
    damps = [m for m in log_.get("controlState", []) if m["msg"]["mode"] == "damp"]
    if not damps or damps[0]["mono_ns"] < stop_ns:  # no damp, or the run's own (reported as such)
        return cut, ""
    return cut, f"control damped during the stack's shutdown ({damps[0]['msg']['reason']}), not counted"


def summarize_source(name: str, source: Path | Recording | RunFailed) -> tuple[dict, dict[str, list[dict]]]:
    """One run's summary and its messages by topic; never raises (what failed goes into the summary)."""
    rec, path, failure = load_run(source)
    log_ = rec.topics if rec is not None else {}
    log_, shutdown_note = until_stop(log_, path.parent) if path is not None else (log_, "")
    try:
        run = summarize_run(log_, name)
    except Exception as e:  # noqa: BLE001 — a malformed recording must not lose the other runs' report
        log.exception("%s: summary failed", name)
        failure = "; ".join(filter(None, [failure, f"summary failed: {type(e).__name__}: {e}"]))
        log_, run = {}, summarize_run({}, name)
    run["t0_mono_ns"] = run_start_ns(log_)
    run["outcome"] = run_outcome(log_, run, failure)
    if shutdown_note:
        run["outcome"]["reason"] += "; " + shutdown_note
    if rec is not None and rec.count() and not rec.complete:
        run["outcome"]["reason"] += "; recording cut short (no footer: recorder killed), read to its last record"
    run["recording"] = recording_stats(rec) if rec is not None else {"file": str(path) if path else None}
    if path is not None:
        episode = read_episode(path.parent, log_)
        if episode is not None:
            run["episode"] = episode
    run["_images"] = rec.image_msgs if rec is not None else {}
    return run, log_


def build_report(run_logs: Mapping[str, Path | Recording | RunFailed], out_dir: Path) -> dict:
    """One row per run (a recording's path, a recording already read, or a RunFailed), named by its key. A run whose
    recording is missing, unreadable or empty is a FAILED row; the report is written whatever any one run holds."""
    runs, logs = {}, {}
    for ex, source in run_logs.items():
        runs[ex], logs[ex] = summarize_source(ex, source)
    loaded = {}
    for ex, run in runs.items():
        window = Path(run["recording"]["file"] or ".").parent / LOAD_FILE
        if run["recording"]["file"] and window.exists():
            loaded[ex] = json.loads(window.read_text())
            run["load_window"] = loaded[ex]  # drawn on the timeline
    ok = {ex: r for ex, r in runs.items() if r["outcome"]["status"] != "FAILED"}
    normal = {ex: r for ex, r in ok.items() if ex not in loaded} or ok or runs
    report = {
        "outcomes": {ex: r["outcome"] for ex, r in runs.items()},
        "failed": {ex: r["outcome"]["reason"] for ex, r in runs.items() if r["outcome"]["status"] == "FAILED"},
        "actions": [a for r in normal.values() for a in r["actions"]],
        "fell": None if all(r["fell"] is None for r in normal.values()) else any(r["fell"] for r in normal.values()),
        "loop": {ex: r["loop"] for ex, r in runs.items()}
        | {
            "ticks": sum(r["loop"]["ticks"] for r in normal.values()),
            "missed": sum(r["loop"]["missed"] for r in normal.values()),
            "period_error_p50_ms": max((r["loop"]["period_error_p50_ms"] for r in normal.values()), default=0.0),
            "period_error_p99_ms": max((r["loop"]["period_error_p99_ms"] for r in normal.values()), default=0.0),
        },
        "under_load": {
            ex: loaded_loop(logs[ex], w)
            | {"realtime": runs[ex]["realtime"], "damped": runs[ex]["damped"], "fell": runs[ex]["fell"]}
            for ex, w in loaded.items()
        },
        "accuracy": accuracy_table(normal),
        "vlm": {ex: r["vlm"] for ex, r in runs.items() if "vlm" in r},
        "episodes": {ex: r["episode"] for ex, r in runs.items() if "episode" in r},
        "runs": {ex: {k: v for k, v in r.items() if k not in ("actions", "_images")} for ex, r in runs.items()},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    plot_report(logs, runs, out_dir / "report.png")
    return report


def summary_lines(report: dict) -> list[str]:
    """The report in a few lines for the terminal (`make demo`, `edge report`)."""
    lines = [f"{ex:16s} {o['status']:6s} {o['reason']}" for ex, o in report["outcomes"].items()]
    for ex, ep in report["episodes"].items():
        lines.append(f"{ex:16s} VLN episode: {episode_line(ep)}")
    lines.append(f"{'execution':12s} {'kind':8s} {'n':>2s} {'mean |err|':>11s} {'max |err|':>10s}")
    for row in report["accuracy"]:
        lines.append(
            f"{row['execution']:12s} {row['kind']:8s} {row['n']:2d} {row['mean_abs_error']:8.2f} {row['unit']:3s}"
            f"{row['max_abs_error']:7.2f} {row['unit']}"
        )
    loop = report["loop"]
    fell = "unknown (no simulator truth)" if report["fell"] is None else report["fell"]
    lines.append(
        f"fell: {fell}; control loop: {loop['ticks']} ticks, {loop['missed']} missed, period error "
        f"p50 {loop['period_error_p50_ms']:.3f} ms, p99 {loop['period_error_p99_ms']:.3f} ms"
    )
    for ex, v in report["under_load"].items():
        lines.append(
            f"{ex:16s} {v['busy_processes']} busy processes: period error p50 {v['period_error_p50_ms']:.3f} ms, p99 "
            f"{v['period_error_p99_ms']:.3f} ms, {v['missed']} missed; controlsd {v['realtime']['controlsd']}"
            f"{'; DAMPED' if v['damped'] else ''}"
        )
    for ex, run in report["runs"].items():
        r = run["recording"]
        if "messages" not in r:
            lines.append(f"{ex:16s} no recording ({r['file']})")
            continue
        lines.append(
            f"{ex:16s} recording {r['messages']} messages + {r['images']} images over {r['duration_s']:.1f} s: "
            f"{r['mb']:.2f} MB ({r['mb_per_min']} MB/min), {'complete' if r['complete'] else 'cut short (killed)'}"
        )
    for ex, v in report["vlm"].items():
        lines.append(
            f"{ex:16s} {v['n_queries']} VLM queries ({v['early_queries']} early), latency p50 "
            f"{v['total_ms_p50']:.0f} ms; robot idle waiting for the VLM {v['idle_wait_s']:.2f} s "
            f"({v['idle_waits']} waits); ended: {v['episode_over']}"
        )
    return lines
