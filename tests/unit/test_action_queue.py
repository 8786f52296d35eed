from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.common.config import NavigatorConfig, ParserConfig
from edge.msg.messages import ActionText
from edge.navigation.action_queue import ActionQueue
from edge.navigation.executor import Pose2D
from edge.navigation.parse import ActionParser

NS = 1_000_000_000


def text(t, source="operator", grammar="navila", qid=1, sender="op-1-0000"):
    return ActionText(text=t, source=source, grammar=grammar, query_id=qid, sender=sender)


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
    assert [(r.kind, r.outcome) for r in results] == [
        ("forward", "completed"),
        ("stop", "completed"),
        ("forward", "preempted"),
    ]
    assert results[-1].reason == "STOP" and not nav.queue  # what was queued behind the STOP gets a result too


def test_every_sentence_and_action_gets_exactly_one_result():
    """Invalid text preempts what is queued, each with a result; nothing vanishes from the queue unreported."""
    nav = ActionQueue(NavigatorConfig(), ActionParser(ParserConfig()))
    nav.submit(text("↑←→↑", grammar="streamvln", qid=1), 0)
    nav.step(0.0, 0, Pose2D(0, 0, 0), "walk")  # the first starts
    out = nav.submit(text("the kitchen is nice", qid=2), 1)
    assert [(r.kind, r.outcome) for r in out] == [
        ("forward", "preempted"),
        ("turn", "preempted"),
        ("turn", "preempted"),
        ("forward", "preempted"),
        ("invalid", "invalid"),
    ]
    assert [r.query_id for r in out] == [1, 1, 1, 1, 2] and not nav.queue and nav.current is None


def test_flood_is_bounded_and_every_sentence_gets_a_result():
    """10,000 sentences at once (the issue's flood): the queue stays bounded, the overflow is rejected with the
    bound named, and every sentence has exactly one result (queued ones when they finish)."""
    cfg = NavigatorConfig(max_queue=8)
    nav = ActionQueue(cfg, ActionParser(ParserConfig()))
    results = []
    for i in range(10_000):
        results += nav.submit(text("move forward 25 cm", qid=i + 1), i)
    assert len(nav.queue) == 8
    rejected = [r for r in results if r.outcome == "rejected"]
    assert len(rejected) == 10_000 - 8 and all("navigator.max_queue 8" in r.reason for r in rejected)
    assert {r.query_id for r in rejected} == set(range(9, 10_001))
    more, _, _ = run(nav, 0.0, 20.0, (0.0, 0.0, 0.0))
    assert [r.outcome for r in more] == ["completed"] * 8
    assert sorted(r.query_id for r in results + more) == list(range(1, 10_001))


@pytest.mark.parametrize("mode", ["damp", None])
def test_control_not_accepting_rejects_queued_and_new_sentences(mode):
    nav = ActionQueue(NavigatorConfig(), ActionParser(ParserConfig()))
    nav.submit(text("move forward 50 cm", qid=1), 0)
    nav.submit(text("turn left 30 degrees", qid=2), 0)
    nav.step(0.0, 0, Pose2D(0, 0, 0), "walk")  # forward starts, turn queued
    why = "control is damping (operator e-stop); restart controlsd to clear"
    sp, out = nav.step(0.02, int(0.02 * NS), Pose2D(0, 0, 0), mode, refuse=why)
    assert sp == (0.0, 0.0, 0.0)
    assert [(r.query_id, r.outcome, r.reason) for r in out] == [(1, "preempted", why), (2, "rejected", why)]
    [r] = nav.submit(text("move forward 25 cm", qid=3), 1, refuse=why)
    assert (r.outcome, r.kind, r.commanded, r.reason) == ("rejected", "forward", 0.25, why) and not nav.queue
    assert nav.status().rejected_texts == 2


def test_damp_with_sentences_queued_but_none_started_gives_each_a_result():
    """The failing input (found on main by the records work): sentences queued while control stands up, then control
    damps before any started. `_drop_all` cleared the queue and returned no result at all: `edge say --wait` waited
    out its timeout and the VLM never learned its answer was dropped. Each queued action is rejected, with control's
    reason when the navigator has it (the live process always does: control_refusal of the same controlState)."""
    why = "control is damping (LowState stale 61 ms); restart controlsd to clear"
    for refuse, reason in ((why, why), ("", "control is damping")):
        nav = ActionQueue(NavigatorConfig(), ActionParser(ParserConfig()))
        nav.submit(text("move forward 50 cm", qid=1), 0)
        nav.submit(text("↑←", grammar="streamvln", qid=2), 0)
        assert nav.step(0.0, 0, Pose2D(0, 0, 0), "stand_up") == ((0.0, 0.0, 0.0), [])  # queued, none started
        sp, out = nav.step(0.02, int(0.02 * NS), Pose2D(0, 0, 0), "damp", refuse)
        assert sp == (0.0, 0.0, 0.0) and not nav.queue and nav.current is None
        assert [(r.query_id, r.kind, r.outcome, r.reason) for r in out] == [
            (1, "forward", "rejected", reason),
            (2, "forward", "rejected", reason),
            (2, "turn", "rejected", reason),
        ]
        assert nav.step(0.04, int(0.04 * NS), Pose2D(0, 0, 0), "damp", refuse) == ((0.0, 0.0, 0.0), [])  # once only


