from __future__ import annotations

import math

import pytest

from edge.common.config import NavigatorConfig, ParserConfig
from edge.msg.messages import ActionText
from edge.navigation.action_queue import ActionQueue
from edge.navigation.executor import Pose2D
from edge.navigation.parse import ActionParser

NS = 1_000_000_000


def text(t, source="operator", grammar="navila", qid=1):
    return ActionText(text=t, source=source, grammar=grammar, query_id=qid)


def run(nav, t0, seconds, pose_fn, control="walk", dt=0.02):
    """Step the navigator on a fake clock with a pose that follows its own setpoints (an ideal plant)."""
    results, t, pose = [], t0, pose_fn
    x, y, yaw = pose
    while t < t0 + seconds:
        (vx, vy, wz), done = nav.step(t, int(t * NS), Pose2D(x, y, yaw), control)
        results += done
        x += vx * math.cos(yaw) * dt
        y += vx * math.sin(yaw) * dt
        yaw += wz * dt
        t += dt
    return results, (x, y, yaw), t


def test_invalid_text_holds_and_reports_reason():
    nav = ActionQueue(NavigatorConfig(), ActionParser(ParserConfig()))
    [r] = nav.submit(text("the kitchen looks nice"), 5)
    assert r.outcome == "invalid" and r.kind == "invalid" and r.reason
    assert nav.status().state == "holding" and nav.invalid == 1


def test_closed_loop_forward_completes_and_reports_estimate():
    nav = ActionQueue(NavigatorConfig(execution="closed_loop"), ActionParser(ParserConfig()))
    assert nav.submit(text("move forward 50 cm"), 0) == []
    results, (x, _, _), _ = run(nav, 0.0, 4.0, (0.0, 0.0, 0.0))
    [r] = results
    assert r.kind == "forward" and r.outcome == "completed" and r.commanded == 0.5
    assert r.estimated == pytest.approx(0.5, abs=0.03) and x == pytest.approx(0.5, abs=0.05)


def test_actions_wait_for_standing_and_damp_drops_everything():
    nav = ActionQueue(NavigatorConfig(), ActionParser(ParserConfig()))
    nav.submit(text("move forward 50 cm"), 0)
    sp, res = nav.step(0.0, 0, Pose2D(0, 0, 0), "stand_up")
    assert sp == (0.0, 0.0, 0.0) and res == [] and nav.current is None and len(nav.queue) == 1
    nav.step(0.02, int(0.02 * NS), Pose2D(0, 0, 0), "walk")
    assert nav.current is not None
    sp, res = nav.step(0.04, int(0.04 * NS), Pose2D(0, 0, 0), "damp")
    assert sp == (0.0, 0.0, 0.0) and [r.outcome for r in res] == ["preempted"] and not nav.queue


def test_closed_loop_aborts_on_stale_odometry():
    nav = ActionQueue(NavigatorConfig(execution="closed_loop"), ActionParser(ParserConfig()))
    nav.submit(text("turn left 30 degrees"), 0)
    nav.step(0.0, 0, Pose2D(0, 0, 0), "hold")
    sp, [r] = nav.step(0.02, int(0.02 * NS), None, "walk")
    assert sp == (0.0, 0.0, 0.0) and r.outcome == "preempted" and r.reason == "odometry stale"


def test_stop_clears_the_queue():
    nav = ActionQueue(NavigatorConfig(), ActionParser(ParserConfig()))
    nav.submit(text("↑STOP", grammar="streamvln"), 0)
    assert len(nav.queue) == 2
    nav.submit(text("move forward 25 cm"), 0)
    results, _, _ = run(nav, 0.0, 3.0, (0.0, 0.0, 0.0))
    assert [r.kind for r in results] == ["forward", "stop"] and not nav.queue


def test_remaining_time_and_vlm_wait_accounting():
    nav = ActionQueue(NavigatorConfig(execution="open_loop"), ActionParser(ParserConfig()))
    nav.submit(text("The next action is move forward 50 cm.", source="vlm"), 0)
    assert nav.remaining_s() == pytest.approx(1.0)  # 0.5 m at 0.5 m/s
    results, pose, t = run(nav, 0.0, 1.5, (0.0, 0.0, 0.0))
    assert len(results) == 1 and nav.remaining_s() == 0.0
    # the action ended at ≈1.0 s; the robot stands idle until the next VLM answer is submitted at t + 0.7 s
    run(nav, t, 0.7, pose)
    nav.submit(text("The next action is turn left 15 degrees.", source="vlm"), int((t + 0.7) * NS))
    run(nav, t + 0.7, 0.1, pose)
    assert nav.vlm_waits == 1 and nav.vlm_wait_s == pytest.approx(t + 0.7 - 1.0, abs=0.05)
