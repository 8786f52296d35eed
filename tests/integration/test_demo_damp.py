"""`make demo`'s runs when control damps (edge/tools/demo.py): the run ends there, as the robot would, and is a DAMPED
row with control's reason, not a failed run. On the 2-core machine under load the cause is a LowState gap or a late
control tick (docs/results.md, "Fresh clones", 2026-12-02); here an operator e-stop, sent while the robot walks, makes
the same latched damp on demand. Real stack: MuJoCo ⇄ DDS ⇄ controlsd ⇄ ZeroMQ ⇄ navigatord."""

from __future__ import annotations

import logging
import threading

from edge.msg.messages import Estop
from edge.tools.demo import LOAD_SCRIPT, RECORDING, say_all, sim_stack
from edge.tools.operator_client import send_once
from edge.tools.report import build_report


def test_a_damp_mid_walk_ends_the_run_as_a_damped_row(tmp_path, caplog):
    overrides = ["navigator.execution=closed_loop", "sim.camera_hz=0"]
    with sim_stack(tmp_path, overrides, with_vlm=False) as (mgr, op, bus):
        walking = threading.Event()

        def estop_once_walking() -> None:  # its own socket, in its own thread
            sub = bus.sub("controlState", conflate=False)
            try:
                while not walking.is_set():
                    for r in sub.wait(0.05):
                        if r.msg.mode == "walk":
                            walking.set()
            finally:
                sub.close()
            send_once(bus, "estop", Estop(reason="test: damp mid-walk"))

        t = threading.Thread(target=estop_once_walking, daemon=True)
        t.start()
        with caplog.at_level(logging.WARNING, logger="demo"):
            say_all(op, LOAD_SCRIPT, "damp_test", mgr)  # returns once control damps: no exception
        t.join(5.0)
    assert walking.is_set()
    assert "damp_test: control damped (e-stop" in caplog.text and "the run ends here" in caplog.text
    report = build_report({"damp_test": tmp_path / RECORDING}, tmp_path / "out")
    outcome = report["outcomes"]["damp_test"]
    assert outcome["status"] == "DAMPED", outcome
    assert "control damped at" in outcome["reason"] and "e-stop" in outcome["reason"]
    assert report["failed"] == {} and report["fell"] is False
