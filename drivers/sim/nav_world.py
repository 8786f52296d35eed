"""Navigation worlds for the simulated Go2: procedurally generated two-room layouts with coloured landmarks.

A layout is an axis-aligned arena (outer walls) split by one interior wall with a doorway (dark frame posts on both
sides), and five landmarks of five different colours (LANDMARK_COLOURS), each of a random shape (LANDMARK_SHAPES):
the colour alone identifies a landmark within a layout, the shape is named too. The same layout becomes
- MuJoCo geoms added to the Go2 scene of drivers.sim.go2_physics.build_spec (same MJCF, same head camera), and
- 2-D geometry (wall rectangles, landmark footprints) for planning, collision checks and scoring.
Everything is deterministic in the layout seed.

Units: metres, radians; world frame x forward at yaw 0, z up; yaw counter-clockwise.
Colours come in pairs that swap under an RGB ↔ BGR channel swap (red ↔ blue, yellow ↔ cyan, purple ↔ pink), so a
model fed BGR frames sees another colour of the palette; none of them is swap-invariant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

WALL_HEIGHT_M = 1.5  # above the head camera (≈ 0.8 m): nothing behind a wall is visible
WALL_THICKNESS_M = 0.1
LANDMARK_COLOURS = {  # name → RGB; pairs swap under BGR
    "red": (0.85, 0.10, 0.10),
    "blue": (0.10, 0.10, 0.85),
    "yellow": (0.90, 0.80, 0.10),
    "cyan": (0.10, 0.80, 0.90),
    "purple": (0.55, 0.10, 0.85),
    "pink": (0.85, 0.10, 0.55),
}
DOOR_FRAME_RGB = (0.25, 0.22, 0.20)
DOOR_POST_M = 0.12  # square frame posts at both sides of the doorway
# shape → (MuJoCo geom type, size, footprint radius m). Box: half extents; cylinder: radius, half height; sphere: r.
LANDMARK_SHAPES = {
    "box": ("box", (0.25, 0.25, 0.45), 0.25),
    "pillar": ("cylinder", (0.18, 0.65), 0.18),
    "ball": ("sphere", (0.28,), 0.28),
}
N_LANDMARKS = 5
# VLN-CE success (docs/navigation.md §7): stopped with the base centre within this of the goal landmark's centre.
# Scored offline by training.rollout.score and on the whole stack by training.stack_eval / the demo's vln run.
SUCCESS_RADIUS_M = 1.25
# An episode that has not stopped after this many answers is over (a failure), offline and on the stack.
MAX_ANSWERS = 40


@dataclass(frozen=True)
class Box2D:
    """Axis-aligned rectangle [x0, x1] × [y0, y1] (a wall piece)."""

    x0: float
    y0: float
    x1: float
    y1: float


@dataclass(frozen=True)
class Landmark:
    colour: str
    shape: str
    x: float
    y: float
    yaw: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"

    @property
    def radius(self) -> float:
        return LANDMARK_SHAPES[self.shape][2]

    @property
    def colour_index(self) -> int:
        return list(LANDMARK_COLOURS).index(self.colour)


@dataclass(frozen=True)
class Layout:
    seed: int
    size: tuple[float, float]  # arena lx, ly; the arena is [0, lx] × [0, ly] (inside the walls)
    walls: tuple[Box2D, ...]
    rooms: tuple[Box2D, ...]  # the two rooms (inner extents)
    doorway: tuple[float, float, float]  # centre x, y and width of the opening in the interior wall
    landmarks: tuple[Landmark, ...]
    wall_rgb: tuple[float, float, float]

    def room_of(self, x: float, y: float) -> int:
        """Index of the room containing (x, y), -1 inside the interior wall / doorway / outside."""
        for i, r in enumerate(self.rooms):
            if r.x0 <= x <= r.x1 and r.y0 <= y <= r.y1:
                return i
        return -1

    def landmark(self, name: str) -> Landmark:
        for lm in self.landmarks:
            if lm.name == name:
                return lm
        raise KeyError(f"layout {self.seed} has no {name!r}")


def generate_layout(seed: int) -> Layout:
    """A two-room layout: arena 7–9.5 × 5–7 m, interior wall across the long side with a 1.1–1.4 m doorway,
    five landmarks (≥ 2 per room), ≥ 0.5 m from walls, ≥ 2.5 m apart, ≥ 1.3 m from the doorway."""
    rng = np.random.default_rng([seed, 10])
    lx, ly = float(rng.uniform(7.0, 9.5)), float(rng.uniform(5.0, 7.0))
    t = WALL_THICKNESS_M
    walls = [
        Box2D(-t, -t, lx + t, 0.0),
        Box2D(-t, ly, lx + t, ly + t),
        Box2D(-t, 0.0, 0.0, ly),
        Box2D(lx, 0.0, lx + t, ly),
    ]
    xs = float(rng.uniform(0.42, 0.58) * lx)  # interior wall centre line x = xs
    width = float(rng.uniform(1.1, 1.4))
    yd = float(rng.uniform(0.5 + width / 2, ly - 0.5 - width / 2))
    walls += [Box2D(xs - t / 2, 0.0, xs + t / 2, yd - width / 2), Box2D(xs - t / 2, yd + width / 2, xs + t / 2, ly)]
    rooms = (Box2D(0.0, 0.0, xs - t / 2, ly), Box2D(xs + t / 2, 0.0, lx, ly))
    grey = float(rng.uniform(0.62, 0.8))
    wall_rgb = (grey, grey, float(grey * rng.uniform(0.94, 1.0)))

    colours = [list(LANDMARK_COLOURS)[i] for i in rng.permutation(len(LANDMARK_COLOURS))[:N_LANDMARKS]]
    types = [(c, list(LANDMARK_SHAPES)[int(rng.integers(len(LANDMARK_SHAPES)))]) for c in colours]
    for _ in range(1000):
        placed: list[Landmark] = []
        rooms_needed = [0, 0, 1, 1, int(rng.integers(2))]
        for (colour, shape), room in zip(types, rooms_needed):
            r = rooms[room]
            rad = LANDMARK_SHAPES[shape][2]
            for _ in range(200):
                m = rad + 0.5
                x, y = float(rng.uniform(r.x0 + m, r.x1 - m)), float(rng.uniform(r.y0 + m, r.y1 - m))
                if math.hypot(x - xs, y - yd) < 1.3 + rad:
                    continue
                if all(math.hypot(x - o.x, y - o.y) >= 2.5 for o in placed):
                    placed.append(Landmark(colour, shape, x, y, float(rng.uniform(0, math.pi / 2))))
                    break
            else:
                break
        if len(placed) == N_LANDMARKS:
            return Layout(seed, (lx, ly), tuple(walls), rooms, (xs, yd, width), tuple(placed), wall_rgb)
    raise RuntimeError(f"layout seed {seed}: could not place {N_LANDMARKS} landmarks")


def door_posts(layout: Layout) -> tuple[Box2D, Box2D]:
    """The two frame posts at the doorway's edges (inside the wall's line, slightly thicker than the wall)."""
    xs, yd, width = layout.doorway
    h, p = WALL_THICKNESS_M / 2 + 0.02, DOOR_POST_M
    return (
        Box2D(xs - h, yd - width / 2 - p, xs + h, yd - width / 2),
        Box2D(xs - h, yd + width / 2, xs + h, yd + width / 2 + p),
    )


# ---------------------------------------------------------------------------------------------------- MuJoCo
def add_layout(spec, layout: Layout) -> None:
    """Add the layout's walls, door frame and landmarks as static world geoms (names wall_k, door_k,
    lm_<colour>_<shape>)."""
    import mujoco

    wall_rgba = [*layout.wall_rgb, 1.0]
    for k, w in enumerate(layout.walls):
        spec.worldbody.add_geom(
            name=f"wall_{k}",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[(w.x1 - w.x0) / 2, (w.y1 - w.y0) / 2, WALL_HEIGHT_M / 2],
            pos=[(w.x0 + w.x1) / 2, (w.y0 + w.y1) / 2, WALL_HEIGHT_M / 2],
            rgba=wall_rgba,
        )
    for k, p in enumerate(door_posts(layout)):
        spec.worldbody.add_geom(
            name=f"door_{k}",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[(p.x1 - p.x0) / 2, (p.y1 - p.y0) / 2, WALL_HEIGHT_M / 2 + 0.01],
            pos=[(p.x0 + p.x1) / 2, (p.y0 + p.y1) / 2, WALL_HEIGHT_M / 2 + 0.01],
            rgba=[*DOOR_FRAME_RGB, 1.0],
        )
    types = {
        "box": mujoco.mjtGeom.mjGEOM_BOX,
        "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER,
        "sphere": mujoco.mjtGeom.mjGEOM_SPHERE,
    }
    for lm in layout.landmarks:
        gtype, size, _ = LANDMARK_SHAPES[lm.shape]
        half_h = size[-1] if gtype != "sphere" else size[0]
        c, s = math.cos(lm.yaw / 2), math.sin(lm.yaw / 2)
        spec.worldbody.add_geom(
            name=f"lm_{lm.colour}_{lm.shape}",
            type=types[gtype],
            size=list(size) + [0] * (3 - len(size)),
            pos=[lm.x, lm.y, half_h],
            quat=[c, 0, 0, s],
            rgba=[*LANDMARK_COLOURS[lm.colour], 1.0],
        )


def build_world_spec(layout: Layout, physics_dt: float = 0.0025):
    """The Go2 scene of drivers.sim.go2_physics (floor, light, head camera, sensors) + this layout."""
    from drivers.sim.go2_physics import build_spec

    spec = build_spec(physics_dt, landmarks=False)
    add_layout(spec, layout)
    return spec


def scene_spec(physics_dt: float, landmarks: bool = True, nav_layout: int | None = None):
    """The simulator's scene from its config (sim.physics_dt, sim.landmarks, sim.nav_layout): with a layout seed the
    navigation world build_world_spec(generate_layout(seed)), else the demo scene. simd and simcamd both build it,
    so the camera sees the scene the robot walks in."""
    from drivers.sim.go2_physics import build_spec

    if nav_layout is None:
        return build_spec(physics_dt, landmarks)
    return build_world_spec(generate_layout(nav_layout), physics_dt)


__all__ = [
    "Box2D",
    "DOOR_FRAME_RGB",
    "LANDMARK_COLOURS",
    "LANDMARK_SHAPES",
    "MAX_ANSWERS",
    "SUCCESS_RADIUS_M",
    "Landmark",
    "Layout",
    "WALL_HEIGHT_M",
    "add_layout",
    "build_world_spec",
    "door_posts",
    "generate_layout",
    "scene_spec",
]
