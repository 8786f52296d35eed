"""Episode rollouts with kinematic execution, NaVILA observation history, and VLN-CE metrics.

Observations follow NaVILA's Habitat rule (docs/vln-models.md §1.4): the start frame, then one frame after every
executed 25 cm / 15° primitive (a 75 cm answer adds three). At each query the history is every earlier
observation and the current one is the newest; `navila_sample` picks the 8 the model sees.
A rollout ends when the policy says stop, after MAX_ACTIONS answers, or after an unparseable answer.
Metrics (VLN-CE): success = stopped with the base centre within SUCCESS_RADIUS_M of the goal landmark's centre
(a run that did not stop never succeeds); NE = final distance to it; OS = the path came within the radius;
SPL = success · l / max(p, l) with l the geodesic start → goal stop region and p the path length walked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from drivers.sim.nav_world import MAX_ANSWERS, SUCCESS_RADIUS_M
from training.episodes import Episode, World
from training.expert import Action
from training.geometry import NO_NOISE, Noise, State, execute
from training.render import LayoutRenderer, Pose, walking_jitter

MAX_ACTIONS = MAX_ANSWERS


@dataclass
class Query:
    current: int  # index of the current observation
    expert: Action  # the expert's answer at this state (the label)
    executed: Action | None  # what was executed (None: unparseable answer)
    text: str = ""  # the policy's answer text


@dataclass
class Trajectory:
    episode: Episode
    states: list[State] = field(default_factory=list)  # one per observation (start + each primitive)
    jitters: list[tuple[float, float, float]] = field(default_factory=list)
    queries: list[Query] = field(default_factory=list)
    stopped: bool = False
    collisions: int = 0
    end_reason: str = ""

    @property
    def final(self) -> State:
        return self.states[-1]

    def path_length(self) -> float:
        return float(sum(math.hypot(b.x - a.x, b.y - a.y) for a, b in zip(self.states, self.states[1:])))


# policy(trajectory, world) → (Action or None, answer text); it may look at trajectory.states / rendered frames
Policy = Callable[[Trajectory, World], tuple[Action | None, str]]


def expert_policy(traj: Trajectory, world: World) -> tuple[Action, str]:
    a = world.expert(traj.episode.goal).action(traj.final)
    return a, a.text()


def perturbed(a: Action, rng: np.random.Generator) -> Action:
    """A random non-stop action different from `a` (DART-style exploration for the expert's data)."""
    while True:
        kind = ["forward", "left", "right"][int(rng.integers(3))]
        amount = int(rng.choice([25, 50, 75] if kind == "forward" else [15, 30, 45]))
        b = Action(kind, amount)
        if b != a:
            return b


def rollout(
    world: World,
    ep: Episode,
    policy: Policy,
    rng: np.random.Generator,
    noise: Noise = Noise(),
    explore: float = 0.0,
    max_actions: int = MAX_ACTIONS,
    on_observation: Callable[[Trajectory], None] | None = None,
    overshoot: float = 0.0,
    max_overshoot: int = 2,
) -> Trajectory:
    """Run `policy` from the episode start. With probability `explore` per step a perturbed action is executed
    instead of the policy's (never at a stop label); every query records the expert's label at that state.
    Overshoot: with probability `overshoot` at a stop label (at most `max_overshoot` times per episode) a small move
    is executed instead of the stop (forward 25 cm with probability 0.6, else a 15° turn either way). This gives
    frames closer to the goal than the expert's stop point, or turned off it, as walking that does not land exactly
    on that point does; the expert labels them again (stop, or the way back)."""
    traj = Trajectory(ep)
    overshoots = 0
    expert = world.expert(ep.goal)

    def observe(s: State) -> None:
        traj.states.append(s)
        traj.jitters.append(walking_jitter(rng))
        if on_observation is not None:
            on_observation(traj)

    observe(ep.start_state)
    for _ in range(max_actions):
        label = expert.action(traj.final)
        act, text = policy(traj, world)
        q = Query(len(traj.states) - 1, label, act, text)
        traj.queries.append(q)
        if act is None:
            traj.end_reason = "unparseable answer"
            return traj
        if explore > 0 and label.kind != "stop" and rng.random() < explore:
            act = q.executed = perturbed(act, rng)
        elif label.kind == "stop" and overshoots < max_overshoot and overshoot > 0 and rng.random() < overshoot:
            overshoots += 1
            turn = ("left", "right")[int(rng.integers(2))]
            act = q.executed = Action("forward", 25) if rng.random() < 0.6 else Action(turn, 15)
        if act.kind == "stop":
            traj.stopped, traj.end_reason = True, "stop"
            return traj
        states, collided = execute(world.layout, traj.final, act.kind, act.primitives, rng, noise)
        traj.collisions += int(collided)
        for s in states:
            observe(s)
    traj.end_reason = f"{max_actions} actions without stop"
    return traj


@dataclass(frozen=True)
class EpisodeResult:
    episode_id: str
    success: bool
    oracle_success: bool
    spl: float
    ne: float
    path_m: float
    geodesic_m: float
    steps: int  # answers (queries) in the episode
    collisions: int
    end_reason: str
    answers: tuple[str, ...] = ()  # the policy's answer texts, in order


def score(world: World, traj: Trajectory) -> EpisodeResult:
    lm = world.layout.landmark(traj.episode.goal)
    d = [math.hypot(s.x - lm.x, s.y - lm.y) for s in traj.states]
    ne = d[-1]
    success = traj.stopped and ne <= SUCCESS_RADIUS_M
    p, ref = traj.path_length(), traj.episode.geodesic_m
    spl = float(success) * ref / max(p, ref) if max(p, ref) > 0 else float(success)
    return EpisodeResult(
        traj.episode.episode_id,
        success,
        min(d) <= SUCCESS_RADIUS_M,
        spl,
        ne,
        p,
        ref,
        len(traj.queries),
        traj.collisions,
        traj.end_reason,
        tuple(q.text for q in traj.queries),
    )


def summarise(results: list[EpisodeResult]) -> dict[str, float]:
    """VLN-CE table row: SR, SPL, OS in %, NE in m, mean steps (answers), collisions per episode."""
    n = max(1, len(results))
    return {
        "episodes": len(results),
        "SR": 100.0 * sum(r.success for r in results) / n,
        "SPL": 100.0 * sum(r.spl for r in results) / n,
        "NE": sum(r.ne for r in results) / n,
        "OS": 100.0 * sum(r.oracle_success for r in results) / n,
        "steps": sum(r.steps for r in results) / n,
        "collisions": sum(r.collisions for r in results) / n,
    }


__all__ = [
    "EpisodeResult",
    "MAX_ACTIONS",
    "NO_NOISE",
    "Query",
    "Trajectory",
    "expert_policy",
    "rollout",
    "score",
    "summarise",
]


class Renderers:
    """One LayoutRenderer at a time (a compiled scene per layout)."""

    def __init__(self):
        self.seed, self.r = None, None

    def get(self, world: World) -> LayoutRenderer:
        if self.seed != world.layout.seed:
            if self.r is not None:
                self.r.close()
            self.r, self.seed = LayoutRenderer(world.layout), world.layout.seed
        return self.r

    def close(self) -> None:
        if self.r is not None:
            self.r.close()


def render_obs(r: LayoutRenderer, traj: Trajectory, k: int) -> np.ndarray:
    s = traj.states[k]
    return r.render(Pose(s.x, s.y, s.yaw), traj.jitters[k])
