from __future__ import annotations

from edge.common.config import NavigatorConfig, ParserConfig, VlmConfig
from edge.msg.messages import ActionResult, ActionText, NavigatorStatus
from edge.navigation.action_queue import ActionQueue
from edge.navigation.parse import ActionParser, Forward
from edge.vlm.scheduler import VlmScheduler

PARSER = ActionParser(ParserConfig())


def status(state="idle", queue=0, qid=-1, remaining=0.0):
    return NavigatorStatus(
        state=state, execution="closed_loop", queue_len=queue, current_query_id=qid, remaining_s=remaining
    )


def result(qid, kind="forward"):
    return ActionResult(
        action_id=1,
        text="t",
        kind=kind,
        execution="closed_loop",
        commanded=0.5,
        estimated=0.5,
        start_mono_ns=0,
        end_mono_ns=0,
        outcome="completed",
        query_id=qid,
    )


def test_no_query_without_instruction_or_standing_robot():
    s = VlmScheduler(VlmConfig(), "navila", PARSER)
    assert s.decide("hold", status(), 1) is None  # no instruction yet
    s.start("walk to the door")
    assert s.decide("stand_up", status(), 1) is None  # robot not ready
    assert s.decide("hold", None, 1) is None  # navigator silent
    launch = s.decide("hold", status(), 1)
    assert launch.trigger == "idle" and launch.query_id == 1
    assert s.decide("hold", status(), 2) is None  # one query in flight at a time


def test_stop_and_go_waits_for_the_answer_to_be_executed():
    s = VlmScheduler(VlmConfig(overlap=False), "navila", PARSER)
    s.start("go")
    s.decide("hold", status(), 1)
    assert s.on_answer(1, "The next action is move forward 50 cm.", 0.8)
    assert s.decide("walk", status("executing", qid=1, remaining=0.1), 20) is None  # no overlap: wait
    assert s.decide("walk", status("idle"), 15) is None  # idle reported before our answer was taken
    s.on_results([result(1)], now_ns=30)
    assert s.decide("hold", status("idle"), 40).trigger == "idle"


def test_overlap_launches_early_from_measured_latency():
    s = VlmScheduler(VlmConfig(overlap=True, overlap_margin_s=0.1), "navila", PARSER)
    s.start("go")
    s.decide("hold", status(), 1)
    s.on_answer(1, "The next action is move forward 75 cm.", 1.0)  # latency estimate stays ≈ 1.0 s
    assert s.decide("walk", status("executing", qid=1, remaining=1.5), 20) is None
    launch = s.decide("walk", status("executing", qid=1, remaining=1.05), 30)
    assert launch is not None and launch.trigger == "early" and launch.query_id == 2


def test_stop_and_repeated_invalid_end_the_episode():
    s = VlmScheduler(VlmConfig(max_invalid=2), "navila", PARSER)
    s.start("go")
    s.decide("hold", status(), 1)
    assert s.on_answer(1, "The next action is stop.", 0.5)
    assert not s.active and s.episode.end_reason == "STOP"
    s.start("again")
    for qid in (2, 3):
        s.on_results([result(qid - 1, "invalid")], qid * 10)
        launch = s.decide("hold", status("holding"), qid * 10 + 1)
        assert launch is not None
        assert s.on_answer(launch.query_id, "¿garbage?", 0.5)  # still handed on: navigator holds
    assert not s.active and "unparseable" in s.episode.end_reason


def test_history_frames_per_motion_period_or_per_step():
    s = VlmScheduler(VlmConfig(history="motion", history_period_s=0.5), "navila", PARSER)
    s.start("go")
    picks = [t for t in (0.0, 0.1, 0.5, 0.6, 1.0, 1.2) if s.want_history_frame(t, "walk", [])]
    assert picks == [0.0, 0.5, 1.0]
    assert not s.want_history_frame(2.0, "hold", [])  # standing still adds nothing
    s = VlmScheduler(VlmConfig(history="step"), "navila", PARSER)
    s.start("go")
    assert s.want_history_frame(0.0, "walk", [result(1)]) and not s.want_history_frame(0.1, "walk", [])


def test_answer_to_an_earlier_instruction_is_dropped():
    s = VlmScheduler(VlmConfig(), "navila", PARSER)
    s.start("go to the kitchen")
    launch = s.decide("hold", status(), 1)
    s.start("go to the door")  # new instruction while query 1 runs
    assert not s.on_answer(launch.query_id, "The next action is stop.", 0.5)
    assert s.active and s.in_flight is None  # the new episode goes on, asks afresh
    assert s.decide("hold", status(), 6) is not None


