"""report.png: one block per run (edge/tools/report.py gathers the numbers; this module only draws).

A run's block:
- a header: PASS / FELL / DAMPED / FAILED with the reason, and for a VLN episode (episode.json) its result;
- a row: top-down path (simulator truth and the robot's estimate; with episode.json the layout of
  drivers.sim.nav_world.generate_layout(layout_seed): walls, door posts, landmarks in their colours, the goal's success
  circle, the instruction in the title) · a timeline (control-mode bands, action spans labelled with their sentence,
  VLM query → answer bars with the answer, commanded vs measured velocity: vx / vy in m/s, yaw rate in deg/s) ·
  forward amounts in cm · turn amounts in degrees (separate axes) · control period histogram · VLM latency bars;
- a strip of the camera frames each VLM query used (edge/tools/report_frames.py: query_frames says which).
Every panel is drawn on its own: one that fails says so in its place, the rest of the report is drawn.
"""

from __future__ import annotations

import logging
import math
import textwrap
from pathlib import Path

import numpy as np

from edge.tools.report_common import at, episode_line, short_label, short_sentence, truth_arrays
from edge.tools.report_frames import plot_strip, strip_rows

log = logging.getLogger("report")

DPI = 80
WIDTH_IN = 28.0
MAIN_H_IN, EMPTY_H_IN, HEADER_H_IN, STRIP_H_IN = 4.8, 0.8, 0.75, 2.0
MODE_COLOURS = {"passive": "0.75", "stand_up": "#9ecae1", "hold": "#a1d99b", "walk": "#3182bd", "damp": "#de2d26"}
OUTCOME_COLOURS = {
    "completed": "#31a354",
    "timeout": "#fd8d3c",
    "blocked": "#a63603",
    "preempted": "#9e9ac8",
    "invalid": "0.6",
}
STATUS_COLOURS = {"PASS": "#238b45", "DAMPED": "#e6550d", "FELL": "#cb181d", "FAILED": "#cb181d"}


