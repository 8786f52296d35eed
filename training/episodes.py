"""Episodes: a layout, a start pose, a goal landmark and a templated instruction; train / val-unseen splits.

Splits are by layout (val-unseen layouts are never seen in training) and by start (seeded per split).
Instructions have one or two steps, chosen from where the expert's path goes:
- the goal is in the other room → "go through the doorway" step;
- the first path direction is outside the head camera's view (|bearing| > 40°) → a leading "turn left / right /
  around" step (around beyond 140°), in the direction the expert turns;
- otherwise a single step ("Walk to the red pillar.").
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from drivers.sim.nav_world import Layout, generate_layout
from training.expert import Expert
from training.geometry import Grid, State

SPLITS = {"train": range(0, 400), "val_unseen": range(1000, 1100)}  # layout seed ranges per split
VIEW_HALF_ANGLE = math.radians(40.0)
AROUND_ANGLE = math.radians(140.0)
MIN_PATH_M, MAX_PATH_M = 1.5, 9.0
KIND_SHARE = {"go": 0.25, "turn": 0.25, "door": 0.2, "turn_door": 0.3}  # per-layout quotas (rounded up)
START_CLEARANCE_M = 0.5

TEMPLATES = {
    "go": [
        "Walk to the {g}.",
        "Go to the {g} and stop.",
        "Stop at the {g}.",
        "Find the {g} and stop next to it.",
        "Walk over to the {g} and stop.",
    ],
    "turn": [
        "Turn {d} and walk to the {g}.",
        "Turn {d}, then go to the {g} and stop.",
        "Turn {d} and stop at the {g}.",
    ],
    "door": [
        "Go through the doorway and stop at the {g}.",
        "Walk through the opening to the {g}.",
        "Leave the room through the doorway and walk to the {g}.",
    ],
    "turn_door": [
        "Turn {d}, go through the doorway and stop at the {g}.",
        "Turn {d}, walk through the opening and stop at the {g}.",
    ],
}


@dataclass(frozen=True)
class Episode:
    episode_id: str
    split: str
    layout_seed: int
    start: tuple[float, float, float]  # x, y, yaw
    goal: str  # landmark name, e.g. "red pillar"
    instruction: str
    kind: str  # go | turn | door | turn_door
    geodesic_m: float  # shortest path length start → the goal's stop region (SPL reference)

    @property
    def start_state(self) -> State:
        return State(*self.start)


class World:
    """A layout with its grid and one expert per landmark (built lazily)."""

    def __init__(self, seed: int):
        self.layout: Layout = generate_layout(seed)
        self.grid = Grid.build(self.layout)
        self._experts: dict[str, Expert] = {}

    def expert(self, goal: str) -> Expert:
        if goal not in self._experts:
            self._experts[goal] = Expert(self.grid, self.layout.landmark(goal))
        return self._experts[goal]


def instruction_kind(world: World, start: State, goal: str) -> tuple[str, str]:
    """(kind, turn direction) from the expert's first path direction and the rooms."""
    ex = world.expert(goal)
    lay = world.layout
    lm = lay.landmark(goal)
    other_room = lay.room_of(start.x, start.y) != lay.room_of(lm.x, lm.y)
    err = ex.bearing_error(start)
    direction = ""
    if abs(err) > AROUND_ANGLE:
        direction = "around"
    elif abs(err) > VIEW_HALF_ANGLE:
        direction = "left" if err > 0 else "right"
    kind = ("turn_" if direction else "") + ("door" if other_room else "go")
    return ("turn" if kind == "turn_go" else kind), direction


def make_episodes(split: str, layouts: int, per_layout: int, seed: int = 0) -> list[Episode]:
    """`per_layout` episodes on each of the split's first `layouts` layouts; deterministic in (split, seed)."""
    return [e for ls in list(SPLITS[split])[:layouts] for e in layout_episodes(split, ls, per_layout, seed)]


def layout_episodes(split: str, ls: int, per_layout: int, seed: int = 0) -> list[Episode]:
    """The `per_layout` episodes of layout `ls` (the same as make_episodes makes on it)."""
    if ls not in SPLITS[split]:
        raise ValueError(f"layout {ls} is not in split {split!r}")
    out: list[Episode] = []
    world = World(ls)
    rng = np.random.default_rng([seed, ls, 7])
    free = np.argwhere(world.grid.clear >= START_CLEARANCE_M)
    names = [lm.name for lm in world.layout.landmarks]
    quota = {k: math.ceil(v * per_layout) for k, v in KIND_SHARE.items()}
    n, tries = 0, 0
    while n < per_layout and tries < 100 * per_layout:
        tries += 1
        i, j = free[rng.integers(len(free))]
        x, y = world.grid.centre(int(i), int(j))
        x, y = x + rng.uniform(-0.02, 0.02), y + rng.uniform(-0.02, 0.02)
        start = State(float(x), float(y), float(rng.uniform(-math.pi, math.pi)))
        goal = names[int(rng.integers(len(names)))]
        ex = world.expert(goal)
        geo = ex.geodesic(start.x, start.y)
        if not (MIN_PATH_M <= geo <= MAX_PATH_M) or ex.at_goal(start):
            continue
        kind, direction = instruction_kind(world, start, goal)
        if quota[kind] <= 0:
            continue
        quota[kind] -= 1
        template = TEMPLATES[kind][int(rng.integers(len(TEMPLATES[kind])))]
        text = template.format(g=goal, d=direction)
        out.append(
            Episode(f"{split}-{ls}-{n}", split, ls, (start.x, start.y, start.yaw), goal, text, kind, round(geo, 4))
        )
        n += 1
    return out


def save_episodes(episodes: list[Episode], path: str | Path) -> str:
    """JSON lines; returns the file's sha256."""
    text = "".join(json.dumps(asdict(e), sort_keys=True) + "\n" for e in episodes)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)
    return hashlib.sha256(text.encode()).hexdigest()


def load_episodes(path: str | Path) -> list[Episode]:
    out = []
    for line in Path(path).read_text().splitlines():
        d = json.loads(line)
        d["start"] = tuple(d["start"])
        out.append(Episode(**d))
    return out
