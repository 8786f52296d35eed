"""`edge replay`: a recorded run fed back into a process's pure step in lock-step; identical outputs pass, any
difference (a changed step, a changed parameter, a tampered or missing output) fails with a readable diff.

The recordings here are written exactly as the live shells publish (step record, then the tick's outputs, each
stamped by the process's clock); tests/integration/test_records.py does the same with the real processes."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from edge.common.config import EdgeConfig, load_config
from edge.msg.messages import (
    TOPICS,
    ActionResult,
    ActionText,
    NavigatorStatus,
    NavigatorStep,
    VlmAnswerIn,
    VlmStep,
)
from edge.msg.recording import RecordWriter, read_recording
from edge.navigation.navigatord import NavigatorCore
from edge.tools.cli import main as edge
from edge.tools.replay import ReplayError, replay
from edge.vlm.vlmd import VlmCore
from engines.vlm.models import VlmFrame

TICK_NS = 50_000_000
T0_NS = 5_000_000_000


class Recorder:
    """Writes what a process publishes, stamped as the live shell does (sender clock, per-topic sequence)."""

    def __init__(self, path: Path, topics: list[str], cfg: EdgeConfig):
        self.f = path.open("wb")
        self.w = RecordWriter(
            self.f, [TOPICS[t] for t in topics], offset_ns=1_700_000_000 * 10**9, config_json=cfg.model_dump_json()
        )
        self.seq: dict[str, int] = {}
        self.skip: set[str] = set()

    def publish(self, topic: str, msg, stamp_ns: int) -> None:
        self.seq[topic] = self.seq.get(topic, 0) + 1
        if topic not in self.skip:
            self.w.add(topic, self.seq[topic], stamp_ns, stamp_ns + 100_000, msg)

    def close(self) -> None:
        self.w.finish()
        self.f.close()


def record_navigator(path: Path, cfg: EdgeConfig, ticks: int = 260, texts: dict | None = None, start: int = 0):
    """A simulated navigatord run: operator texts at given ticks, control standing, a robot that moves as
    commanded (odometry integrates the velocity). Steps before `start` are published but not recorded."""
    texts = texts if texts is not None else {5: "move forward 50 cm", 60: "turn left 30 degrees", 140: "foo bar"}
    core, rec = (
        NavigatorCore(cfg),
        Recorder(path, ["navigatorStep", "velocityCommand", "actionResult", "navigatorStatus"], cfg),
    )
    x = y = yaw = 0.0
    vx = wz = 0.0
    for k in range(ticks):
        now = T0_NS + k * TICK_NS
        x, y, yaw = x + vx * math.cos(yaw) * 0.05, y + vx * math.sin(yaw) * 0.05, yaw + wz * 0.05
        inp = NavigatorStep(
            tick=k,
            start_s=now * 1e-9,
            now_ns=now,
            texts=(ActionText(text=texts[k]),) if k in texts else (),
            pose_fresh=k != 130,  # odometry stale once, while idle
            x_m=x,
            y_m=y,
            yaw_rad=yaw,
            control_mode="hold" if k > 2 else "",
        )
        rec.skip = {"navigatorStep", "velocityCommand", "actionResult", "navigatorStatus"} if k < start else set()
        rec.publish("navigatorStep", inp, now + 10_000)
        out = core.step(inp)
        vx, wz = out.velocity.vx_m_s, out.velocity.wz_rad_s
        rec.publish("velocityCommand", out.velocity, now + 20_000)
        for i, r in enumerate(out.results):
            rec.publish("actionResult", r, now + 30_000 + i)
        if out.status is not None:
            rec.publish("navigatorStatus", out.status, now + 40_000)
    rec.close()
    return path


@pytest.fixture
def cfg():
    return load_config(None, {"navigator.execution": "closed_loop"})


def test_a_faithful_recording_replays_identically(tmp_path, cfg):
    rec = read_recording(record_navigator(tmp_path / "nav.mcap", cfg))
    report = replay(rec, "navigatord", cfg)
    assert report.ok, report.lines()
    assert report.ticks == 260 and report.compared_ticks == 259
    assert report.compared["velocityCommand"] == 259 and report.compared["actionResult"] == 3  # 2 done, 1 invalid
    assert report.compared["navigatorStatus"] > 25 and not report.notes


def test_the_recorded_configuration_is_used_unless_another_is_given(tmp_path):
    run_cfg = load_config(None, {"navigator.forward_speed_m_s": 0.35})  # not what configs/sim.yaml says
    path = record_navigator(tmp_path / "nav.mcap", run_cfg)
    assert edge(["replay", str(path), "--process", "navigatord"]) == 0
    assert edge(["--config", "configs/sim.yaml", "replay", str(path), "--process", "navigatord"]) == 1


def test_a_changed_parameter_is_a_readable_diff(tmp_path, cfg, capsys):
    path = record_navigator(tmp_path / "nav.mcap", cfg)
    assert edge(["--set", "navigator.forward_speed_m_s=0.4", "replay", str(path), "--process", "navigatord"]) == 1
    out = capsys.readouterr().out
    assert "differences" in out and "velocityCommand[0] vx_m_s: recorded 0.5, replayed 0.4" in out
    # where: the tick (1 = the process's first), its time from the recording's first step
    assert re.search(
        r"^  tick \d+ \(t=\+\d+\.\d{3} s\) velocityCommand\[0\] vx_m_s: recorded 0\.5, replayed 0\.4$", out, re.M
    )


def test_a_tampered_output_is_found_with_its_tick_and_field(tmp_path, cfg):
    rec = read_recording(record_navigator(tmp_path / "nav.mcap", cfg))
    first = rec.topics["actionResult"][0]
    first["msg"]["estimated"] += 0.01
    report = replay(rec, "navigatord", cfg)
    assert not report.ok and len(report.diffs) == 1
    assert report.diffs[0].startswith(f"tick {_tick_of(rec, first)} ")
    assert "actionResult[0] estimated: recorded" in report.diffs[0]


def _tick_of(rec, msg) -> int:
    steps = rec.topics["navigatorStep"]
    return max(s["seq"] for s in steps if s["mono_ns"] < msg["mono_ns"])


def test_an_output_missing_from_the_recording_is_reported(tmp_path, cfg):
    rec = read_recording(record_navigator(tmp_path / "nav.mcap", cfg))
    del rec.topics["navigatorStatus"][10]
    report = replay(rec, "navigatord", cfg)
    assert any("navigatorStatus: recorded 0 messages, replayed 1" in d for d in report.diffs)
    assert any("navigatorStatus replayed only" in d for d in report.diffs)


def test_a_recording_joined_late_replays_from_its_first_step(tmp_path, cfg):
    rec = read_recording(record_navigator(tmp_path / "nav.mcap", cfg, start=3))
    report = replay(rec, "navigatord", cfg)
    assert report.ok, report.lines()
    assert report.ticks == 257 and "starts at navigatord tick 4" in report.notes[0]


def test_lost_step_records_stop_the_comparison_with_a_note(tmp_path, cfg):
    rec = read_recording(record_navigator(tmp_path / "nav.mcap", cfg))
    del rec.topics["navigatorStep"][100:102]
    report = replay(rec, "navigatord", cfg)
    assert (
        report.ok and report.ticks == 100 and "lost navigatorStep 101..102: compared up to tick 99" in report.notes[0]
    )


def test_nothing_to_replay_is_one_line_and_exit_2(tmp_path, cfg, capsys):
    path = tmp_path / "empty.mcap"
    Recorder(path, ["odometry"], cfg).close()
    assert edge(["replay", str(path), "--process", "vlmd"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no vlmStep records" in err
    with pytest.raises(ReplayError, match="replayable"):
        replay(read_recording(path), "controlsd", cfg)


def test_step_records_of_another_version_are_one_clear_error(tmp_path, cfg):
    rec = read_recording(record_navigator(tmp_path / "nav.mcap", cfg, ticks=5))
    rec.topics["navigatorStep"][2]["msg"]["pose"] = [0.0, 0.0, 0.0]  # a field this version does not have
    with pytest.raises(ReplayError, match=r"do not fit this version's NavigatorStep \(pose: Extra inputs"):
        replay(rec, "navigatord", cfg)


# ---- vlmd ------------------------------------------------------------------------------------------------------

ANSWERS = [
    "The next action is move forward 50 cm.",
    "The next action is turn left 15 degrees.",
    "The next action is stop.",
]


def record_vlm(path: Path, cfg: EdgeConfig, ticks: int = 200):
    """A simulated vlmd run: an instruction, camera frames, a navigator that takes each answer 8 ticks and reports
    back; the model answers 6 ticks after each launch."""
    frames = {}
    core = VlmCore(cfg, "fixed", False, lambda i: frames.setdefault(i, VlmFrame(i, _pixels())))
    rec = Recorder(path, ["vlmStep", "vlmOutput", "navigatorStep"], cfg)
    due_answer: dict[int, int] = {}  # tick → query id
    due_result: dict[int, ActionResult] = {}
    executing = False
    answered = 0
    for k in range(ticks):
        now = T0_NS + k * TICK_NS
        answers = ()
        if k in due_answer:
            qid = due_answer.pop(k)
            answers = (
                VlmAnswerIn(query_id=qid, ok=True, text=ANSWERS[answered % 3], frame_ids=(k // 2,), vision_ms=3.0),
            )
            answered += 1
        results = ()
        if k in due_result:
            results, executing = (due_result.pop(k),), False
        status = NavigatorStatus(state="executing" if executing else "idle", execution="closed_loop", queue_len=0)
        inp = VlmStep(
            tick=k,
            start_s=now * 1e-9,
            now_ns=now,
            family="fixed",
            instructions=("walk to the door",) if k == 2 else (),
            frame_id=k // 2 if k > 1 else -1,
            control_mode="hold",
            status=(status,),
            status_mono_ns=now - 1_000_000,
            results=results,
            answers=answers,
        )
        rec.publish("vlmStep", inp, now + 10_000)
        out = core.step(inp)
        if out.launch is not None:
            due_answer[k + 6] = out.launch[0]
        if out.output is not None:
            rec.publish("vlmOutput", out.output, now + 20_000)
        if out.action is not None:  # the navigator receives it next tick and reports a result 8 ticks later
            nav = NavigatorStep(tick=k + 1, start_s=0.0, now_ns=now + TICK_NS, texts=(out.action,))
            rec.publish("navigatorStep", nav, now + TICK_NS + 5_000)
            executing = True
            due_result[k + 8] = ActionResult(
                action_id=answered,
                query_id=out.action.query_id,
                text=out.action.text,
                kind="forward",
                execution="closed_loop",
                commanded=0.5,
                estimated=0.5,
                start_mono_ns=now,
                end_mono_ns=now + 8 * TICK_NS,
                outcome="completed",
            )
    rec.close()
    return path


def _pixels():
    import numpy as np

    return np.zeros((1, 1, 3), np.uint8)


def test_a_vlm_run_replays_identically_answers_and_sent_texts_included(tmp_path, cfg):
    rec = read_recording(record_vlm(tmp_path / "vlm.mcap", cfg))
    outputs = [m["msg"] for m in rec.topics["vlmOutput"]]
    assert [o["text"] for o in outputs] == ANSWERS and outputs[-1]["episode_over"] == "STOP"
    report = replay(rec, "vlmd", cfg)
    assert report.ok, report.lines()
    assert report.compared["vlmOutput"] == 3 and report.compared["actionText"] == 3


def test_a_changed_vlm_parameter_is_a_diff(tmp_path, cfg, capsys):
    path = record_vlm(tmp_path / "vlm.mcap", cfg)
    # a shorter forward limit: the first answer is no longer an action; the VLM process sends it all the same
    # (the navigator judges it), so the schedule after it is unchanged, but not the episode's end
    assert (
        edge(
            [
                "--set",
                "vlm.max_invalid=1",
                "--set",
                "parser.max_forward_m=0.1",
                "replay",
                str(path),
                "--process",
                "vlmd",
            ]
        )
        == 1
    )
    out = capsys.readouterr().out
    assert 'episode_over: recorded "", replayed "1 unparseable answers in a row"' in out


def test_tampered_sent_text_is_found(tmp_path, cfg):
    rec = read_recording(record_vlm(tmp_path / "vlm.mcap", cfg))
    rec.topics["navigatorStep"][1]["msg"]["texts"][0]["text"] = "The next action is turn right 90 degrees."
    report = replay(rec, "vlmd", cfg)
    assert [d for d in report.diffs if d.startswith("actionText received by navigatord[1] text: recorded")]


def test_report_json_is_readable(tmp_path, cfg):
    """`edge report` on a recording without simulator truth: actions listed, fall unknown."""
    path = record_navigator(tmp_path / "nav.mcap", cfg)
    assert edge(["report", str(path), "--out", str(tmp_path / "rep")]) == 0
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert [a["kind"] for a in report["actions"]] == ["forward", "turn", "invalid"]
    assert report["fell"] is None and report["actions"][0]["estimated"] == pytest.approx(0.5, abs=0.03)
    rec = report["runs"]["closed_loop"]["recording"]
    assert rec["complete"] and rec["messages"] == 260 * 2 + 3 + rec_count(path, "navigatorStatus")
    assert rec["duration_s"] == pytest.approx(259 * 0.05, abs=0.01)


def rec_count(path, topic):
    return len(read_recording(path).topics[topic])


def test_a_restarted_control_drops_every_action_in_the_step(cfg):
    """The navigator's step sees control's boot id: a new one drops the running action and the queue (held), as the
    live process does, so replays reproduce it too."""
    core = NavigatorCore(cfg)

    def step(k, boot, texts=()):
        return core.step(
            NavigatorStep(
                tick=k,
                start_s=k * 0.05,
                now_ns=k * TICK_NS,
                texts=texts,
                pose_fresh=True,
                control_mode="hold",
                control_boot=boot,
            )
        )

    step(
        0,
        "boot-a",
        (ActionText(text="move forward 50 cm", query_id=1), ActionText(text="turn left 30 degrees", query_id=2)),
    )
    assert step(1, "boot-a").velocity.vx_m_s > 0
    out = step(2, "boot-b")
    assert out.control_restarted == "control restarted (boot boot-a → boot-b)"
    assert [(r.query_id, r.outcome) for r in out.results] == [(1, "preempted"), (2, "preempted")]  # queued one too
    assert out.velocity.vx_m_s == 0
    assert core.queue.status().state == "holding" and core.queue.status().queue_len == 0


def test_a_stalled_navigator_drops_every_action_instead_of_resuming(cfg):
    """A tick later than safety.command_max_age_s (SIGSTOP / SIGCONT, starvation): control has zeroed the stale
    command meanwhile; the navigator must not resume the walk on its own (found by the fault suite). The lateness is a
    step input, so replays reproduce it."""
    core = NavigatorCore(cfg)

    def step(k, late_s=0.0, texts=()):
        inp = NavigatorStep(tick=k, start_s=k * 0.05, now_ns=k * TICK_NS, late_s=late_s, texts=texts, pose_fresh=True,
                            control_mode="walk", control_boot="boot-a")  # fmt: skip
        return core.step(inp)

    step(0, texts=(ActionText(text="move forward 150 cm", query_id=1), ActionText(text="stop", query_id=2)))
    assert step(1, late_s=0.14).velocity.vx_m_s > 0  # late, but within the command's max age: goes on
    out = step(21, late_s=1.0)
    assert out.control_restarted == "navigator stalled 1000 ms"
    assert [(r.query_id, r.outcome) for r in out.results] == [(1, "preempted"), (2, "preempted")]
    assert out.velocity.vx_m_s == 0 and step(22).velocity.vx_m_s == 0  # holds until new text


def test_control_refusal_is_a_step_input_and_stopping_ends_every_action(cfg):
    """Why control refuses commands is part of the step record (so a replay rejects what the live process
    rejected); while it is set, the running action is preempted and queued and new sentences are rejected with it.
    A stopping navigator ends what it still holds with a result."""
    core = NavigatorCore(cfg)
    why = "control is damping (operator e-stop); restart controlsd to clear"

    def step(k, texts=(), mode="hold", refusal=""):
        inp = NavigatorStep(
            tick=k,
            start_s=k * 0.05,
            now_ns=k * TICK_NS,
            texts=texts,
            pose_fresh=True,
            control_mode=mode,
            control_boot="boot-a",
            control_refusal=refusal,
        )
        return core.step(inp)

    say = [ActionText(text=t, query_id=i + 1) for i, t in enumerate(["move forward 50 cm", "turn left 30 degrees"])]
    assert step(0, tuple(say)).results == [] and step(1).velocity.vx_m_s > 0
    out = step(2, (ActionText(text="move forward 25 cm", query_id=3),), mode="damp", refusal=why)
    assert [(r.query_id, r.outcome, r.reason) for r in out.results] == [
        (1, "preempted", why),  # the new sentence ends what runs and what is queued, then itself
        (2, "rejected", why),
        (3, "rejected", why),
    ]
    assert out.velocity.vx_m_s == 0 and core.queue.status().rejected_texts == 2
    step(3, (ActionText(text="turn right 15 degrees", query_id=4),))
    assert [(r.query_id, r.outcome) for r in core.stop(4 * TICK_NS)] == [(4, "preempted")]
    assert core.stop(5 * TICK_NS) == []
