"""The run report (edge/tools/report.py, report_plots.py) from small synthetic recordings written with the project's
own recording writer: a VLN episode with its layout, camera frames and VLM queries; falls and damping in the header;
a missing, cut, empty or failed run is a row of the report, never a lost report; `edge report RECORDING`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from drivers.sim.nav_world import generate_layout
from edge.msg.messages import (
    TOPICS,
    ActionResult,
    CameraFrame,
    CameraIntrinsics,
    ControlState,
    NavigatorStatus,
    Odometry,
    SimTruth,
    VelocityCommand,
    VlmOutput,
    WatchdogState,
)
from edge.msg.recording import RecordWriter, decode_image, image_message, read_recording
from edge.tools.cli import main as edge
from edge.tools.report import RunFailed, build_report
from edge.tools.report_frames import IMAGE_CHANNEL, query_frames

T0 = 10_000_000_000
TICK = 20_000_000  # 50 Hz
W, H = 64, 48


def _frame_pixels(k: int) -> bytes:
    """A frame whose colour tells its number (red channel = 10 k)."""
    px = np.zeros((H, W, 3), np.uint8)
    px[..., 0] = (10 * k) % 256
    px[..., 1] = 80
    return px.tobytes()


def write_run(
    path: Path,
    seconds: float = 6.0,
    fall_at_s: float | None = None,
    damp_at_s: float | None = None,
    start=(1.0, 1.0, 0.0),
    images_every: int = 2,
    fallen_roll_rad: float = 0.0,
) -> Path:
    """A simulated run: stand up, walk forward 0.4 m/s from 2 s to 4 s, turn left from 4 s to 5 s; camera at 5 Hz
    (every `images_every`-th image recorded); two VLM queries (frames 5..8 and 15..18); the robot falls or control
    damps when asked (fallen: base z 0.1 m, roll fallen_roll_rad)."""
    intr = CameraIntrinsics(width=W, height=H, fx=50.0, fy=50.0, cx=W / 2, cy=H / 2)
    with path.open("wb") as f:
        w = RecordWriter(f, TOPICS.values(), offset_ns=1_700_000_000 * 10**9)
        x, y, yaw = start
        seq = 0
        for k in range(int(seconds * 50)):
            now, t = T0 + k * TICK, k * 0.02
            seq += 1
            vx = 0.4 if 2.0 <= t < 4.0 else 0.0
            wz = 0.5 if 4.0 <= t < 5.0 else 0.0
            mode = "passive" if t < 0.3 else "stand_up" if t < 1.0 else ("walk" if vx or wz else "hold")
            reason = "ok"
            if damp_at_s is not None and t >= damp_at_s:
                mode, reason, vx, wz = "damp", "e-stop requested by operator", 0.0, 0.0
            x, y, yaw = x + vx * math.cos(yaw) * 0.02, y + vx * math.sin(yaw) * 0.02, yaw + wz * 0.02
            fallen = fall_at_s is not None and t >= fall_at_s
            cs = ControlState(
                mode=mode,
                reason=reason,
                tick=k,
                missed_ticks=0,
                period_ms=20.0 + 0.1 * (k % 3),
                lateness_ms=0.0,
                work_ms=1.0,
                vx_m_s=vx,
                vy_m_s=0.0,
                wz_rad_s=wz,
            )
            w.add("controlState", seq, now, now + 1000, cs)
            w.add("velocityCommand", seq, now + 100, now + 1100, VelocityCommand(vx_m_s=vx, wz_rad_s=wz))
            w.add(
                "odometry",
                seq,
                now + 200,
                now + 1200,
                Odometry(x_m=x - start[0], y_m=y - start[1], yaw_rad=yaw, vx_m_s=vx, wz_rad_s=wz),
            )
            truth = SimTruth(
                sim_time_s=t,
                x_m=x,
                y_m=y,
                z_m=0.1 if fallen else 0.3,
                roll_rad=fallen_roll_rad if fallen else 0.0,
                pitch_rad=0.0,
                yaw_rad=yaw,
                fallen=fallen,
            )
            w.add("simTruth", seq, now + 300, now + 1300, truth)
            if k % 5 == 0:
                w.add("watchdogState", seq, now + 400, now + 1400, WatchdogState(state="watching", reason="live"))
                w.add(
                    "navigatorStatus",
                    seq,
                    now + 500,
                    now + 1500,
                    NavigatorStatus(state="executing" if vx or wz else "idle", execution="closed_loop", queue_len=0),
                )
            if k % 10 == 0:  # camera 5 Hz: frame id = k // 10
                fid = k // 10
                hdr = CameraFrame(frame_id=fid, sensor_time_ns=now, width=W, height=H, encoding="rgb8", intrinsics=intr)
                w.add("cameraFrame", fid + 1, now + 600, now + 1600, hdr)
                if fid % images_every == 0:
                    w.add_image(
                        "cameraFrame",
                        now + 600,
                        now + 1700,
                        image_message(hdr, _frame_pixels(fid), now + 600 + w.offset_ns, 90),
                    )
        for i, (start_s, end_s, text, kind, amount) in enumerate(
            [
                (2.0, 4.0, "The next action is move forward 75 cm.", "forward", 0.75),
                (4.0, 5.0, "The next action is turn left 30 degrees.", "turn", math.radians(30)),
            ]
        ):
            r = ActionResult(
                action_id=i,
                text=text,
                kind=kind,
                execution="closed_loop",
                commanded=amount,
                estimated=amount * 0.95,
                start_mono_ns=T0 + int(start_s * 1e9),
                end_mono_ns=T0 + int(end_s * 1e9),
                outcome="completed",
            )
            w.add("actionResult", i + 1, r.end_mono_ns, r.end_mono_ns + 1000, r)
        for q, (frames, at_s, text) in enumerate(
            [
                ((5, 6, 7, 8), 1.8, "The next action is move forward 75 cm."),
                ((15, 16, 17, 18), 3.8, "The next action is turn left 30 degrees."),
            ]
        ):
            launched = T0 + int(at_s * 1e9)
            out = VlmOutput(
                query_id=q + 1,
                family="navila",
                text=text,
                frame_ids=(-1, -1, -1, -1, *frames),
                trigger="idle",
                launched_mono_ns=launched,
                vision_ms=50,
                prefill_ms=80,
                decode_ms=60,
                total_ms=200,
                vision_calls=1,
                cache_hits=3,
                new_tokens=9,
            )
            w.add("vlmOutput", q + 1, launched + 200_000_000, launched + 201_000_000, out)
        w.finish()
    return path


def write_episode(run_dir: Path, seed: int = 3, success: bool = True) -> dict:
    layout = generate_layout(seed)
    lm = layout.landmarks[0]
    ep = {
        "layout_seed": seed,
        "instruction": f"walk to the {lm.name}",
        "start": [1.0, 1.0, 0.0],
        "goal": {"colour": lm.colour, "shape": lm.shape, "x": lm.x, "y": lm.y, "radius_m": lm.radius},
        "success_radius_m": 1.0,
        "success": success,
        "stop_reason": "STOP",
    }
    (run_dir / "episode.json").write_text(json.dumps(ep))
    return ep


def test_a_vln_episode_row(tmp_path):
    run = tmp_path / "vln"
    run.mkdir()
    rec = write_run(run / "bus.mcap")
    ep = write_episode(run)
    report = build_report({"vln": rec}, tmp_path / "out")
    assert report["outcomes"]["vln"]["status"] == "PASS" and report["failed"] == {}
    got = report["episodes"]["vln"]
    assert got["success"] is True and got["instruction"] == ep["instruction"]
    assert got["final_distance_m"] == pytest.approx(math.hypot(ep["goal"]["x"] - 1.77, ep["goal"]["y"] - 1.0), abs=0.05)
    assert [a["kind"] for a in report["actions"]] == ["forward", "turn"]
    assert report["vlm"]["vln"]["n_queries"] == 2
    assert (tmp_path / "out" / "report.png").stat().st_size > 50_000
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["runs"]["vln"]["episode"]["layout_seed"] == 3


def test_query_frames_are_the_sampled_ones_where_recorded(tmp_path):
    """Images recorded for even frame ids only: a query's even frames are exact, its odd ones the nearest image."""
    rec = read_recording(write_run(tmp_path / "bus.mcap", images_every=2), images=True)
    images = rec.image_msgs[IMAGE_CHANNEL]
    headers = {r["msg"]["frame_id"]: r["mono_ns"] for r in rec.topics["cameraFrame"]}
    picks = query_frames(rec.topics["vlmOutput"][0], headers, images)
    fids = {i: round(decode_image(images[i]["image"])[0, 0, 0] / 10) for i, _ in picks}  # red = 10 × frame id
    exact = sorted(fids[i] for i, e in picks if e)
    assert exact == [6, 8]  # frames 6 and 8 were recorded; 5 and 7 are stood in for by a neighbour, once each
    assert all(fids[i] in (4, 6, 8) for i, e in picks if not e) and len(picks) == len(set(fids.values()))
    # No frame ids at all (a StreamVLN step, say): the image nearest the query's launch, marked as not exact.
    q = rec.topics["vlmOutput"][1] | {"msg": rec.topics["vlmOutput"][1]["msg"] | {"frame_ids": [-1]}}
    ((i, e),) = query_frames(q, headers, images)
    assert not e and abs(images[i]["mono_ns"] - q["msg"]["launched_mono_ns"]) <= 200_000_000


