"""The fast `edge estop` (edge.tools.estop, no pydantic on its path) sends exactly the bus's own Estop message."""

from __future__ import annotations

import subprocess
import sys

import pytest
import zmq

from edge.msg.bus import decode
from edge.msg.messages import TOPICS, Estop
from edge.tools.estop import estop_frame, send_estop


def test_the_fast_frame_is_the_bus_estop_message():
    r = decode(TOPICS["estop"], estop_frame("hand on the button"))
    assert r.msg == Estop(reason="hand on the button") and r.seq == 1


def test_send_estop_reaches_the_consumer_named_by_the_config(tmp_path):
    pull = zmq.Context.instance().socket(zmq.PULL)
    pull.bind(f"ipc://{tmp_path}/estop")
    try:
        send_estop("configs/sim.yaml", {"bus.run_dir": str(tmp_path)}, "test")
        assert pull.poll(2000)
        assert decode(TOPICS["estop"], pull.recv()).msg.reason == "test"
    finally:
        pull.close(0)
    with pytest.raises(TimeoutError, match="nobody is listening on estop"):
        send_estop("configs/sim.yaml", {"bus.run_dir": str(tmp_path / "nobody")}, timeout_s=0.2)


def test_edge_estop_imports_no_pydantic():
    code = "import sys, edge.tools.cli, edge.tools.estop; print('pydantic' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