def plot_report(logs: dict[str, dict[str, list[dict]]], runs: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strips = {ex: strip_rows(logs[ex], runs[ex]) for ex in logs}
    main_h = {ex: MAIN_H_IN if any(logs[ex].values()) else EMPTY_H_IN for ex in logs}  # nothing recorded: header only
    heights = [HEADER_H_IN + main_h[ex] + STRIP_H_IN * strips[ex] for ex in logs]
    fig = plt.figure(figsize=(WIDTH_IN, sum(heights) + 0.2 * len(heights)))
    gap_in = 1.0  # between one run's x labels and the next run's header
    outer = fig.add_gridspec(len(logs), 1, height_ratios=heights, hspace=gap_in / (sum(heights) / len(heights)))
    for row, ex in enumerate(logs):
        log_, run = logs[ex], runs[ex]
        top_h, strip_h = HEADER_H_IN + main_h[ex], STRIP_H_IN * strips[ex]
        if strip_h:  # the strip below the main row's x labels (≈ 0.9 in)
            parts = outer[row].subgridspec(2, 1, height_ratios=[top_h, strip_h], hspace=0.9 / ((top_h + strip_h) / 2))
            top, strip_spec = parts[0], parts[1]
        else:
            top, strip_spec = outer[row], None
        block = top.subgridspec(2, 1, height_ratios=[HEADER_H_IN, main_h[ex]], hspace=0.5 / (top_h / 2))
        _header(fig.add_subplot(block[0]), ex, run)
        if main_h[ex] == EMPTY_H_IN:
            ax = fig.add_subplot(block[1])
            ax.axis("off")
            ax.text(0.01, 0.5, f"nothing recorded ({run['recording'].get('file')})", fontsize=11, va="center")
            continue
        main = block[1].subgridspec(1, 6, width_ratios=[1.25, 3.3, 0.75, 0.75, 1.0, 1.1], wspace=0.28)
        _safe(fig.add_subplot(main[0]), _plot_trajectory, ex, log_, run)
        _safe_timeline(fig, main[1], log_, run)
        _safe(fig.add_subplot(main[2]), _plot_amounts, run, "forward")
        _safe(fig.add_subplot(main[3]), _plot_amounts, run, "turn")
        _safe(fig.add_subplot(main[4]), _plot_periods, log_, run)
        _safe(fig.add_subplot(main[5]), _plot_vlm, run)
        if strip_spec is not None:
            try:
                plot_strip(fig, strip_spec, log_, run, strips[ex])
            except Exception as e:  # noqa: BLE001 — the rest of the report is still drawn
                log.exception("%s: frame strip failed", ex)
                _failed(fig.add_subplot(strip_spec), e)
    fig.subplots_adjust(left=0.03, right=0.99, top=1 - 0.1 / fig.get_figheight(), bottom=0.4 / fig.get_figheight())
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def _safe(ax, draw, *args) -> None:
    try:
        draw(ax, *args)
    except Exception as e:  # noqa: BLE001 — one panel failing must not lose the report
        log.exception("report panel %s failed", draw.__name__)
        ax.clear()
        _failed(ax, e)


def _failed(ax, e: Exception) -> None:
    ax.axis("off")
    ax.text(0.5, 0.5, textwrap.fill(f"panel failed: {type(e).__name__}: {e}", 60), ha="center", va="center")


def _seconds(log_: dict, run: dict, topic: str) -> np.ndarray:
    """A topic's message stamps in seconds since the run's first message."""
    return (np.array([r["mono_ns"] for r in log_.get(topic, [])], dtype=np.int64) - run["t0_mono_ns"]) * 1e-9


def _header(ax, ex: str, run: dict) -> None:
    ax.axis("off")
    o = run["outcome"]
    text = f"{ex}: {o['status']}  —  {o['reason']}"
    if o["actions"]:
        text += f"   (actions: {o['actions']})"
    lines = textwrap.wrap(text, 210)
    text = "\n".join(lines[:2]) + (" […]" if len(lines) > 2 else "")
    ax.text(0, 1, text, fontsize=12, weight="bold", color=STATUS_COLOURS[o["status"]], va="top", transform=ax.transAxes)
    ep = run.get("episode")
    if ep is not None:
        colour = "0.3" if ep.get("success") is None else "#238b45" if ep["success"] else "#cb181d"
        ax.text(
            0,
            0,
            textwrap.shorten("VLN episode: " + episode_line(ep), 250),
            fontsize=11,
            color=colour,
            va="bottom",
            transform=ax.transAxes,
        )


# ---- top-down -------------------------------------------------------------------------------------------------


def _plot_layout(ax, ep: dict) -> None:
    """Walls, door posts and landmarks of the episode's layout; the goal's success circle; the start pose."""
    from matplotlib.patches import Circle, Polygon, Rectangle

    from drivers.sim.nav_world import DOOR_FRAME_RGB, LANDMARK_COLOURS, door_posts, generate_layout

    layout = generate_layout(int(ep["layout_seed"]))
    for w in layout.walls:
        ax.add_patch(Rectangle((w.x0, w.y0), w.x1 - w.x0, w.y1 - w.y0, color=layout.wall_rgb, ec="0.4", lw=0.5))
    for p in door_posts(layout):
        ax.add_patch(Rectangle((p.x0, p.y0), p.x1 - p.x0, p.y1 - p.y0, color=DOOR_FRAME_RGB))
    for lm in layout.landmarks:
        rgb = LANDMARK_COLOURS[lm.colour]
        if lm.shape == "box":  # a square footprint turned by the landmark's yaw
            c, s, h = math.cos(lm.yaw), math.sin(lm.yaw), lm.radius
            corners = [
                (lm.x + c * dx - s * dy, lm.y + s * dx + c * dy) for dx, dy in ((-h, -h), (h, -h), (h, h), (-h, h))
            ]
            ax.add_patch(Polygon(corners, closed=True, color=rgb))
        else:
            ax.add_patch(Circle((lm.x, lm.y), lm.radius, color=rgb))
        ax.annotate(
            lm.name, (lm.x, lm.y), xytext=(0, -14), textcoords="offset points", ha="center", fontsize=7, color="0.2"
        )
    goal = ep.get("goal", {})
    if "x" in goal and "y" in goal:
        radius = float(ep.get("success_radius_m", goal.get("radius_m", 0.5)))
        ax.add_patch(Circle((goal["x"], goal["y"]), radius, fill=False, ls="--", lw=1.5, ec="#238b45"))
        ax.plot(goal["x"], goal["y"], "x", color="#238b45", ms=8, label=f"goal ({radius:g} m success radius)")
    start = ep.get("start")
    if start:
        x, y, yaw = start
        ax.annotate(
            "",
            (x + 0.5 * math.cos(yaw), y + 0.5 * math.sin(yaw)),
            (x, y),
            arrowprops={"arrowstyle": "->", "color": "k", "lw": 1.5},
        )
    ax.set_xlim(-0.3, layout.size[0] + 0.3)
    ax.set_ylim(-0.3, layout.size[1] + 0.3)


def _plot_trajectory(ax, ex: str, log: dict, run: dict) -> None:
    ep = run.get("episode")
    title = f"{ex}: top-down path (o start, □ end of action)"
    if ep is not None and "error" not in ep:
        _plot_layout(ax, ep)
        title = textwrap.fill(f"“{ep.get('instruction', '?')}”", 48)
    truth, odo = log.get("simTruth", []), log.get("odometry", [])
    if truth:
        tr = truth_arrays(truth)
        ax.plot(tr["x_m"], tr["y_m"], "k-", lw=1.5, label="true (simulator)")
        if odo:
            # The robot's own estimate starts at its own origin: place it at the true start pose to compare.
            t0 = odo[0]["mono_ns"]
            x0, y0, yaw0 = at(tr, "x_m", t0), at(tr, "y_m", t0), at(tr, "yaw_unwrapped", t0)
            ox = np.array([r["msg"]["x_m"] for r in odo])
            oy = np.array([r["msg"]["y_m"] for r in odo])
            c, s = math.cos(yaw0), math.sin(yaw0)
            ax.plot(x0 + c * ox - s * oy, y0 + s * ox + c * oy, "C1--", lw=1.2, label="estimated (IMU + legs)")
        acts = run["actions"] if len(run["actions"]) <= 12 else []  # a long VLN episode: the path speaks alone
        for i, a in enumerate(acts):
            for t_ns, marker in ((a["start_mono_ns"], "o"), (a["end_mono_ns"], "s")):
                ax.plot(at(tr, "x_m", t_ns), at(tr, "y_m", t_ns), marker, color=f"C{2 + i % 7}", ms=5)
            ax.annotate(
                f"{i + 1} {short_label(a)}",
                (at(tr, "x_m", a["start_mono_ns"]), at(tr, "y_m", a["start_mono_ns"])),
                fontsize=7,
                xytext=(4, 4 + 9 * (i % 3)),
                textcoords="offset points",
            )
    elif odo:  # a robot recording: the robot's own estimate only
        ax.plot([r["msg"]["x_m"] for r in odo], [r["msg"]["y_m"] for r in odo], "C1-", lw=1.2, label="estimated")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    if truth or odo:
        ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)