def test_fell_and_damped_headers_say_what_and_when(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    fell = write_run(tmp_path / "a" / "bus.mcap", fall_at_s=4.5)
    damped = write_run(tmp_path / "b" / "bus.mcap", damp_at_s=3.0)
    report = build_report({"fell": fell, "damped": damped}, tmp_path / "out")
    o = report["outcomes"]
    assert o["fell"]["status"] == "FELL" and o["fell"]["fall_s"] == pytest.approx(4.5, abs=0.03)
    assert "fell at 4.5 s (base z 0.10 m, control in walk)" in o["fell"]["reason"]
    assert o["damped"]["status"] == "DAMPED"
    assert o["damped"]["reason"] == "control damped at 3.0 s: e-stop requested by operator"


def test_a_robot_damped_before_it_stood_is_damped_not_fallen(tmp_path):
    """Control damps during stand-up (a LowState gap under load): the robot lies, as it started (simulator truth
    'fallen' from the first message), and never reached hold. That is the damped safe state, not a fall."""
    rec = write_run(tmp_path / "bus.mcap", damp_at_s=0.5, fall_at_s=0.0)
    report = build_report({"standup": rec}, tmp_path / "out")
    o = report["outcomes"]["standup"]
    assert o["status"] == "DAMPED" and o["reason"].startswith("control damped at 0.5 s"), o
    assert report["fell"] is False and report["failed"] == {}


def test_sinking_under_damping_is_no_fall_tipping_over_is(tmp_path):
    """Control damps mid-walk and the robot sinks onto its belly (truth 'fallen', level): DAMPED, the safe state. If
    it tips over after the damp (roll 1.2 rad) it is a fall."""
    for name, roll in (("sank", 0.1), ("tipped", 1.2)):
        (tmp_path / name).mkdir()
        write_run(tmp_path / name / "bus.mcap", damp_at_s=3.0, fall_at_s=3.6, fallen_roll_rad=roll)
    report = build_report({n: tmp_path / n / "bus.mcap" for n in ("sank", "tipped")}, tmp_path / "out")
    o = report["outcomes"]
    assert o["sank"]["status"] == "DAMPED" and report["runs"]["sank"]["fell"] is False, o["sank"]
    assert o["tipped"]["status"] == "FELL" and o["tipped"]["fall_s"] == pytest.approx(3.6, abs=0.03), o["tipped"]
    assert "fell at 3.6 s (base z 0.10 m, control in damp)" in o["tipped"]["reason"]


def test_a_damp_during_the_stacks_shutdown_is_not_the_runs(tmp_path):
    """The demo writes when it began stopping the stack (stack.json): a damp after that (controlsd on the LowState
    of the already stopped simulator) is noted, not the run's status; a damp before it still is."""
    import json

    from edge.tools.report import STACK_FILE

    for name, damp_s, stop_s in (("shutdown", 5.7, 5.5), ("run", 3.0, 5.5)):
        (tmp_path / name).mkdir()
        write_run(tmp_path / name / "bus.mcap", damp_at_s=damp_s)
        (tmp_path / name / STACK_FILE).write_text(json.dumps({"stop_mono_ns": T0 + int(stop_s * 1e9)}))
    o = build_report({n: tmp_path / n / "bus.mcap" for n in ("shutdown", "run")}, tmp_path / "out")["outcomes"]
    assert o["shutdown"]["status"] == "PASS"
    assert "control damped during the stack's shutdown (e-stop requested by operator)" in o["shutdown"]["reason"]
    assert o["run"]["status"] == "DAMPED" and "shutdown" not in o["run"]["reason"]


def test_a_bad_run_is_a_row_never_a_lost_report(tmp_path):
    good = write_run(tmp_path / "good.mcap")
    data = good.read_bytes()
    cut = tmp_path / "cut" / "bus.mcap"
    cut.parent.mkdir()
    cut.write_bytes(data[: len(data) // 3])  # recorder killed: read to its last whole record
    header_only = tmp_path / "header_only.mcap"
    header_only.write_bytes(data[:300])  # killed before any message
    empty = tmp_path / "empty.mcap"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.mcap"
    garbage.write_bytes(b"not an mcap file at all")
    runs = {
        "good": good,
        "cut": cut,
        "header_only": header_only,
        "empty": empty,
        "garbage": garbage,
        "missing": tmp_path / "missing.mcap",
        "no_start": RunFailed("stack did not start: simd: failed (no MuJoCo)", tmp_path / "never" / "bus.mcap"),
        "died": RunFailed("a process died: navigatord", cut),
    }
    report = build_report(runs, tmp_path / "out")
    status = {ex: o["status"] for ex, o in report["outcomes"].items()}
    assert status == {
        "good": "PASS",
        "cut": "PASS",
        "header_only": "FAILED",
        "empty": "FAILED",
        "garbage": "FAILED",
        "missing": "FAILED",
        "no_start": "FAILED",
        "died": "FAILED",
    }
    assert "recording cut short" in report["outcomes"]["cut"]["reason"]
    assert report["failed"]["missing"] == f"recording missing: {tmp_path / 'missing.mcap'}"
    assert report["failed"]["no_start"].startswith("stack did not start: simd: failed (no MuJoCo); recording missing")
    assert "recording empty" in report["failed"]["header_only"]
    assert "not a readable edge MCAP recording" in report["failed"]["empty"]
    assert report["failed"]["died"].startswith("a process died: navigatord")
    assert report["runs"]["died"]["loop"]["ticks"] > 0  # what it recorded before it died is in its row
    assert (tmp_path / "out" / "report.png").stat().st_size > 50_000
    assert report["accuracy"] and report["fell"] is False  # from the runs that ran


def test_edge_report_of_any_recording(tmp_path, capsys):
    run = tmp_path / "vln"
    run.mkdir()
    rec = write_run(run / "bus.mcap")
    write_episode(run, success=False)
    assert edge(["report", str(rec), "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "closed_loop      PASS" in out and "VLN episode: FAILURE" in out
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["runs"]["closed_loop"]["episode"]["success"] is False
    assert (tmp_path / "r" / "report.png").exists()
    assert edge(["report", str(tmp_path / "nothing.mcap")]) == 2
    assert "recording missing" in capsys.readouterr().err


def test_a_demo_run_that_fails_is_a_row_and_the_others_run(tmp_path, monkeypatch):
    """`make demo`: a run that raises (here the navigator stopped reporting) is a FAILED row with the error;
    the runs after it still run and the report is written (the stacks are stood in for by synthetic recordings)."""
    import edge.tools.demo as demo
    from edge.tools.errors import OperatorError

    def run_one(mode, stamp, script, fixed, config):
        if mode == "open_loop":
            raise OperatorError("navigatord stopped reporting (2.1 s since its last status)")
        (stamp / mode).mkdir(parents=True)
        return write_run(stamp / mode / demo.RECORDING)

    monkeypatch.setattr(demo, "_run_one", run_one)
    report = demo.run_demo(tmp_path, ["open_loop", "closed_loop"])
    assert report["failed"] == {
        "open_loop": "OperatorError: navigatord stopped reporting (2.1 s since its last status); recording missing: "
        f"{sorted(tmp_path.glob('2*'))[0] / 'open_loop' / 'bus.mcap'}"
    }
    assert report["outcomes"]["closed_loop"]["status"] == "PASS"
    assert (tmp_path / "latest" / "report.png").stat().st_size > 50_000
    with pytest.raises(ValueError, match="unknown demo run"):
        demo.run_demo(tmp_path, ["closed_loop", "no_such_run"])
