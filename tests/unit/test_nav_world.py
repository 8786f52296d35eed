"""Navigation worlds, geometry, expert and episodes (training/, drivers/sim/nav_world.py): invariants that would break
the dataset or the scoring silently."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drivers.sim.nav_world import LANDMARK_COLOURS, generate_layout
from training.episodes import World, make_episodes
from training.expert import SUCCESS_RADIUS_M, Action
from training.geometry import NO_NOISE, ROBOT_RADIUS_M, State, clearance, execute
from training.rollout import expert_policy, rollout, score


@pytest.mark.parametrize("seed", [0, 1, 2, 1000, 1001])
def test_layout_is_deterministic_and_well_formed(seed):
    a, b = generate_layout(seed), generate_layout(seed)
    assert a == b
    colours = [lm.colour for lm in a.landmarks]
    assert len(set(colours)) == len(colours) == 5 and set(colours) <= set(LANDMARK_COLOURS)
    for i, p in enumerate(a.landmarks):
        for q in a.landmarks[i + 1 :]:
            assert math.hypot(p.x - q.x, p.y - q.y) >= 2.5
        assert clearance(a, p.x, p.y) == 0.0  # the centre is inside its own footprint
    rooms = {a.room_of(lm.x, lm.y) for lm in a.landmarks}
    assert rooms == {0, 1}


def test_bgr_maps_every_landmark_colour_to_another_palette_colour():
    rgb = {name: np.array(c) for name, c in LANDMARK_COLOURS.items()}
    for name, c in rgb.items():
        swapped = c[::-1]
        others = [n for n, d in rgb.items() if np.allclose(d, swapped)]
        assert others and others[0] != name


def test_execute_never_enters_obstacles():
    world = World(3)
    rng = np.random.default_rng(0)
    s = State(1.0, 1.0, 0.0)
    for _ in range(200):
        kind = ["forward", "left", "right"][rng.integers(3)]
        states, _ = execute(world.layout, s, kind, 3, rng)
        s = states[-1]
        assert clearance(world.layout, s.x, s.y) >= ROBOT_RADIUS_M - 1e-9


VOCABULARY = {Action("stop")} | {Action("forward", d) for d in (25, 50, 75)}
VOCABULARY |= {Action(k, d) for k in ("left", "right") for d in (15, 30, 45)}


@pytest.mark.parametrize("split,noisy", [("train", False), ("val_unseen", True)])
def test_expert_reaches_every_goal_along_a_short_path_in_navila_actions(split, noisy):
    """Every episode kind; the path stays close to the geodesic (shortest path on the 5 cm grid); every answer is
    one of NaVILA's mid-level actions (forward 25/50/75 cm, turn 15/30/45°, stop); the last one is stop."""
    eps = make_episodes(split, 2, 8, seed=5)
    assert {e.kind for e in eps} == {"go", "turn", "door", "turn_door"}
    rng = np.random.default_rng(0)
    for ep in eps:
        world = World(ep.layout_seed)
        traj = rollout(world, ep, expert_policy, rng) if noisy else rollout(world, ep, expert_policy, rng, NO_NOISE)
        r = score(world, traj)
        assert r.success and r.ne <= SUCCESS_RADIUS_M, (ep, r)
        assert r.collisions == 0
        assert r.path_m <= 1.6 * ep.geodesic_m + 0.5
        assert {q.expert for q in traj.queries} <= VOCABULARY and traj.queries[-1].expert == Action("stop")


def test_turn_instructions_match_the_experts_first_turn():
    for ep in make_episodes("train", 2, 8, seed=2):
        world = World(ep.layout_seed)
        first = world.expert(ep.goal).action(ep.start_state)
        if ep.instruction.startswith("Turn left"):
            assert first.kind == "left"
        elif ep.instruction.startswith("Turn right"):
            assert first.kind == "right"


def test_overshoot_moves_past_the_stop_point_and_the_expert_labels_the_way_back():
    """Overshoot (training data only): at a stop label the rollout executes a small move instead (forward 25 cm or
    a 15° turn), at most twice per episode; the states it reaches are labelled by the expert again, and the episode
    still ends at the expert's stop inside the success radius."""
    rng = np.random.default_rng(1)
    small = {Action("forward", 25), Action("left", 15), Action("right", 15)}
    overshot = 0
    eps = make_episodes("train", 2, 6, seed=4)
    for ep in eps:
        world = World(ep.layout_seed)
        traj = rollout(world, ep, expert_policy, rng, NO_NOISE, overshoot=1.0)
        moved = [q for q in traj.queries if q.expert == Action("stop") and q.executed != Action("stop")]
        assert len(moved) == 2 and {q.executed for q in moved} <= small, moved
        assert traj.queries.index(moved[-1]) < len(traj.queries) - 1  # labelled again after the last one
        assert traj.stopped and traj.queries[-1].executed == Action("stop")
        assert score(world, traj).success
        overshot += len(moved)
        plain = rollout(world, ep, expert_policy, np.random.default_rng(1), NO_NOISE)
        assert sum(q.expert == Action("stop") for q in plain.queries) == 1
    assert overshot == 2 * len(eps)


def test_turn_target_reads_the_instructions_turn_direction():
    from training.dataset import turn_target

    eps = make_episodes("train", 4, 8, seed=2)
    assert {turn_target(e.instruction) for e in eps} == {0, 1}
    for ep in eps:
        first = World(ep.layout_seed).expert(ep.goal).action(ep.start_state)
        if turn_target(ep.instruction):
            assert ep.instruction.startswith("Turn right") and first.kind == "right"


def test_splits_share_no_layout():
    train = {e.layout_seed for e in make_episodes("train", 3, 1)}
    val = {e.layout_seed for e in make_episodes("val_unseen", 3, 1)}
    assert not train & val


def test_stack_run_scored_with_the_offline_definitions():
    """training.stack_eval scores a stack run (truth path, stop reason, answers) with training.rollout.score: a run
    that did not stop never succeeds, even at the goal; steps are the answers."""
    from training.stack_eval import score_run, stack_episodes

    ep = stack_episodes(1)[0]
    world = World(ep.layout_seed)
    lm = world.layout.landmark(ep.goal)
    path = [list(ep.start), [lm.x - 0.8, lm.y, 0.0]]
    answers = [{"text": "The next action is stop."}]
    stopped = score_run(world, ep, {"path": path, "stopped": True, "stop_reason": "stop", "answers": answers})
    assert stopped.success and stopped.oracle_success and stopped.steps == 1 and 0 < stopped.spl <= 1
    assert abs(stopped.ne - 0.8) < 1e-9
    timeout = score_run(world, ep, {"path": path, "stopped": False, "stop_reason": "timeout", "answers": []})
    assert not timeout.success and timeout.oracle_success and timeout.spl == 0


def test_demo_episode_is_the_val_unseen_episode():
    """make demo's vln run (edge.tools.demo.NAV_DEMO_EPISODE, no training import on the robot side) is exactly a
    val-unseen episode of the evaluation."""
    from edge.tools.demo import NAV_DEMO_EPISODE
    from training.stack_eval import episode_spec, stack_episodes

    assert NAV_DEMO_EPISODE == episode_spec(stack_episodes(6)[5])