# ---- timeline -------------------------------------------------------------------------------------------------


def _safe_timeline(fig, spec, log_: dict, run: dict) -> None:
    sub = spec.subgridspec(3, 1, height_ratios=[1.6, 1, 1], hspace=0.08)
    ev = fig.add_subplot(sub[0])
    lin = fig.add_subplot(sub[1], sharex=ev)
    yaw = fig.add_subplot(sub[2], sharex=ev)
    try:
        _plot_events(ev, log_, run)
        _plot_velocities(lin, yaw, log_, run)
    except Exception as e:  # noqa: BLE001
        log.exception("timeline failed")
        for ax in (ev, lin, yaw):
            ax.clear()
            ax.axis("off")
        _failed(ev, e)


def _plot_events(ax, log_: dict, run: dict) -> None:
    """Lane 0: control modes; lanes 1–2: actions (sentence, coloured by outcome); lanes 3–4: VLM query → answer."""
    states = log_.get("controlState", [])
    if states:
        t = _seconds(log_, run, "controlState")
        modes = [r["msg"]["mode"] for r in states]
        span = max(t[-1] - t[0], 1e-3)
        start = 0
        for i in range(1, len(modes) + 1):
            if i == len(modes) or modes[i] != modes[start]:
                end_t = t[i] if i < len(modes) else t[-1]
                ax.broken_barh([(t[start], end_t - t[start])], (0, 0.9), color=MODE_COLOURS[modes[start]])
                if (end_t - t[start]) / span > 0.04:
                    ax.text(
                        (t[start] + end_t) / 2,
                        0.45,
                        modes[start],
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="w" if modes[start] in ("walk", "damp") else "k",
                    )
                start = i
    t0 = run["t0_mono_ns"]
    for i, a in enumerate(run["actions"]):
        s, e = (a["start_mono_ns"] - t0) * 1e-9, (a["end_mono_ns"] - t0) * 1e-9
        lane = 1 + i % 2
        ax.broken_barh([(s, max(e - s, 0.05))], (lane, 0.8), color=OUTCOME_COLOURS.get(a["outcome"], "0.5"))
        ax.text(s, lane + 0.4, f" {short_sentence(a['text'])}", fontsize=7, va="center", clip_on=True)
    for i, r in enumerate(log_.get("vlmOutput", [])):
        m = r["msg"]
        s, e = (m["launched_mono_ns"] - t0) * 1e-9, (r["mono_ns"] - t0) * 1e-9
        lane = 3 + i % 2
        ax.broken_barh([(s, max(e - s, 0.05))], (lane, 0.8), color="#fdae6b" if not m["error"] else "#cb181d")
        answer = m["error"] or short_sentence(m["text"]) or "(empty)"
        ax.text(e, lane + 0.4, f" q{m['query_id']}: {answer}", fontsize=7, va="center", clip_on=True)
    window = run.get("load_window")
    if window is not None:  # demo load runs: when the busy processes ran
        ax.axvspan(
            (window["start_ns"] - t0) * 1e-9, (window["end_ns"] - t0) * 1e-9, color="#fdd0a2", alpha=0.6, lw=0, zorder=0
        )
        ax.text(
            (window["start_ns"] - t0) * 1e-9, 2.9, f" {window['busy_processes']} busy processes", fontsize=7, va="top"
        )
    o = run["outcome"]
    if o.get("fall_s") is not None:
        ax.axvline(o["fall_s"], color="#cb181d", lw=2)
    if states:  # from control's start: the processes' loading before it is empty time
        ax.set_xlim(left=max(0.0, float(t[0]) - 0.5))
    ax.set_ylim(-0.1, 5 if log_.get("vlmOutput") else 3)
    ax.set_yticks(
        [0.45, 1.9, 3.9] if log_.get("vlmOutput") else [0.45, 1.9],
        ["mode", "actions", "VLM"][: 3 if log_.get("vlmOutput") else 2],
    )
    ax.tick_params(labelbottom=False)
    ax.set_title(
        "timeline: control mode · actions (green done, orange timeout, brown blocked, purple preempted)"
        " · VLM query → answer",
        fontsize=9,
    )
    ax.grid(axis="x", alpha=0.3)