_SENTENCES = [
    ("move forward 50 cm", "navila"),
    ("turn left 30 degrees", "navila"),
    ("stop", "navila"),
    ("the kitchen looks nice", "navila"),  # invalid: preempts what is queued
    ("↑←→↑", "streamvln"),  # four actions, one sentence
    ("↑STOP", "streamvln"),  # what is queued behind the STOP is preempted by it
]
_MODES = ["walk", "hold", "stand_up", "passive", "damp", None]
_op = st.one_of(
    st.tuples(st.just("say"), st.sampled_from(range(len(_SENTENCES))), st.booleans()),
    st.tuples(st.just("step"), st.sampled_from(_MODES), st.booleans(), st.booleans(), st.integers(1, 60)),
    st.tuples(st.just("restart")),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_op, max_size=60), st.integers(1, 3))
def test_every_action_ends_in_exactly_one_result_whatever_happens(ops, max_queue):
    """The whole kind: sentences, control modes (damping, standing up, gone), refusals, stale odometry, a full queue,
    control restarts and STOPs in any order. Every sentence gets either one sentence result (invalid / rejected,
    action_id -1) or exactly one result per action it became; no result is invented or repeated. What is still
    running or queued at the end is accounted for by hold_all (what the navigator does when it stops)."""
    nav = ActionQueue(NavigatorConfig(max_queue=max_queue), ActionParser(ParserConfig()))
    parser = ActionParser(ParserConfig())
    why = "control is damping (operator e-stop); restart controlsd to clear"
    results, n_actions, t = [], {}, 0.0
    for qid, op in enumerate(ops, start=1):
        now_ns = int(t * NS)
        if op[0] == "say":
            sentence, grammar = _SENTENCES[op[1]]
            parsed = parser.parse(sentence, grammar, "operator")
            n_actions[qid] = len(getattr(parsed, "actions", ()))
            results += nav.submit(text(sentence, grammar=grammar, qid=qid), now_ns, why if op[2] else "")
        elif op[0] == "step":
            _, mode, refused, pose_fresh, ticks = op
            for _ in range(ticks):
                t += 0.05
                pose = Pose2D(0.0, 0.0, 0.0) if pose_fresh else None
                results += nav.step(t, int(t * NS), pose, mode, why if refused else "")[1]
        else:
            results += nav.hold_all(now_ns, "control restarted")
    results += nav.hold_all(int(t * NS), "navigator stopping")
    assert nav.current is None and not nav.queue
    by_sentence: dict[int, list] = {}
    for r in results:
        by_sentence.setdefault(r.query_id, []).append(r)
    assert set(by_sentence) == set(n_actions), "a sentence without a result, or a result without a sentence"
    for qid, rs in by_sentence.items():
        if any(r.action_id == -1 for r in rs):  # ended as a whole: invalid, or rejected before it was queued
            assert len(rs) == 1 and rs[0].outcome in ("invalid", "rejected"), rs
        else:
            assert len(rs) == n_actions[qid] and len({r.action_id for r in rs}) == len(rs), rs
    assert len({r.action_id for r in results if r.action_id != -1}) == sum(1 for r in results if r.action_id != -1)


def test_control_refusal_reasons():
    from edge.common.config import EdgeConfig
    from edge.msg.bus import Received
    from edge.msg.messages import ControlState
    from edge.navigation.action_queue import control_refusal

    def state(mode, reason, age_s=0.0, **cfg):
        msg = ControlState(
            mode=mode,
            reason=reason,
            tick=1,
            missed_ticks=0,
            period_ms=20,
            lateness_ms=0,
            work_ms=1,
            vx_m_s=0,
            vy_m_s=0,
            wz_rad_s=0,
        )
        c = EdgeConfig.model_validate(cfg)
        return control_refusal(c, Received(msg, 1, 10 * NS - int(age_s * NS)), 10 * NS)

    assert state("hold", "standing") == "" and state("stand_up", "x") == "" and state("walk", "x") == ""
    assert "damping (operator e-stop)" in state("damp", "operator e-stop")
    assert state("passive", "lying") == ""  # the simulator profile stands up by itself
    assert "edge stand" in state("passive", "lying", control={"auto_stand": False})
    assert "no controlState for 2.0 s" in state("hold", "standing", age_s=2.0)


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
