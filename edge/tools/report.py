"""Run report from recordings: per-action commanded / estimated / true, falls, control-loop timing, VLM timings, what
scheduling each real-time process got, lag events, LowCmd-watchdog events, and the control loop under load with and
without real-time scheduling (demo runs load_rt / load_no_rt, whose load window is in load.json beside the recording).

Input: one MCAP recording per run (written by edge.system.recordd; edge/msg/recording.py), complete or cut short by
a kill. Ground truth (simTruth) is used here only, when the run was simulated.
Output: report.json and report.png (top-down trajectory with action boundaries, per-action bars, period histogram).
`edge report RECORDING` makes the report of any recorded session.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edge.msg.recording import Recording, read_recording

NOMINAL_PERIOD_MS = 20.0


def run_label(rec: Recording) -> str:
    """A recorded session's name in the report: its navigator's execution mode, else the file name."""
    status = rec.topics.get("navigatorStatus", [])
    return status[0]["msg"]["execution"] if status else rec.path.stem


def _truth_arrays(truth: list[dict]) -> dict[str, np.ndarray]:
    t = np.array([r["mono_ns"] for r in truth], dtype=np.int64)
    cols = {
        k: np.array([r["msg"][k] for r in truth]) for k in ("x_m", "y_m", "z_m", "yaw_rad", "roll_rad", "pitch_rad")
    }
    cols["yaw_unwrapped"] = np.unwrap(cols["yaw_rad"])
    cols["t"] = t
    return cols


def _at(tr: dict[str, np.ndarray], key: str, t_ns: int) -> float:
    return float(np.interp(t_ns, tr["t"], tr[key]))


def true_amount(tr: dict[str, np.ndarray], kind: str, start_ns: int, end_ns: int) -> float:
    """Forward: displacement along the heading at the start; turn: yaw change (unwrapped, CCW positive)."""
    if kind == "forward":
        yaw0 = _at(tr, "yaw_unwrapped", start_ns)
        dx = _at(tr, "x_m", end_ns) - _at(tr, "x_m", start_ns)
        dy = _at(tr, "y_m", end_ns) - _at(tr, "y_m", start_ns)
        return dx * math.cos(yaw0) + dy * math.sin(yaw0)
    if kind == "turn":
        return _at(tr, "yaw_unwrapped", end_ns) - _at(tr, "yaw_unwrapped", start_ns)
    return 0.0


def short_label(a: dict) -> str:
    if a["kind"] == "forward":
        return f"fwd {a['commanded'] * 100:.0f} cm"
    if a["kind"] == "turn":
        return f"{'left' if a['commanded'] > 0 else 'right'} {abs(math.degrees(a['commanded'])):.0f}°"
    return a["kind"]


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
    tr = _truth_arrays(truth) if truth else None
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
    # The robot starts lying down: judge falls only once control has stood it up.
    stood_ns = next((r["mono_ns"] for r in states if r["msg"]["mode"] == "hold"), None)
    upright = [r for r in truth if stood_ns is not None and r["mono_ns"] >= stood_ns]
    # Without simulator truth (a robot recording) whether it fell is not known here: None.
    fell = None if not truth else stood_ns is None or any(r["msg"]["fallen"] for r in upright)
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
            ]  # rejected / preempted actions never ran as commanded
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


def build_report(run_logs: Mapping[str, Path | Recording], out_dir: Path) -> dict:
    """One run per recording (a path, or a recording already read), named by its key."""
    recs = {ex: p if isinstance(p, Recording) else read_recording(p) for ex, p in run_logs.items()}
    logs = {ex: r.topics for ex, r in recs.items()}
    runs = {ex: summarize_run(log, ex) | {"recording": recording_stats(recs[ex])} for ex, log in logs.items()}
    windows = {ex: r.path.parent / "load.json" for ex, r in recs.items()}
    loaded = {ex: json.loads(w.read_text()) for ex, w in windows.items() if w.exists()}
    normal = {ex: r for ex, r in runs.items() if ex not in loaded} or runs
    report = {
        "actions": [a for r in normal.values() for a in r["actions"]],
        "fell": None if all(r["fell"] is None for r in normal.values()) else any(r["fell"] for r in normal.values()),
        "loop": {ex: r["loop"] for ex, r in runs.items()}
        | {
            "ticks": sum(r["loop"]["ticks"] for r in normal.values()),
            "missed": sum(r["loop"]["missed"] for r in normal.values()),
            "period_error_p50_ms": max(r["loop"]["period_error_p50_ms"] for r in normal.values()),
            "period_error_p99_ms": max(r["loop"]["period_error_p99_ms"] for r in normal.values()),
        },
        "under_load": {
            ex: loaded_loop(logs[ex], w)
            | {"realtime": runs[ex]["realtime"], "damped": runs[ex]["damped"], "fell": runs[ex]["fell"]}
            for ex, w in loaded.items()
        },
        "accuracy": accuracy_table(normal),
        "vlm": {ex: r["vlm"] for ex, r in runs.items() if "vlm" in r},
        "runs": {ex: {k: v for k, v in r.items() if k != "actions"} for ex, r in runs.items()},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    plot_report(logs, runs, out_dir / "report.png")
    return report


def summary_lines(report: dict) -> list[str]:
    """The report in a few lines for the terminal (`make demo`, `edge report`)."""
    lines = [f"{'execution':12s} {'kind':8s} {'n':>2s} {'mean |err|':>11s} {'max |err|':>10s}"]
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


def plot_report(logs: dict[str, dict[str, list[dict]]], runs: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(logs)
    fig, axes = plt.subplots(n, 4, figsize=(24, 5.2 * n), squeeze=False)
    for row, (ex, log) in enumerate(logs.items()):
        _plot_trajectory(axes[row, 0], ex, log, runs[ex])
        _plot_amounts(axes[row, 1], ex, runs[ex])
        _plot_periods(axes[row, 2], ex, log, runs[ex])
        _plot_vlm(axes[row, 3], ex, runs[ex])
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)


def _plot_trajectory(ax, ex: str, log: dict, run: dict) -> None:
    truth, odo = log.get("simTruth", []), log.get("odometry", [])
    if truth:
        tr = _truth_arrays(truth)
        ax.plot(tr["x_m"], tr["y_m"], "k-", lw=1.5, label="true (simulator)")
        if odo:
            # The robot's own estimate starts at its own origin: place it at the true start pose to compare.
            t0 = odo[0]["mono_ns"]
            x0, y0, yaw0 = _at(tr, "x_m", t0), _at(tr, "y_m", t0), _at(tr, "yaw_unwrapped", t0)
            ox = np.array([r["msg"]["x_m"] for r in odo])
            oy = np.array([r["msg"]["y_m"] for r in odo])
            c, s = math.cos(yaw0), math.sin(yaw0)
            ax.plot(x0 + c * ox - s * oy, y0 + s * ox + c * oy, "C1--", lw=1.2, label="estimated (IMU + legs)")
        for i, a in enumerate(run["actions"]):
            for t_ns, marker in ((a["start_mono_ns"], "o"), (a["end_mono_ns"], "s")):
                ax.plot(_at(tr, "x_m", t_ns), _at(tr, "y_m", t_ns), marker, color=f"C{2 + i % 7}", ms=6)
            ax.annotate(
                f"{i + 1} {short_label(a)}",
                (_at(tr, "x_m", a["start_mono_ns"]), _at(tr, "y_m", a["start_mono_ns"])),
                fontsize=7,
                xytext=(4, 4 + 9 * (i % 3)),
                textcoords="offset points",
            )
    elif odo:  # a robot recording: the robot's own estimate only
        ax.plot([r["msg"]["x_m"] for r in odo], [r["msg"]["y_m"] for r in odo], "C1-", lw=1.2, label="estimated")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(f"{ex}: top-down trajectory (o start, □ end of action)", fontsize=10)
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    if truth or odo:
        ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)


def _plot_amounts(ax, ex: str, run: dict) -> None:
    acts = [a for a in run["actions"] if a["kind"] in ("forward", "turn")]
    labels = [f"{i + 1} {short_label(a)}" for i, a in enumerate(acts)]
    conv = [100.0 if a["kind"] == "forward" else math.degrees(1.0) for a in acts]
    xs = np.arange(len(acts))
    for k, key in enumerate(("commanded", "estimated", "true")):
        ax.bar(xs + (k - 1) * 0.27, [abs(a[key] or 0.0) * c for a, c in zip(acts, conv)], 0.27, label=key)
    ax.set_xticks(xs, labels, fontsize=8)
    ax.set_ylabel("|amount| [cm or deg]")
    ax.set_title(f"{ex}: commanded vs estimated vs true", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def _plot_periods(ax, ex: str, log: dict, run: dict) -> None:
    ax.hist([r["msg"]["period_ms"] for r in log.get("controlState", [])[1:]], bins=60, color="C0")
    st = run["loop"]
    ax.set_title(
        f"{ex}: control period, {st['ticks']} ticks, {st['missed']} missed, "
        f"|err| p50 {st['period_error_p50_ms']:.3f} / p99 {st['period_error_p99_ms']:.2f} ms",
        fontsize=9,
    )
    ax.set_xlabel("tick start-to-start period [ms]")
    if st["ticks"] > 1:
        ax.set_yscale("log")


def _plot_vlm(ax, ex: str, run: dict) -> None:
    vlm = run.get("vlm")
    if not vlm:
        ax.axis("off")
        ax.text(0.5, 0.5, "scripted operator (no VLM)", ha="center", va="center", fontsize=10)
        return
    qs = vlm["queries"]
    xs = np.arange(len(qs))
    bottom = np.zeros(len(qs))
    for key, name in (("vision_ms", "vision"), ("prefill_ms", "prefill"), ("decode_ms", "decode")):
        vals = np.array([q[key] for q in qs])
        ax.bar(xs, vals, 0.6, bottom=bottom, label=name)
        bottom += vals
    ax.bar(
        xs,
        np.maximum(0, np.array([q["total_ms"] for q in qs]) - bottom),
        0.6,
        bottom=bottom,
        label="other / transport",
        color="0.7",
    )
    ax.set_xticks(xs, [f"{q['query_id']} {q['trigger']}" for q in qs], fontsize=8)
    ax.set_ylabel("query latency [ms]")
    ax.set_title(
        f"{ex}: VLM queries; robot idle waiting {vlm['idle_wait_s']:.2f} s over {vlm['idle_waits']} "
        f"waits; ended: {vlm['episode_over'] or '-'}",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