def test_isaac_style_answer_is_counted_as_the_navigator_executes_it():
    """One parser, one configured style: with NaVILA's Isaac parser, "Move forward 75 cm." (no "The next action is")
    is a valid answer for the scheduler exactly as it is an action for the navigator, so the episode goes on."""
    parser = ActionParser(ParserConfig(navila_style="isaac"))
    s = VlmScheduler(VlmConfig(max_invalid=1), "navila", parser)
    s.start("go to the door")
    s.decide("hold", status(), 1)
    assert s.on_answer(1, "Move forward 75 cm.", 0.5)
    assert s.active and s.episode.invalid_streak == 0  # habitat rules would have ended the episode here
    queue = ActionQueue(NavigatorConfig(), parser)
    assert queue.submit(ActionText(text="Move forward 75 cm.", source="vlm", query_id=1), 0) == []
    assert [p.action for p in queue.queue] == [Forward(distance_m=0.75, steps=3, text="Move forward 75 cm.")]
    # and the habitat style refuses it in both places alike
    habitat = ActionParser(ParserConfig(navila_style="habitat"))
    s = VlmScheduler(VlmConfig(max_invalid=1), "navila", habitat)
    s.start("go")
    s.decide("hold", status(), 1)
    s.on_answer(1, "Move forward 75 cm.", 0.5)
    assert not s.active and "unparseable" in s.episode.end_reason
    out = ActionQueue(NavigatorConfig(), habitat).submit(ActionText(text="Move forward 75 cm.", source="vlm"), 0)
    assert [r.outcome for r in out] == ["invalid"]


def rep(msg, **changes):
    return msg.model_copy(update=changes)


def test_primitive_times_one_per_intermediate_25cm_or_15deg_step():
    import math

    from edge.vlm.scheduler import primitive_times

    r = rep(result(1), commanded=0.75, estimated=0.74, start_mono_ns=1000, end_mono_ns=4000)
    assert primitive_times(r) == [2000, 3000]  # 75 cm: 3 primitives, the last one's frame is the next query's
    turn = rep(r, kind="turn", commanded=-math.radians(30), estimated=-math.radians(31))
    assert primitive_times(turn) == [2500]  # 30°: 2 primitives
    assert primitive_times(rep(r, estimated=0.26)) == []
    assert primitive_times(rep(r, outcome="rejected")) == []


def test_primitive_history_matches_the_habitat_observations():
    """history: primitive — the start frame, then one frame per executed 25 cm primitive; the current frame last
    and once (what training.rollout gives the model: docs/navigation.md §4)."""
    import numpy as np

    from edge.common.config import EdgeConfig
    from edge.msg.messages import VlmAnswerIn, VlmStep
    from edge.vlm.vlmd import VlmCore
    from engines.vlm.models import VlmFrame

    cfg = EdgeConfig().model_copy(update={"vlm": VlmConfig(history="primitive", overlap=False)})
    core = VlmCore(cfg, "navila", False, lambda i: VlmFrame(i, np.full((2, 2, 3), i, np.uint8)), sender="me")
    ms = 1_000_000

    def step(t_ms, frame, instructions=(), results=(), answers=(), state="idle"):
        st = NavigatorStatus(state=state, execution="closed_loop", queue_len=0)
        return core.step(
            VlmStep(
                tick=t_ms,
                start_s=t_ms / 1e3,
                now_ns=t_ms * ms,
                family="navila",
                sender="me",
                instructions=instructions,
                frame_id=frame,
                control_mode="hold",
                status=(st,),
                status_mono_ns=t_ms * ms,
                results=results,
                answers=answers,
            )
        )

    out = step(0, 0, instructions=("go",))
    assert out.launch is not None and [f.frame_id for f in out.launch[2]] == [-1] * 7 + [0]
    ans = VlmAnswerIn(query_id=out.launch[0], ok=True, text="The next action is move forward 75 cm.")
    step(100, 1, answers=(ans,), state="executing")
    for t, fid in ((1000, 2), (2000, 3), (3000, 4)):  # frames seen while walking 1000 → 4000 ms
        step(t, fid, state="executing")
    done = rep(
        result(out.launch[0]),
        commanded=0.75,
        estimated=0.75,
        start_mono_ns=1000 * ms,
        end_mono_ns=4000 * ms,
        sender="me",
    )
    out = step(4000, 5, results=(done,), state="executing")
    assert out.launch is None
    out = step(4100, 5)  # idle after its result: the next query
    assert out.launch is not None
    assert [f.frame_id for f in out.launch[2]] == [-1] * 4 + [0, 3, 4, 5]  # start, 25 cm, 50 cm, current (75 cm)


def test_primitive_times_never_exceed_the_commanded_primitives():
    """A glitched estimate (1e9 m) must not flood the history: at most the commanded action's primitives."""
    from edge.vlm.scheduler import primitive_times

    r = rep(result(1), commanded=0.75, estimated=1e9, start_mono_ns=1000, end_mono_ns=4000)
    assert primitive_times(r) == [2000, 3000]


def test_history_stays_in_camera_order_and_unique():
    """With overlap, an early query's frame (mid-action) is added before the action's intermediate frames, which
    are older: the history keeps camera order and each frame once (a reversed history is a contract drift)."""
    import numpy as np

    from edge.common.config import EdgeConfig
    from edge.vlm.vlmd import VlmCore
    from engines.vlm.models import VlmFrame

    cfg = EdgeConfig().model_copy(update={"vlm": VlmConfig(history="primitive", overlap=True)})
    core = VlmCore(cfg, "navila", False, lambda i: VlmFrame(i, np.zeros((2, 2, 3), np.uint8)), sender="me")
    for fid in (0, 4, 3, 4, 1, 0):
        core._add_history(VlmFrame(fid, np.zeros((2, 2, 3), np.uint8)))
    assert [f.frame_id for f in core.history] == [0, 1, 3, 4]
