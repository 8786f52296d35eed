"""`edge replay RECORDING --process navigatord|vlmd`: feed a recorded run into one process and diff its outputs.

The process's pure step (NavigatorCore / VlmCore) gets the step records it published while it ran (navigatorStep /
vlmStep: exactly what it consumed each tick, with its clock), one tick at a time, in lock-step; its outputs are
compared with what the recording holds, tick by tick: an output of tick k must be one of the messages the process
published between step record k and step record k+1 (both stamped by the process's own monotonic clock). The
configuration is the one the run used (recorded in the file) unless --config / --set say otherwise, so a changed
parameter or a changed step shows up as a readable diff. The VLM's answers are inputs (recorded), not recomputed.

Not compared (and said so): ticks before the recording's first step record (the recorder connected after the
process started; the step then starts from its initial state), the last tick (the recorder may stop mid-tick), and
an output topic's messages before the first one the recording holds.
"""

from __future__ import annotations

import bisect
import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml
from pydantic import BaseModel, ValidationError

from edge.common.config import EdgeConfig, load_config
from edge.msg.messages import TOPICS, NavigatorStep, VlmStep
from edge.msg.recording import Recording, read_recording

REL_TOL = 1e-9  # floats pass through JSON exactly; the tolerance only absorbs libm differences between machines
ABS_TOL = 1e-9


class ReplayError(ValueError):
    """The recording cannot be replayed for this process (no step records, no configuration)."""


@dataclass
class Replayable:
    step_topic: str
    outputs: tuple[str, ...]
    make: Callable[[EdgeConfig, Any], Callable[[Any], dict[str, list[BaseModel]]]]  # cfg, first step → step fn


def _navigator(cfg: EdgeConfig, first: NavigatorStep):
    from edge.navigation.navigatord import NavigatorCore

    core = NavigatorCore(cfg)

    def step(inp: NavigatorStep) -> dict[str, list[BaseModel]]:
        out = core.step(inp)
        return {
            "velocityCommand": [out.velocity],
            "actionResult": list(out.results),
            "navigatorStatus": [] if out.status is None else [out.status],
        }

    return step


def _vlm(cfg: EdgeConfig, first: VlmStep):
    from edge.vlm.vlmd import VlmCore
    from engines.vlm.models import VlmFrame

    core = VlmCore(cfg, first.family, first.remote, lambda i: VlmFrame(i, np.zeros((1, 1, 3), np.uint8)), first.sender)

    def step(inp: VlmStep) -> dict[str, list[BaseModel]]:
        out = core.step(inp)
        return {
            "vlmOutput": [] if out.output is None else [out.output],
            "actionText": [] if out.action is None else [out.action],
        }

    return step


PROCESSES: dict[str, Replayable] = {
    "navigatord": Replayable("navigatorStep", ("velocityCommand", "actionResult", "navigatorStatus"), _navigator),
    "vlmd": Replayable("vlmStep", ("vlmOutput",), _vlm),
}


@dataclass
class ReplayReport:
    process: str
    ticks: int = 0  # steps fed
    compared_ticks: int = 0
    compared: dict[str, int] = field(default_factory=dict)  # topic → messages compared
    diffs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.diffs

    def lines(self, max_diffs: int = 20) -> list[str]:
        counts = ", ".join(f"{t} {n}" for t, n in self.compared.items())
        head = f"replayed {self.ticks} {self.process} ticks, compared {self.compared_ticks} ({counts}): " + (
            "identical" if self.ok else f"{len(self.diffs)} differences"
        )
        out = [head, *(f"note: {n}" for n in self.notes)]
        out += [f"  {d}" for d in self.diffs[:max_diffs]]
        if len(self.diffs) > max_diffs:
            out.append(f"  … and {len(self.diffs) - max_diffs} more (--max-diffs)")
        return out


def recorded_config(rec: Recording, overrides: dict | None = None) -> EdgeConfig:
    """The configuration the recorded run used (metadata edge.config), with --set overrides on top."""
    js = rec.config_json()
    if js is None:
        raise ReplayError(f"{rec.path} holds no configuration (metadata edge.config): pass --config")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="recorded-config-") as f:
        yaml.safe_dump(json.loads(js), f)
        f.flush()
        return load_config(f.name, overrides)


def replay_file(path: str | Path, process: str, cfg: EdgeConfig | None = None, overrides: dict | None = None):
    rec = read_recording(path)
    return replay(rec, process, cfg or recorded_config(rec, overrides))


