"""Shortest-path expert from simulator truth, answering in NaVILA's mid-level action language.

Per (layout, goal landmark): a geodesic distance field (Dijkstra on the 5 cm grid) to the expert's stop region
(base centre within the landmark's footprint radius + STOP_GAP_M of its centre). At a state the expert follows the
field to the farthest point in straight line of sight, then
- stops if it is inside the stop region,
- turns toward that point if the bearing error exceeds TURN_THRESHOLD (15°·round(|error|/15), 15–45°),
- otherwise moves forward 25/50/75 cm (the distance to that point or to the stop region, rounded to 25 cm,
  shortened until the straight move keeps clear of obstacles).
Truth is for data and scoring only, never for the robot at run time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from drivers.sim.nav_world import SUCCESS_RADIUS_M, Landmark
from training.geometry import LOS_RADIUS_M, PLAN_RADIUS_M, ROBOT_RADIUS_M, Grid, State, clearance, wrap

STOP_GAP_M = 0.55  # expert stops with the base centre ≤ footprint radius + this from the centre
TURN_THRESHOLD = math.radians(10.0)
LOOKAHEAD_M = 3.0
FORWARD_CM = (25, 50, 75)
TURN_DEG = (15, 30, 45)


@dataclass(frozen=True)
class Action:
    kind: str  # "forward" | "left" | "right" | "stop"
    amount: int = 0  # cm for forward, degrees for turns

    def text(self) -> str:
        """The NaVILA answer sentence."""
        if self.kind == "stop":
            return "The next action is stop."
        if self.kind == "forward":
            return f"The next action is move forward {self.amount} cm."
        return f"The next action is turn {self.kind} {self.amount} degrees."

    @property
    def primitives(self) -> int:
        """25 cm / 15° steps."""
        return 0 if self.kind == "stop" else self.amount // (25 if self.kind == "forward" else 15)


def parse_answer(text: str):
    """A NaVILA answer through the stack's one parser (edge.navigation.parse.ActionParser, default config section):
    the same ParseResult the VLM process and the navigator get."""
    from edge.common.config import ParserConfig
    from edge.navigation.parse import ActionParser

    return ActionParser(ParserConfig()).parse(text, "navila", source="vlm")


def action_from_parsed(parsed) -> Action | None:
    """ActionParser output (first action) → Action; None for Invalid. Amounts snap to the NaVILA sets."""
    from edge.navigation.parse import Forward, Invalid, Stop, Turn

    if isinstance(parsed, Invalid) or not parsed.actions:
        return None
    a = parsed.actions[0]
    if isinstance(a, Stop):
        return Action("stop")
    if isinstance(a, Forward):
        return Action("forward", int(round(a.distance_m * 100)))
    if isinstance(a, Turn):
        deg = int(round(math.degrees(abs(a.angle_rad))))
        return Action("left" if a.angle_rad > 0 else "right", deg)
    return None


def region_mask(grid: Grid, lm: Landmark, radius: float, min_clear: float) -> np.ndarray:
    h, w = grid.clear.shape
    xs = grid.x0 + (np.arange(w) + 0.5) * grid.res
    ys = grid.y0 + (np.arange(h) + 0.5) * grid.res
    near = np.hypot(xs[None, :] - lm.x, ys[:, None] - lm.y) <= radius
    mask = near & (grid.clear >= min_clear)
    if not mask.any():
        mask = near & (grid.clear >= ROBOT_RADIUS_M)
    return mask


class Expert:
    def __init__(self, grid: Grid, goal: Landmark):
        self.grid, self.goal, self.layout = grid, goal, grid.layout
        self.stop_dist = goal.radius + STOP_GAP_M
        self.field = grid.geodesic(region_mask(grid, goal, self.stop_dist, PLAN_RADIUS_M))
        self._success_field: np.ndarray | None = None

    # --- distances ---------------------------------------------------------------------------------------------
    def goal_distance(self, x: float, y: float) -> float:
        """Euclidean distance from the base centre to the goal landmark's centre (NE)."""
        return math.hypot(x - self.goal.x, y - self.goal.y)

    def success_geodesic(self, x: float, y: float) -> float:
        """Shortest path length (m) from (x, y) to the success region (SPL's reference length)."""
        if self._success_field is None:
            self._success_field = self.grid.geodesic(
                region_mask(self.grid, self.goal, SUCCESS_RADIUS_M, ROBOT_RADIUS_M)
            )
        return float(self._success_field[self.grid.cell(x, y)])

    def geodesic(self, x: float, y: float) -> float:
        return float(self.field[self.grid.cell(x, y)])

    # --- path --------------------------------------------------------------------------------------------------
    def path(self, x: float, y: float, max_len: float = LOOKAHEAD_M) -> list[tuple[float, float]]:
        """Steepest descent on the field from (x, y): cell centres up to max_len or the stop region."""
        f = self.field
        h, w = f.shape
        i, j = self.grid.cell(x, y)
        pts, length = [], 0.0
        while f[i, j] > 0 and length < max_len:
            best, bi, bj = f[i, j], i, j
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    ni, nj = i + di, j + dj
                    if (di or dj) and 0 <= ni < h and 0 <= nj < w and f[ni, nj] < best:
                        best, bi, bj = f[ni, nj], ni, nj
            if (bi, bj) == (i, j):
                break
            length += self.grid.res * math.hypot(bi - i, bj - j)
            i, j = bi, bj
            pts.append(self.grid.centre(i, j))
        return pts

    def waypoint(self, x: float, y: float) -> tuple[float, float]:
        """The farthest point of the path visible in a straight line with planning clearance."""
        pts = self.path(x, y)
        if not pts:
            return self.goal.x, self.goal.y
        r = min(LOS_RADIUS_M, 0.98 * float(clearance(self.layout, x, y)))
        for k in range(len(pts) - 1, -1, -3):
            if self.grid.segment_clear(x, y, *pts[k], r):
                return pts[k]
        return pts[0]

    # --- action ------------------------------------------------------------------------------------------------
    def at_goal(self, s: State) -> bool:
        return self.goal_distance(s.x, s.y) <= self.stop_dist or self.geodesic(s.x, s.y) <= 0.0

    def bearing_error(self, s: State) -> float:
        wx, wy = self.waypoint(s.x, s.y)
        return wrap(math.atan2(wy - s.y, wx - s.x) - s.yaw)

    def action(self, s: State) -> Action:
        if self.at_goal(s):
            return Action("stop")
        err = self.bearing_error(s)
        if abs(err) > TURN_THRESHOLD:
            deg = int(min(45, max(15, 15 * round(math.degrees(abs(err)) / 15))))
            return Action("left" if err > 0 else "right", deg)
        wx, wy = self.waypoint(s.x, s.y)
        d = math.hypot(wx - s.x, wy - s.y)
        remaining = self.geodesic(s.x, s.y)
        if 0 < remaining < d:
            d = remaining
        cm = int(min(75, max(25, 25 * round(d / 0.25))))
        c, sn = math.cos(s.yaw), math.sin(s.yaw)
        while cm > 25 and not self.grid.segment_clear(
            s.x, s.y, s.x + cm / 100 * c, s.y + cm / 100 * sn, ROBOT_RADIUS_M + 0.03
        ):
            cm -= 25
        if not self.grid.segment_clear(s.x, s.y, s.x + 0.25 * c, s.y + 0.25 * sn, ROBOT_RADIUS_M):
            return Action("left" if err >= 0 else "right", 15)
        return Action("forward", cm)