def _mean_01s(t: np.ndarray, v) -> np.ndarray:
    """Moving mean over ≈ 0.1 s (measured velocities are noisy tick to tick)."""
    v = np.asarray(v, dtype=float)
    if len(t) < 3:
        return v
    k = max(1, int(round(0.1 / max(float(np.median(np.diff(t))), 1e-3))))
    return np.convolve(v, np.ones(k) / k, mode="same")


def _truth_velocity(log_: dict, run: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Body-frame vx, vy [m/s] and yaw rate [rad/s] of the simulator truth (finite differences, 0.1 s smoothing)."""
    truth = log_.get("simTruth", [])
    if len(truth) < 10:
        return None
    tr = truth_arrays(truth)
    t = (tr["t"] - run["t0_mono_ns"]) * 1e-9
    dt = np.diff(t)
    keep = dt > 1e-4
    dx, dy, dyaw, dt = np.diff(tr["x_m"])[keep], np.diff(tr["y_m"])[keep], np.diff(tr["yaw_unwrapped"])[keep], dt[keep]
    yaw = tr["yaw_unwrapped"][:-1][keep]
    tt = t[:-1][keep]
    vx_w, vy_w, wz = _mean_01s(tt, dx / dt), _mean_01s(tt, dy / dt), _mean_01s(tt, dyaw / dt)
    c, s = np.cos(yaw), np.sin(yaw)
    return tt, c * vx_w + s * vy_w, -s * vx_w + c * vy_w, wz


def _plot_velocities(lin, yaw, log_: dict, run: dict) -> None:
    """Commanded: the navigator's velocityCommand (else the command control applied, controlState); measured: the
    robot's odometry; true: simulator truth, differentiated."""
    src = "velocityCommand" if log_.get("velocityCommand") else "controlState"
    cmd = log_.get(src, [])
    odo = log_.get("odometry", [])
    for topic, rows, style, what in ((src, cmd, "-", "commanded"), ("odometry", odo, "--", "odometry")):
        if not rows:
            continue
        t = _seconds(log_, run, topic)
        step = "post" if what == "commanded" else None
        for key, colour, name in (("vx_m_s", "C0", "vx"), ("vy_m_s", "C2", "vy")):
            v = _mean_01s(t, [r["msg"][key] for r in rows]) if step is None else [r["msg"][key] for r in rows]
            (
                lin.step(t, v, style, where=step, color=colour, lw=1.3, label=f"{name} {what}")
                if step
                else lin.plot(t, v, style, color=colour, lw=1.1, label=f"{name} {what}")
            )
        w = np.degrees([r["msg"]["wz_rad_s"] for r in rows])
        w = _mean_01s(t, w) if step is None else w
        (
            yaw.step(t, w, style, where=step, color="C3", lw=1.3, label=f"yaw rate {what}")
            if step
            else yaw.plot(t, w, style, color="C3", lw=1.1, label=f"yaw rate {what}")
        )
    tv = _truth_velocity(log_, run)
    if tv is not None:
        t, vx, vy, wz = tv
        lin.plot(t, vx, color="k", lw=0.7, alpha=0.6, label="vx true")
        yaw.plot(t, np.degrees(wz), color="k", lw=0.7, alpha=0.6, label="yaw rate true")
    lin.set_ylabel("m/s")
    yaw.set_ylabel("deg/s")
    yaw.set_xlabel("time since the run's first message [s]")
    lin.tick_params(labelbottom=False)
    for ax in (lin, yaw):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper right", ncol=3)
    if not (cmd or odo or tv is not None):
        lin.text(0.5, 0.5, "no velocity topics recorded", ha="center", va="center", transform=lin.transAxes)


# ---- amounts, periods, VLM latency ----------------------------------------------------------------------------


def _plot_amounts(ax, run: dict, kind: str) -> None:
    """|commanded| / |estimated| / |true| of each forward (cm) or turn (deg) action."""
    unit, scale = ("cm", 100.0) if kind == "forward" else ("deg", math.degrees(1.0))
    acts = [a for a in run["actions"] if a["kind"] == kind]
    xs = np.arange(len(acts))
    for k, key in enumerate(("commanded", "estimated", "true")):
        ax.bar(xs + (k - 1) * 0.27, [abs(a[key] or 0.0) * scale for a in acts], 0.27, label=key)
    ax.set_xticks(xs, [f"{i + 1}" for i in range(len(acts))], fontsize=7)
    ax.set_xlabel(f"{kind} action #")
    ax.set_ylabel(f"|amount| [{unit}]")
    ax.set_title(f"{'forward' if kind == 'forward' else 'turns'} [{unit}]", fontsize=9)
    if acts:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, f"no {kind} actions", ha="center", va="center", transform=ax.transAxes)
    ax.grid(axis="y", alpha=0.3)


