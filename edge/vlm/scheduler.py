"""When to ask the VLM, with which frames (no I/O; the VLM process drives it).

History: NaVILA appends the current frame per 0.5 s of motion (Isaac) or per executed 25 cm / 15° primitive
(Habitat, docs/vln-models.md §1.4). `history: primitive` follows the Habitat rule on the robot: each queried frame
becomes an observation after its query, and a completed action of k primitives adds the k − 1 frames seen when
its intermediate primitives ended (times interpolated over the action's span: `primitive_times`); its last
primitive's pose is the next query's current frame. `step` adds one frame per completed action.
Queries: the first when the robot stands ready; afterwards either when the robot is idle again (stop-and-go, as
the references), or early — when the running action's remaining time drops under the measured VLM latency — so
the answer is queued by the time the action ends (overlap). An answer with STOP ends the episode; too many
unparseable answers in a row end it too (the robot holds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edge.common.config import VlmConfig
from edge.msg.messages import ActionResult, NavigatorStatus
from edge.navigation.parse import FORWARD_STEP_M, TURN_STEP_DEG, ActionParser, Invalid, Stop

READY_MODES = ("hold", "walk")
# NaVILA's Habitat primitives: forward 25 cm, turn 15° (docs/vln-models.md §1.4)
PRIMITIVE_M, PRIMITIVE_RAD = FORWARD_STEP_M, math.radians(TURN_STEP_DEG)


def primitive_times(result: ActionResult) -> list[int]:
    """Monotonic times (ns) at which a forward / turn action's intermediate 25 cm / 15° primitives ended, assuming
    an even pace over [start, end]: k = round(|estimated| / primitive) primitives give k − 1 times (none for k ≤ 1,
    for stop, invalid or rejected actions)."""
    if result.kind not in ("forward", "turn") or result.outcome not in ("completed", "timeout", "blocked", "preempted"):
        return []
    step = PRIMITIVE_M if result.kind == "forward" else PRIMITIVE_RAD
    # never more primitives than commanded: a glitched estimate must not flood the history
    k = min(round(abs(result.estimated) / step), round(abs(result.commanded) / step))
    span = result.end_mono_ns - result.start_mono_ns
    return [result.start_mono_ns + span * i // k for i in range(1, k)]


@dataclass(frozen=True)
class Launch:
    query_id: int
    trigger: str  # "idle" | "early"


@dataclass
class Episode:
    instruction: str
    active: bool = True
    queries: int = 0
    invalid_streak: int = 0
    answered_qid: int = -1  # newest answer handed to the navigator
    seen_result_ns: int = 0  # newest navigator result for answered_qid
    end_reason: str = ""
    first_qid: int = 0  # answers to queries before this one belong to an earlier instruction


class VlmScheduler:
    def __init__(self, cfg: VlmConfig, grammar: str, parser: ActionParser, sender: str = ""):
        self.cfg = cfg
        self.sender = sender  # our ActionText.sender: the navigator's current action is ours only if it matches
        self.grammar = grammar
        self.parser = parser  # the navigator's parser and configuration: answers counted as executed
        self.episode: Episode | None = None
        self.in_flight: int | None = None
        self.next_qid = 1
        self.latency_s = 1.0  # running estimate of one query, updated from answers
        self.last_history_s = float("-inf")

    # ---- episode ------------------------------------------------------------------------------------------------
    def start(self, instruction: str) -> None:
        self.episode = Episode(instruction, first_qid=self.next_qid)
        self.last_history_s = float("-inf")

    @property
    def active(self) -> bool:
        return self.episode is not None and self.episode.active

    # ---- history ------------------------------------------------------------------------------------------------
    def want_history_frame(self, now_s: float, control_mode: str | None, results: list[ActionResult]) -> bool:
        """Whether to append the current frame to the episode's history now."""
        if not self.active:
            return False
        if self.cfg.history == "primitive":
            return False  # chosen by the VLM process from its recent frames (primitive_times) and at each query
        if self.cfg.history == "step":
            return any(r.kind in ("forward", "turn") and r.outcome == "completed" for r in results)
        if control_mode == "walk" and now_s - self.last_history_s >= self.cfg.history_period_s:
            self.last_history_s = now_s
            return True
        return False

    # ---- queries ------------------------------------------------------------------------------------------------
    def on_results(self, results: list[ActionResult], now_ns: int) -> None:
        ep = self.episode
        if ep is not None and any(r.sender == self.sender and r.query_id == ep.answered_qid for r in results):
            ep.seen_result_ns = now_ns

    def decide(self, control_mode: str | None, status: NavigatorStatus | None, status_ns: int) -> Launch | None:
        ep = self.episode
        if (
            ep is None
            or not ep.active
            or self.in_flight is not None
            or status is None
            or control_mode not in READY_MODES
        ):
            return None
        if ep.queries >= self.cfg.max_queries:
            ep.active, ep.end_reason = False, f"{ep.queries} queries without STOP"
            return None
        first = ep.answered_qid < 0
        idle = status.state in ("idle", "holding") and status.queue_len == 0
        # the navigator has taken our last answer and finished with it (a result came, then it reported idle)
        consumed = first or (ep.seen_result_ns > 0 and status_ns > ep.seen_result_ns)
        trigger = None
        if idle and consumed:
            trigger = "idle"
        elif (
            self.cfg.overlap
            and status.state == "executing"
            and status.queue_len == 0
            and status.current_sender == self.sender
            and status.current_query_id == ep.answered_qid
            and status.remaining_s <= self.latency_s + self.cfg.overlap_margin_s
        ):
            trigger = "early"
        if trigger is None:
            return None
        qid = self.next_qid
        self.next_qid += 1
        self.in_flight = qid
        ep.queries += 1
        return Launch(qid, trigger)

    def on_answer(self, query_id: int, text: str | None, latency_s: float) -> bool:
        """Record an answer (text None: the query failed). Returns True if the text should go to the navigator."""
        if self.in_flight == query_id:
            self.in_flight = None
        ep = self.episode
        if text is None or ep is None or not ep.active or query_id < ep.first_qid:
            return False
        self.latency_s = 0.7 * self.latency_s + 0.3 * latency_s
        ep.answered_qid, ep.seen_result_ns = query_id, 0
        parsed = self.parser.parse(text, self.grammar, source="vlm")
        if isinstance(parsed, Invalid):
            ep.invalid_streak += 1
            if ep.invalid_streak >= self.cfg.max_invalid:
                ep.active, ep.end_reason = False, f"{ep.invalid_streak} unparseable answers in a row"
        else:
            ep.invalid_streak = 0
            if any(isinstance(a, Stop) for a in parsed.actions):
                ep.active, ep.end_reason = False, "STOP"
        return True
