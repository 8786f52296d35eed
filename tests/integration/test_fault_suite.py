"""The fault suite (issue 8 item 10) on the whole simulated stack, the Go2 walking: kill -9 and SIGSTOP/SIGCONT of each
process, every input topic flooded with 10,000 malformed messages, both cores loaded, bad configs. Each fault must
end in its safe state with the robot upright where the simulator lives, and the recording must hold every message up
to each fault. The measures and the table of docs/results.md come from edge.tools.fault_bench (the same functions,
repeated); the bounds here are generous sanity bounds, not the targets.

One stack for the module, tests in file order (faults that end the stack's processes come last, each restarted
as systemd's Restart= would). The VLM parser's 10,000 fuzzed answers: tests/unit/test_actions.py (hypothesis).
"""

from __future__ import annotations

import pytest

from edge.tools.fault_bench import FaultStack, add_data_lost, bad_configs, flood, inject_recovered, load_during_walk

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

ROWS: list[dict] = []  # every fault's row, for the recording check at the end
# (signal, process, sanity bound on the time to the safe state in ms, None: no time to it)
FAULTS = [
    ("stop", "controlsd", 150),  # the LowCmd watchdog damps (target ≤ 100 ms)
    ("stop", "watchdogd", None),  # control goes on; the resumed watchdog must not damp a healthy robot
    ("stop", "navigatord", 300),  # command stale at control (150 ms): zero velocity; the action dropped at SIGCONT
    ("stop", "simd", 200),  # LowState stale (50 ms): control damps
    ("stop", "recordd", None),
    ("stop", "simcamd", None),  # queued actions go on, the episode resumes
    ("kill", "navigatord", 300),
    ("kill", "watchdogd", None),
    ("kill", "recordd", None),
    ("kill", "simcamd", 15_000),  # no fresh frames: no new action, hold once the queue ends
    ("kill", "controlsd", 150),
    ("kill", "simd", 200),
    ("kill", "vlmd", 15_000),
]


@pytest.fixture(scope="module")
def stack():
    s = FaultStack()
    try:
        s.recover()
        yield s
    finally:
        s.close()


def test_both_cores_loaded_during_a_walk(stack):
    r = load_during_walk(stack)
    print(f"\n{r}")
    assert r["upright"], r
    if "SCHED_FIFO" in r["realtime"]:  # root here: control keeps its deadlines, no damping from load alone
        assert "damp" not in r["modes"], r


def test_every_input_topic_flooded_with_10000_malformed_messages(stack):
    stack.recover()
    r = flood(stack)
    print(f"\n{r}")
    assert not r["dead"] and r["modes"] == ["hold"], r
    assert all(n is not None and n > 0 for n in r["counted"].values()), r["counted"]


@pytest.mark.parametrize(("how", "name", "bound_ms"), FAULTS, ids=[f"{h}-{n}" for h, n, _ in FAULTS])
def test_fault_while_walking_ends_safe(stack, how, name, bound_ms):
    r = inject_recovered(stack, name, how)
    ROWS.append(r)
    print(f"\n{r}")
    assert r["safe"], r
    if bound_ms is not None:
        assert r["time_ms"] is not None and r["time_ms"] < bound_ms, r
    assert r["upright"] is not False, r  # None: the simulator itself was killed
    assert not r.get("walked_after"), r
    if name == "watchdogd" and how == "kill":
        assert r["watchdog_reported"] == "gone" and "no LowCmd watchdog" in r["control_reported"], r


def test_the_recordings_hold_every_message_up_to_each_fault(stack):
    assert ROWS, "run with the fault tests"
    stack.mgr.stop(grace_s=10.0)  # the recorder closes its file (summary, footer)
    add_data_lost(stack, ROWS)
    kills = sum(r["process"] == "recordd" and r["fault"] == "kill -9" for r in ROWS)
    assert stack.cut_files == kills  # the killed recorder's file, read to its last whole record; the others closed
    for r in ROWS:
        assert r["checked"] > 0 and r["lost"] == 0, r


def test_bad_configs_end_in_one_line_and_never_command_the_motors():
    rows = bad_configs()
    for r in rows:
        assert r["rc"] == 2 and r["one_line"] and r["names_it"], r
        assert r["lowcmds_on_domain"] == 0, r