def _plot_periods(ax, log: dict, run: dict) -> None:
    ax.hist([r["msg"]["period_ms"] for r in log.get("controlState", [])[1:]], bins=60, color="C0")
    st = run["loop"]
    ax.set_title(
        f"control period: {st['ticks']} ticks, {st['missed']} missed\n"
        f"|err| p50 {st['period_error_p50_ms']:.3f} / p99 {st['period_error_p99_ms']:.2f} ms",
        fontsize=9,
    )
    ax.set_xlabel("tick start-to-start period [ms]")
    if st["ticks"] > 1:
        ax.set_yscale("log")


def _plot_vlm(ax, run: dict) -> None:
    vlm = run.get("vlm")
    if not vlm:
        ax.axis("off")
        ax.text(0.5, 0.5, "no VLM queries (scripted operator)", ha="center", va="center", fontsize=10)
        return
    qs = vlm["queries"]
    xs = np.arange(len(qs))
    bottom = np.zeros(len(qs))
    for key, name in (("vision_ms", "vision"), ("prefill_ms", "prefill"), ("decode_ms", "decode")):
        vals = np.array([q[key] for q in qs])
        ax.bar(xs, vals, 0.6, bottom=bottom, label=name)
        bottom += vals
    other = np.maximum(0, np.array([q["total_ms"] for q in qs]) - bottom)
    ax.bar(xs, other, 0.6, bottom=bottom, label="other / transport", color="0.7")
    step = max(1, len(qs) // 12)
    ax.set_xticks(
        xs[::step], [f"{q['query_id']}{'e' if q['trigger'] == 'early' else ''}" for q in qs][::step], fontsize=7
    )
    ax.set_xlabel("query (e: launched early)")
    ax.set_ylabel("latency [ms]")
    ax.set_title(
        textwrap.fill(
            f"VLM: robot idle waiting {vlm['idle_wait_s']:.2f} s ({vlm['idle_waits']} waits); "
            f"ended: {vlm['episode_over'] or '-'}",
            50,
        ),
        fontsize=9,
    )
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
