"""Instruction → simulated head camera → VLM process → parser → navigator → control, through real DDS and MuJoCo."""

from __future__ import annotations

import math
import threading
import time

import pytest

from edge.tools.demo import sim_stack
from edge.tools.operator_client import instruct

pytestmark = pytest.mark.integration

CAMERA = ["sim.camera_hz=5", "navigator.execution=closed_loop"]


def _first(sub, timeout_s=3.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        r = sub.latest()
        if r is not None:
            return r.msg
        time.sleep(0.02)
    raise TimeoutError(f"nothing on {sub.topic.name}")


def _episode(bus, op, mgr, timeout_s=40.0):
    """Wait for the VLM to end the episode and the navigator to finish; returns the vlmOutput messages."""
    outputs, got = bus.sub("vlmOutput"), []
    instruct(bus, "walk to the door", op.cfg)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not (got and got[-1].episode_over):
        assert not mgr.dead(), mgr.dead()
        got += [r.msg for r in outputs.wait(0.1)]
    assert got and got[-1].episode_over, f"episode did not end: {[(o.text, o.error) for o in got]}"
    while time.monotonic() < deadline:
        st = op.status.latest()
        if st.msg.state != "executing" and st.msg.queue_len == 0:
            break
        time.sleep(0.05)
    return got


def test_fixed_answers_drive_the_robot(tmp_path):
    answers = (
        "[The next action is move forward 50 cm., The next action is turn left 30 degrees., The next action is stop.]"
    )
    overrides = [*CAMERA, "vlm.model=fixed", "vlm.fixed_latency_s=0.3", f"vlm.fixed_answers={answers}"]
    with sim_stack(tmp_path, overrides, with_vlm=True) as (mgr, op, bus):
        truth = bus.sub("simTruth")
        a = _first(truth)
        outs = _episode(bus, op, mgr)
        time.sleep(0.5)
        b = truth.latest().msg
    assert [o.text for o in outs] == [
        "The next action is move forward 50 cm.",
        "The next action is turn left 30 degrees.",
        "The next action is stop.",
    ]
    assert outs[-1].episode_over == "STOP"
    assert all(len(o.frame_ids) == 8 for o in outs)  # NaVILA sampling: 7 history + current
    assert outs[0].frame_ids[:7] == (-1,) * 7  # nothing in the history yet: black padding
    assert outs[-1].frame_ids[-1] > outs[0].frame_ids[-1]  # a newer current frame each query
    ahead = (b.x_m - a.x_m) * math.cos(a.yaw_rad) + (b.y_m - a.y_m) * math.sin(a.yaw_rad)
    turned = math.degrees(math.remainder(b.yaw_rad - a.yaw_rad, math.tau))
    assert ahead > 0.35 and turned == pytest.approx(30, abs=8) and not b.fallen


def test_tiny_navila_real_path_garbage_text_holds(tmp_path, tiny):
    overrides = [*CAMERA, "vlm.model=navila", f"vlm.checkpoint={tiny['navila']}", "vlm.max_invalid=2"]
    with sim_stack(tmp_path, overrides, with_vlm=True) as (mgr, op, bus):
        states = bus.sub("controlState", conflate=False)
        truth = bus.sub("simTruth")
        a = _first(truth)
        outs = _episode(bus, op, mgr, timeout_s=60)
        deadline = time.monotonic() + 3  # the navigator takes the last answer a moment later
        while op.status.latest().msg.invalid_texts < len(outs) and time.monotonic() < deadline:
            time.sleep(0.05)
        modes = {r.msg.mode for r in states.drain()}
        b = truth.latest().msg
        status = op.status.latest().msg
    assert len(outs) == 2 and "unparseable" in outs[-1].episode_over
    assert all(o.vision_calls + o.cache_hits == 8 and o.new_tokens > 0 for o in outs)
    assert outs[1].cache_hits >= 6  # per-frame vision features reused
    assert status.invalid_texts == 2 and status.state == "holding"
    assert "walk" not in modes and "damp" not in modes
    assert math.hypot(b.x_m - a.x_m, b.y_m - a.y_m) < 0.1 and not b.fallen


def test_remote_offload_then_link_drop_holds(tmp_path):
    from edge.vlm.remote import VlmServer, generate_keys
    from engines.vlm.models import FixedAnswerVlm

    keys, clients = tmp_path / "keys", tmp_path / "clients"
    generate_keys(keys, "server")
    generate_keys(clients, "robot")
    server = VlmServer(
        "tcp://127.0.0.1:*",
        FixedAnswerVlm(["The next action is turn left 15 degrees."]),
        keys / "server.key_secret",
        clients,
    )
    stop = threading.Event()
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    remote = (
        f"{{endpoint: '{server.endpoint}', client_secret_key: '{clients / 'robot.key_secret'}', "
        f"server_public_key: '{keys / 'server.key'}', timeout_s: 1.0}}"
    )
    overrides = [*CAMERA, "vlm.model=fixed", f"vlm.remote={remote}", "vlm.max_queries=100"]
    try:
        with sim_stack(tmp_path / "run", overrides, with_vlm=True) as (mgr, op, bus):
            outputs = bus.sub("vlmOutput")
            instruct(bus, "turn around slowly", op.cfg)
            got = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and sum(o.text != "" for o in got) < 2:
                got += [r.msg for r in outputs.wait(0.1)]
            assert sum(o.remote and o.text.endswith("15 degrees.") for o in got) >= 2
            stop.set()  # the GPU server goes away
            thread.join(2)
            server.close()
            errors = []
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and len(errors) < 2:
                errors += [r.msg for r in outputs.wait(0.1) if r.msg.error]
            assert len(errors) >= 2 and all(e.error.startswith("link") for e in errors)
            time.sleep(2.0)
            assert op.control.latest().msg.mode == "hold"  # nothing left to do: the robot holds
            assert op.status.latest().msg.state == "idle" and not mgr.dead()
    finally:
        stop.set()


def test_tiny_streamvln_real_path_one_frame_per_call(tmp_path, tiny):
    overrides = [*CAMERA, "vlm.model=streamvln", f"vlm.checkpoint={tiny['streamvln']}", "vlm.max_invalid=2"]
    with sim_stack(tmp_path, overrides, with_vlm=True) as (mgr, op, bus):
        states = bus.sub("controlState", conflate=False)
        outs = _episode(bus, op, mgr, timeout_s=60)
        modes = {r.msg.mode for r in states.drain()}
    assert outs[0].family == "streamvln" and len(outs) == 2 and "unparseable" in outs[-1].episode_over
    assert all(len(o.frame_ids) == 1 and o.new_tokens > 0 for o in outs)  # the current frame only
    assert outs[1].frame_ids[0] > outs[0].frame_ids[0]
    assert "walk" not in modes and "damp" not in modes
