"""2-D geometry of a navigation layout: clearance to obstacles, a planning grid, geodesic distance fields, line of
sight, and kinematic execution of NaVILA mid-level actions with collision clamping.

Clearance is exact (distance from a point to the nearest wall rectangle or landmark footprint: circle, or rotated
square for boxes). The robot is a disc: ROBOT_RADIUS_M for collisions, PLAN_RADIUS_M (with margin) for planning.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

from drivers.sim.nav_world import Landmark, Layout, door_posts
from edge.navigation.parse import FORWARD_STEP_M, TURN_STEP_DEG

GRID_RES_M = 0.05
ROBOT_RADIUS_M = 0.25  # collision disc of the Go2 base (0.70 × 0.31 m body; legs inside when standing)
PLAN_RADIUS_M = 0.40  # planning clearance (collision disc + margin for turning in place)
LOS_RADIUS_M = 0.33  # clearance required along a straight shortcut


def _box_dist(px: np.ndarray, py: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    dx = np.maximum(np.maximum(x0 - px, px - x1), 0.0)
    dy = np.maximum(np.maximum(y0 - py, py - y1), 0.0)
    return np.hypot(dx, dy)


def landmark_dist(lm: Landmark, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Distance from points to the landmark's footprint surface (0 inside)."""
    if lm.shape == "box":
        c, s = math.cos(lm.yaw), math.sin(lm.yaw)
        lx, ly = (px - lm.x) * c + (py - lm.y) * s, -(px - lm.x) * s + (py - lm.y) * c
        h = lm.radius
        return _box_dist(lx, ly, -h, -h, h, h)
    return np.maximum(np.hypot(px - lm.x, py - lm.y) - lm.radius, 0.0)


def clearance(layout: Layout, px, py) -> np.ndarray:
    """Distance (m) from points to the nearest obstacle surface (walls, landmarks); arrays broadcast."""
    px, py = np.asarray(px, float), np.asarray(py, float)
    d = np.full(np.broadcast(px, py).shape, np.inf)
    for w in (*layout.walls, *door_posts(layout)):
        d = np.minimum(d, _box_dist(px, py, w.x0, w.y0, w.x1, w.y1))
    for lm in layout.landmarks:
        d = np.minimum(d, landmark_dist(lm, px, py))
    lx, ly = layout.size
    outside = (px < 0) | (px > lx) | (py < 0) | (py > ly)
    return np.where(outside, 0.0, d)


@dataclass
class Grid:
    """Planning grid over the arena: cell (i, j) has centre (x0 + (j + .5)·res, y0 + (i + .5)·res)."""

    layout: Layout
    res: float
    x0: float
    y0: float
    clear: np.ndarray  # [H, W] clearance at cell centres, m

    @classmethod
    def build(cls, layout: Layout, res: float = GRID_RES_M) -> Grid:
        lx, ly = layout.size
        w, h = int(math.ceil(lx / res)), int(math.ceil(ly / res))
        xs = (np.arange(w) + 0.5) * res
        ys = (np.arange(h) + 0.5) * res
        return cls(layout, res, 0.0, 0.0, clearance(layout, xs[None, :], ys[:, None]))

    def cell(self, x: float, y: float) -> tuple[int, int]:
        h, w = self.clear.shape
        return (min(max(int((y - self.y0) / self.res), 0), h - 1), min(max(int((x - self.x0) / self.res), 0), w - 1))

    def centre(self, i: int, j: int) -> tuple[float, float]:
        return self.x0 + (j + 0.5) * self.res, self.y0 + (i + 0.5) * self.res

    def step_cost(self) -> np.ndarray:
        """Per-cell traversal cost multiplier: 1 in free space, high where the planning disc would touch."""
        c = np.ones_like(self.clear)
        c[self.clear < PLAN_RADIUS_M] = 8.0
        c[self.clear < ROBOT_RADIUS_M] = 200.0
        return c

    def geodesic(self, goal_mask: np.ndarray) -> np.ndarray:
        """Dijkstra (8-connected, metric step lengths × cell cost) from all goal cells; [H, W] metres (inf: cut off)."""
        h, w = goal_mask.shape
        cost = self.step_cost()
        dist = np.full(h * w, np.inf)
        flat_cost = cost.ravel()
        heap = []
        for idx in np.flatnonzero(goal_mask.ravel()):
            dist[idx] = 0.0
            heap.append((0.0, int(idx)))
        heapq.heapify(heap)
        r, d2 = self.res, self.res * math.sqrt(2)
        nbrs = [(-1, 0, r), (1, 0, r), (0, -1, r), (0, 1, r), (-1, -1, d2), (-1, 1, d2), (1, -1, d2), (1, 1, d2)]
        while heap:
            d, idx = heapq.heappop(heap)
            if d > dist[idx]:
                continue
            i, j = divmod(idx, w)
            for di, dj, step in nbrs:
                ni, nj = i + di, j + dj
                if 0 <= ni < h and 0 <= nj < w:
                    n = ni * w + nj
                    nd = d + step * 0.5 * (flat_cost[idx] + flat_cost[n])
                    if nd < dist[n]:
                        dist[n] = nd
                        heapq.heappush(heap, (nd, n))
        return dist.reshape(h, w)

    def segment_clear(self, x0: float, y0: float, x1: float, y1: float, radius: float) -> bool:
        """True if every point of the segment has clearance ≥ radius (sampled every res/2; clearance of the nearest
        grid cell, within res/√2 of the exact value)."""
        n = max(2, int(math.hypot(x1 - x0, y1 - y0) / (self.res / 2)) + 1)
        t = np.linspace(0.0, 1.0, n)
        h, w = self.clear.shape
        i = np.clip(((y0 + t * (y1 - y0) - self.y0) / self.res).astype(int), 0, h - 1)
        j = np.clip(((x0 + t * (x1 - x0) - self.x0) / self.res).astype(int), 0, w - 1)
        return bool(np.all(self.clear[i, j] >= radius))


def wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


@dataclass(frozen=True)
class State:
    x: float
    y: float
    yaw: float


def move_forward(
    layout: Layout, s: State, dist: float, heading_err: float = 0.0, lateral: float = 0.0, step: float = 0.01
) -> tuple[State, bool]:
    """Walk `dist` m along yaw + heading_err (+ lateral offset), stopping at the last point with clearance ≥
    ROBOT_RADIUS_M. Returns (state, collided)."""
    yaw = s.yaw + heading_err
    c, sn = math.cos(yaw), math.sin(yaw)
    n = max(1, int(abs(dist) / step))
    t = np.linspace(0.0, 1.0, n + 1)[1:]
    px = s.x + t * (dist * c - lateral * sn)
    py = s.y + t * (dist * sn + lateral * c)
    ok = clearance(layout, px, py) >= ROBOT_RADIUS_M
    if ok.all():
        return State(float(px[-1]), float(py[-1]), wrap(yaw)), False
    k = int(np.argmin(ok))  # first blocked sample
    if k == 0:
        return State(s.x, s.y, wrap(yaw)), True
    return State(float(px[k - 1]), float(py[k - 1]), wrap(yaw)), True


@dataclass(frozen=True)
class Noise:
    """Per-primitive execution error (25 cm / 15° steps): ≈ 2 cm and ≈ 1° over a 75 cm / 45° action, like the
    closed-loop executor on the simulated Go2."""

    forward_sd_m: float = 0.01
    lateral_sd_m: float = 0.01
    heading_sd_rad: float = math.radians(0.5)
    turn_sd_rad: float = math.radians(0.7)


NO_NOISE = Noise(0.0, 0.0, 0.0, 0.0)
TURN_STEP_RAD = math.radians(TURN_STEP_DEG)  # Habitat's primitives (edge.navigation.parse)


def execute(
    layout: Layout, s: State, kind: str, primitives: int, rng: np.random.Generator, noise: Noise = Noise()
) -> tuple[list[State], bool]:
    """Apply `primitives` 25 cm forward / 15° turn steps ("forward", "left", "right") with noise; one state per
    primitive (the frames the history records). A forward step is cut short at an obstacle (collided = True)."""
    states, collided = [], False
    for _ in range(primitives):
        if kind == "forward":
            s, c = move_forward(
                layout,
                s,
                FORWARD_STEP_M + rng.normal(0, noise.forward_sd_m),
                heading_err=rng.normal(0, noise.heading_sd_rad),
                lateral=rng.normal(0, noise.lateral_sd_m),
            )
            collided |= c
        else:
            sign = 1.0 if kind == "left" else -1.0
            s = State(s.x, s.y, wrap(s.yaw + sign * TURN_STEP_RAD + rng.normal(0, noise.turn_sd_rad)))
        states.append(s)
    return states, collided


def line_of_sight(layout: Layout, x0: float, y0: float, x1: float, y1: float, stop_short: float = 0.0) -> bool:
    """True if the segment (x0, y0) → (x1, y1), ending `stop_short` m early, crosses no wall or door post."""
    length = math.hypot(x1 - x0, y1 - y0)
    n = max(2, int(length / 0.05) + 1)
    t = np.linspace(0.0, max(0.0, 1.0 - stop_short / max(length, 1e-9)), n)
    px, py = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
    d = np.full(n, np.inf)
    for w in (*layout.walls, *door_posts(layout)):
        d = np.minimum(d, _box_dist(px, py, w.x0, w.y0, w.x1, w.y1))
    return bool(np.all(d > 0.0))
