"""Run records from the real processes: the recorder's MCAP opens in Foxglove's terms (every message valid against
its channel's JSON schema, camera frames as foxglove.CompressedImage), nothing recorded is lost when the recorder or
the whole stack is killed with SIGKILL, `edge report` reads the killed recording, and `edge replay` of the navigator
and of the VLM process reproduces their recorded outputs exactly."""

from __future__ import annotations

import base64
import io
import json
import os
import random
import shutil
import signal
import tempfile
import time

import jsonschema
import pytest
import zmq
from mcap.records import Channel, Message, Schema
from mcap.stream_reader import StreamReader
from PIL import Image

from edge.msg.bus import Bus, encode
from edge.msg.messages import TOPICS, Odometry
from edge.msg.recording import read_recording
from edge.system.manager import Manager
from edge.system.process_config import procs_for
from edge.tools.cli import main as edge
from edge.tools.operator_client import Operator, instruct

pytestmark = pytest.mark.integration

ANSWERS = "[The next action is move forward 50 cm., The next action is turn left 30 degrees., The next action is stop.]"


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    """A VLM episode on the simulated Go2 (camera at 5 Hz), then SIGKILL of every process, recorder included.
    Whatever the episode did — on a loaded machine control may still damp at start-up on a late LowState (issue 8
    item 1), and then the VLM is never asked — the recording must hold it all and replay exactly."""
    out = tmp_path_factory.mktemp("records")
    run_dir = tempfile.mkdtemp(prefix="edge-r-", dir="/tmp")
    overrides = [
        f"bus.run_dir={run_dir}",
        f"robot.dds_domain={random.randint(100, 200)}",
        "sim.camera_hz=5",
        "navigator.execution=closed_loop",
        "vlm.model=fixed",
        "vlm.fixed_latency_s=0.3",
        f"vlm.fixed_answers={ANSWERS}",
    ]
    mgr = Manager(procs_for("sim"), None, overrides, extra_args={"recordd": ["--out", str(out / "bus.mcap")]})
    mgr.start()
    bus = Bus(run_dir)
    op, outputs = Operator(bus), bus.sub("vlmOutput")
    answers = []
    try:
        standing = op.wait_mode(("hold", "damp"), 60).msg.mode == "hold"
        instruct(bus, "walk to the door")
        deadline = time.monotonic() + (30 if standing else 3)
        while not (answers and answers[-1].episode_over) and time.monotonic() < deadline:
            assert not mgr.dead(), mgr.dead()
            answers += [r.msg for r in outputs.wait(0.1)]
        time.sleep(2.0)  # the navigator works on the last answer
        for c in mgr.children.values():
            os.kill(c.pid, signal.SIGKILL)
        for c in mgr.children.values():
            c.wait()
    finally:
        outputs.close()
        op.close()
        mgr.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
    return out / "bus.mcap", answers


def test_killed_recording_reads_back_with_nothing_lost(killed_run):
    path, answers = killed_run
    rec = read_recording(path)
    assert not rec.complete  # no footer: the recorder was killed
    topics = ("controlState", "odometry", "simTruth", "navigatorStep", "vlmStep", "cameraFrame")
    for topic in topics + (("vlmOutput",) if answers else ()):
        seqs = [m["seq"] for m in rec.topics[topic]]
        assert seqs and seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"{topic}: holes in {seqs[:5]}…"
    assert [m["msg"]["text"] for m in rec.topics.get("vlmOutput", [])] == [a.text for a in answers]
    assert rec.images >= 3  # camera frames as images, decimated to Topic.record_payload_hz


