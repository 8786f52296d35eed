"""`edge` without a running stack: mistakes end in one line with the right exit code, and a missing stack is named
at once (the stack-level behaviour is in tests/integration/test_stack_sim.py)."""

from __future__ import annotations

import time

import pytest

from edge.system.process_config import procs_for
from edge.tools.cli import main


def edge(capsys, run_dir, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["--set", f"bus.run_dir={run_dir}", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize(
    "argv, code, says",
    [
        (["say", "move backwards 50 cm"], 1, "invalid, not sent: not a forward move, a turn or a stop"),
        (["say", "The next action is move forward -75 cm."], 1, "cannot read the amount '-75 cm'"),
        (
            ["--set", "navigator.executon=open_loop", "say", "stop"],
            2,
            "navigator.executon: unknown field (known in navigator:",
        ),
        (
            ["--set", "vlm.model=gpt", "status", "--once"],
            2,
            "--set vlm.model='gpt': vlm.model = 'gpt': Input should be",
        ),
        (["--config", "/nope/go2.yaml", "estop"], 2, "config file not found: /nope/go2.yaml"),
        (["--set", "navigator", "status"], 2, "--set expects KEY=VALUE"),
        (["echo", "estop"], 2, "delivered to controlsd only"),
        (["hz", "nope"], 2, "unknown topic 'nope'"),
        (["script", "/nope/script.txt"], 2, "cannot read script /nope/script.txt"),
    ],
)
def test_mistakes_end_in_one_line(capsys, run_dir, argv, code, says):
    rc, out, err = edge(capsys, run_dir, *argv)
    assert rc == code and says in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err + out


def test_no_stack_is_named_at_once(capsys, run_dir):
    t0 = time.monotonic()
    rc, out, err = edge(capsys, run_dir, "say", "move forward 50 cm", "--wait")
    assert rc == 3 and f"no stack running on bus {run_dir}" in err and "start it with `edge run`" in err, err
    assert time.monotonic() - t0 < 20  # not the 30 s readiness bound: nothing of the stack exists
    rc, out, err = edge(capsys, run_dir, "status", "--once", "--window", "0.3")
    n = len(procs_for("sim"))
    assert rc == 3 and out.count("not running ") == n, out  # every process of the sim profile (and "VLM not running")
    rc, out, err = edge(capsys, run_dir, "echo", "controlState", "--timeout", "0.3")
    assert rc == 1 and "no controlState message within 0.3 s" in err