def replay(rec: Recording, process: str, cfg: EdgeConfig) -> ReplayReport:
    if process not in PROCESSES:
        raise ReplayError(f"cannot replay {process!r}; replayable: {sorted(PROCESSES)}")
    spec = PROCESSES[process]
    records = rec.topics.get(spec.step_topic, [])
    if not records:
        raise ReplayError(
            f"{rec.path} has no {spec.step_topic} records: {process} did not run, or the recording predates them"
        )
    schema = TOPICS[spec.step_topic].schema
    try:
        steps = [schema.model_validate(r["msg"]) for r in records]
    except ValidationError as e:
        err = e.errors()[0]
        raise ReplayError(
            f"{rec.path}: its {spec.step_topic} records do not fit this version's {schema.__name__} "
            f"({'.'.join(map(str, err['loc']))}: {err['msg']}); replay with the version that recorded it"
        ) from None
    report = ReplayReport(process)
    if records[0]["seq"] != 1:
        report.notes.append(
            f"the recording starts at {process} tick {records[0]['seq']} (the recorder connected later): "
            "replayed from there with the step's initial state"
        )
    run = spec.make(cfg, steps[0])
    stamps = [r["mono_ns"] for r in records]
    t0 = stamps[0]
    recorded = {t: rec.topics.get(t, []) for t in spec.outputs}
    rec_stamps = {t: [m["mono_ns"] for m in v] for t, v in recorded.items()}
    # An output topic whose first recorded message is not its first (seq 1) lost messages before the recorder
    # connected: it is compared from the tick after that message's only.
    checked_from = {t: v[0]["mono_ns"] if v and v[0]["seq"] != 1 else -math.inf for t, v in recorded.items()}
    report.compared = {t: 0 for t in spec.outputs}
    replayed_texts: list[dict] = []
    for i, (step, r) in enumerate(zip(steps, records)):
        out = run(step)
        report.ticks += 1
        replayed_texts += [_json(m) for m in out.get("actionText", [])]
        if i + 1 == len(steps):
            break  # the last tick: the recorder may have stopped before its outputs
        if records[i + 1]["seq"] != r["seq"] + 1:  # this tick's outputs end at a step the recording lost
            report.notes.append(
                f"the recording lost {spec.step_topic} {r['seq'] + 1}..{records[i + 1]['seq'] - 1}: "
                f"compared up to tick {r['seq'] - 1} only"
            )
            break
        lo, hi = stamps[i], stamps[i + 1]
        report.compared_ticks += 1
        where = f"tick {r['seq']} (t={(lo - t0) * 1e-9:+.3f} s)"
        for t in spec.outputs:
            if lo <= checked_from[t]:
                continue
            a, b = bisect.bisect_right(rec_stamps[t], lo), bisect.bisect_left(rec_stamps[t], hi)
            got = [m["msg"] for m in recorded[t][a:b]]
            want = [_json(m) for m in out[t]]
            report.compared[t] += max(len(got), len(want))
            report.diffs += _diff_lists(f"{where} {t}", got, want)
    if process == "vlmd":
        report.diffs += _diff_sent_texts(rec, replayed_texts, report)
    return report


def _json(m: BaseModel) -> dict:
    return json.loads(m.model_dump_json())  # the bus encoding, as the recording holds it


def _diff_sent_texts(rec: Recording, replayed: list[dict], report: ReplayReport) -> list[str]:
    """vlmd's actionText goes to the navigator alone (PUSH/PULL): compare with what navigatorStep says it received."""
    nav = rec.topics.get("navigatorStep")
    if not nav:
        report.notes.append("no navigatorStep records: the answers vlmd sent to the navigator are not compared")
        return []
    received = [t for r in nav for t in r["msg"]["texts"] if t["source"] == "vlm"]
    first = received[0]["query_id"] if received else math.inf
    replayed = [t for t in replayed if t["query_id"] >= first]
    n = min(len(received), len(replayed))  # the recording may end before the navigator got the last answer
    report.compared["actionText"] = n
    return _diff_lists("actionText received by navigatord", received[:n], replayed[:n])


def _diff_lists(where: str, recorded: list[dict], replayed: list[dict]) -> list[str]:
    out = []
    if len(recorded) != len(replayed):
        out.append(f"{where}: recorded {len(recorded)} messages, replayed {len(replayed)}")
    for k, (a, b) in enumerate(zip(recorded, replayed)):
        out += [f"{where}[{k}] {d}" for d in _diff_values("", a, b)]
    if len(recorded) != len(replayed):
        extra = recorded[len(replayed) :] or replayed[len(recorded) :]
        side = "recorded only" if len(recorded) > len(replayed) else "replayed only"
        out += [f"{where} {side}: {json.dumps(m)[:160]}" for m in extra]
    return out


def _diff_values(path: str, a: Any, b: Any) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _diff_values(f"{path}.{k}", a.get(k), b.get(k))]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for k, (x, y) in enumerate(zip(a, b)) for d in _diff_values(f"{path}[{k}]", x, y)]
    if (
        isinstance(a, float | int)
        and isinstance(b, float | int)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
    ):
        if math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL):
            return []
    elif a == b:
        return []
    return [f"{path.lstrip('.') or 'value'}: recorded {_short(a)}, replayed {_short(b)}"]


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _short(v: Any) -> str:
    s = json.dumps(v)
    return s if len(s) <= 80 else s[:77] + "..."