def test_every_message_matches_its_channel_schema_as_foxglove_reads_it(killed_run):
    schemas, channels, checked = {}, {}, {}
    with open(killed_run[0], "rb") as f:
        for record in _records(f):
            if isinstance(record, Schema):
                assert record.encoding == "jsonschema"
                schemas[record.id] = json.loads(record.data)
            elif isinstance(record, Channel):
                assert record.message_encoding == "json"
                schema = schemas[record.schema_id]
                jsonschema.Draft202012Validator.check_schema(schema)
                channels[record.id] = (record.topic, schema, jsonschema.Draft202012Validator(schema))
            elif isinstance(record, Message):
                topic, schema, validator = channels[record.channel_id]
                msg = json.loads(record.data)
                validator.validate(msg)
                checked[topic] = checked.get(topic, 0) + 1
                if schema["title"] == "foxglove.CompressedImage":
                    img = Image.open(io.BytesIO(base64.b64decode(msg["data"])))
                    assert img.format == "JPEG" and img.size == (320, 240)
    assert checked["cameraFrame/image"] >= 3 and set(checked) >= {"controlState", "vlmStep", "cameraFrame"}


def _records(f):
    try:
        yield from StreamReader(f).records
    except Exception:  # the killed file's cut-off tail
        return


def test_report_from_the_killed_recording(killed_run, tmp_path, capsys):
    path, answers = killed_run
    assert edge(["report", str(path), "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    rec = read_recording(path)
    assert len(report["actions"]) == len(rec.topics.get("actionResult", []))
    assert report["vlm"].get("closed_loop", {}).get("n_queries", 0) == len(answers)
    assert report["loop"]["ticks"] == len(rec.topics["controlState"]) and report["fell"] in (True, False)
    assert report["runs"]["closed_loop"]["recording"]["complete"] is False
    assert "cut short (killed)" in capsys.readouterr().out
    assert (tmp_path / "report.png").stat().st_size > 10_000


@pytest.mark.parametrize("process", ["navigatord", "vlmd"])
def test_replay_reproduces_the_recorded_outputs(killed_run, process, capsys):
    assert edge(["replay", str(killed_run[0]), "--process", process]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "identical" in out
    n = len(killed_run[1])
    if process == "vlmd":
        assert f"vlmOutput {n}" in out and "actionText" in out


def test_recorder_killed_mid_run_loses_nothing_it_received(run_dir):
    """SIGKILL of recordd alone, in the middle of a burst: every message it had taken off the bus is in the file, in
    order, without holes; what it wrote was on disk (readable) before the kill, not in a buffer."""
    path = f"{run_dir}/rec.mcap"
    mgr = Manager(
        procs_for("sim", only=["recordd"]), None, [f"bus.run_dir={run_dir}"], extra_args={"recordd": ["--out", path]}
    )
    bus = Bus(run_dir)
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, 0)  # never drop here: what is lost, the recorder lost
    pub.bind(bus.endpoint("odometry"))  # we stand in for controlsd
    seq = 0

    def send(n):
        nonlocal seq
        for _ in range(n):
            seq += 1
            pub.send(encode(TOPICS["odometry"], seq, time.monotonic_ns(), Odometry(x_m=seq, y_m=0, yaw_rad=0)))

    def recorded() -> list[int]:
        try:
            return [int(m["msg"]["x_m"]) for m in read_recording(path).topics.get("odometry", [])]
        except (OSError, ValueError):
            return []

    mgr.start()
    try:
        deadline = time.monotonic() + 30
        while not recorded() and time.monotonic() < deadline:
            send(1)  # until the recorder is connected and has written something
            time.sleep(0.05)
        send(2000)
        while (not recorded() or recorded()[-1] != seq) and time.monotonic() < deadline:
            time.sleep(0.1)  # the recorder is alive: the file alone must show all it took
        on_disk = recorded()
        assert on_disk and on_disk[-1] == seq, "what the recorder took is not on disk while it runs"
        send(3000)
        mgr.children["recordd"].send_signal(signal.SIGKILL)  # mid-burst
        mgr.children["recordd"].wait()
    finally:
        mgr.stop()
        pub.close(0)
    rec = read_recording(path)
    xs = [int(m["msg"]["x_m"]) for m in rec.topics["odometry"]]
    assert not rec.complete and xs[: len(on_disk)] == on_disk  # nothing that was written is lost by the kill
    assert xs == list(range(xs[0], xs[-1] + 1)) and xs[-1] <= seq  # a prefix of the burst, without holes


def _count(path) -> int:
    try:
        return read_recording(path).count()
    except ValueError:
        return 0
