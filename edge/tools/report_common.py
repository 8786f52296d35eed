"""What the report's numbers and its figure both use: simulator truth as arrays, true amounts of actions, short
labels (edge/tools/report.py computes, edge/tools/report_plots.py draws)."""

from __future__ import annotations

import math
import textwrap

import numpy as np

# |roll| or |pitch| of the base beyond this: not upright. Damping lowers the base onto its belly; it must not tip it
# (the fault bench's "upright" column, the report's falls after a damp).
UPRIGHT_TILT_RAD = 0.5


def truth_arrays(truth: list[dict]) -> dict[str, np.ndarray]:
    t = np.array([r["mono_ns"] for r in truth], dtype=np.int64)
    cols = {
        k: np.array([r["msg"][k] for r in truth]) for k in ("x_m", "y_m", "z_m", "yaw_rad", "roll_rad", "pitch_rad")
    }
    cols["yaw_unwrapped"] = np.unwrap(cols["yaw_rad"])
    cols["t"] = t
    return cols


def at(tr: dict[str, np.ndarray], key: str, t_ns: int) -> float:
    return float(np.interp(t_ns, tr["t"], tr[key]))


def true_amount(tr: dict[str, np.ndarray], kind: str, start_ns: int, end_ns: int) -> float:
    """Forward: displacement along the heading at the start; turn: yaw change (unwrapped, CCW positive)."""
    if kind == "forward":
        yaw0 = at(tr, "yaw_unwrapped", start_ns)
        dx = at(tr, "x_m", end_ns) - at(tr, "x_m", start_ns)
        dy = at(tr, "y_m", end_ns) - at(tr, "y_m", start_ns)
        return dx * math.cos(yaw0) + dy * math.sin(yaw0)
    if kind == "turn":
        return at(tr, "yaw_unwrapped", end_ns) - at(tr, "yaw_unwrapped", start_ns)
    return 0.0


def short_label(a: dict) -> str:
    if a["kind"] == "forward":
        return f"fwd {a['commanded'] * 100:.0f} cm"
    if a["kind"] == "turn":
        return f"{'left' if a['commanded'] > 0 else 'right'} {abs(math.degrees(a['commanded'])):.0f}°"
    return a["kind"]


def episode_line(ep: dict) -> str:
    """A VLN episode in one line: result, instruction, distance to the goal."""
    if "error" in ep:
        return f"episode.json unreadable ({ep['error']})"
    success = ep.get("success")
    result = "result unknown" if success is None else "SUCCESS" if success else "FAILURE"
    dist = f", {ep['final_distance_m']:.2f} m from the goal" if "final_distance_m" in ep else ""
    radius = ep.get("success_radius_m")
    within = f" (success radius {radius:g} m)" if radius is not None else ""
    stop = f", stopped by: {ep['stop_reason']}" if ep.get("stop_reason") else ""
    return f"{result}{dist}{within}{stop}: {ep.get('instruction', '?')!r}"


def printable(text: str) -> str:
    """Text a VLM wrote, with what the figure's font cannot show (garbage answers of random weights) as '?'."""
    return "".join(c if (c.isprintable() and ord(c) < 0x250) or c in "↑←→↓" else "?" for c in text)


def short_sentence(text: str) -> str:
    t = printable(text).strip()
    for prefix in ("The next action is ", "the next action is "):
        t = t.removeprefix(prefix)
    return textwrap.shorten(t.rstrip("."), 32, placeholder="…")
