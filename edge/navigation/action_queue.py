"""Navigator core (no I/O): action sentences → a queue of typed actions → velocity setpoints, one action at a time.

Every sentence and every action ends in exactly one ActionResult — nothing is dropped silently:
  invalid    the text is not clearly a forward move, a turn or a stop: the robot stops and holds, and everything
             queued is preempted;
  rejected   never started: control is not accepting commands (damping, e-stopped, lying passive, gone; the reason
             is control's), or the queue is full (NavigatorConfig.max_queue);
  preempted  superseded (invalid text, STOP) or stopped (control stopped accepting, odometry went stale);
  completed / timeout / blocked (closed loop: no progress within the executor's stall window, reason says so).
Actions start only while control is standing (hold or walk). Closed-loop execution needs fresh odometry and
aborts the current action when it goes stale.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from edge.common.config import EdgeConfig, NavigatorConfig
from edge.msg.bus import Received
from edge.msg.messages import ActionResult, ActionText, ControlMode, NavigatorStatus, Source
from edge.navigation.executor import ActionExecutor, ExecutorParams, Pose2D
from edge.navigation.parse import ActionParser, Forward, Invalid, Stop, Turn

ZERO = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Pending:
    action_id: int
    query_id: int
    text: str
    action: Forward | Turn | Stop
    source: Source = "operator"
    sender: str = ""


def control_refusal(cfg: EdgeConfig, ctrl: Received | None, now_ns: int | None = None) -> str:
    """Why control does not accept commands now, from its newest controlState ("" when it does, or is about to:
    standing up, or lying passive in a profile that stands up by itself). The navigator rejects sentences with this
    reason; the operator tools refuse to send with it."""
    if ctrl is None:
        return "no controlState received (is controlsd running?)"
    age = ctrl.age_s(now_ns)
    if age > cfg.navigator.control_lost_s:
        return f"no controlState for {age:.1f} s (controlsd stopped?)"
    m = ctrl.msg
    if m.mode == "damp":
        return f"control is damping ({m.reason}); restart controlsd to clear"
    if m.mode == "passive" and not cfg.control.auto_stand:
        return f"control is passive ({m.reason}); stand the robot up first: `edge stand`"
    return ""


def kind_of(action) -> str:
    return {Forward: "forward", Turn: "turn", Stop: "stop"}[type(action)]


def amount_of(action) -> float:
    return action.distance_m if isinstance(action, Forward) else action.angle_rad if isinstance(action, Turn) else 0.0


class ActionQueue:
    def __init__(self, cfg: NavigatorConfig, parser: ActionParser, params: ExecutorParams | None = None):
        self.cfg = cfg
        self.parser = parser
        self.executor = ActionExecutor(
            cfg.execution,
            params or ExecutorParams(forward_speed_m_s=cfg.forward_speed_m_s, turn_rate_rad_s=cfg.turn_rate_rad_s),
        )
        self.queue: deque[Pending] = deque()
        self.current: Pending | None = None
        self.started_ns = 0
        self.next_id = 1
        self.done = 0
        self.invalid = 0
        self.rejected = 0
        self.holding = False
        self.idle_since_ns: int | None = None  # robot idle after a VLM action, waiting for the next answer
        self.vlm_wait_s = 0.0
        self.vlm_waits = 0

    def _result(
        self,
        p: Pending | None,
        now_ns: int,
        outcome: str,
        reason: str = "",
        estimated: float = 0.0,
        msg: ActionText | None = None,
        started: bool = True,
        kind: str = "invalid",
        commanded: float = 0.0,
    ) -> ActionResult:
        """A result for a pending action p, or (p None) for a whole sentence msg that never became actions."""
        if p is None:
            if msg is None:
                raise ValueError("a result needs the action or the sentence")
            return ActionResult(
                action_id=-1,
                query_id=msg.query_id,
                sender=msg.sender,
                source=msg.source,
                text=msg.text,
                kind=kind,
                execution=self.cfg.execution,
                commanded=commanded,
                estimated=0.0,
                start_mono_ns=now_ns,
                end_mono_ns=now_ns,
                outcome=outcome,
                reason=reason,
            )
        return ActionResult(
            action_id=p.action_id,
            query_id=p.query_id,
            sender=p.sender,
            source=p.source,
            text=p.text,
            kind=kind_of(p.action),
            execution=self.cfg.execution,
            commanded=amount_of(p.action),
            estimated=estimated,
            start_mono_ns=self.started_ns if started else now_ns,
            end_mono_ns=now_ns,
            outcome=outcome,
            reason=reason,
        )

    def _drop_all(self, now_ns: int, reason: str, queued: str = "preempted") -> list[ActionResult]:
        """End the current action (preempted) and every queued one (`queued`: preempted or rejected), each with a
        result."""
        out = []
        if self.current is not None:
            out.append(self._result(self.current, now_ns, "preempted", reason, self.executor.estimate_so_far()))
            self.current = None
        out += [self._result(p, now_ns, queued, reason, started=False) for p in self.queue]
        if queued == "rejected":
            self.rejected += len(self.queue)
        self.queue.clear()
        return out

    def hold_all(self, now_ns: int, reason: str) -> list[ActionResult]:
        """Drop the current action and the queue (each gets a `preempted` result) and hold until new text."""
        self.holding = True
        return self._drop_all(now_ns, reason)

    def submit(self, msg: ActionText, now_ns: int, refuse: str = "") -> list[ActionResult]:
        """One sentence in; the results it causes now (none when it is queued). refuse: why control is not accepting
        commands ("" when it is): the sentence is rejected with that reason, and so is anything still queued."""
        parsed = self.parser.parse(msg.text, msg.grammar, msg.source)
        if isinstance(parsed, Invalid):
            self.invalid += 1
            self.holding = True
            out = self._drop_all(now_ns, "invalid text")
            out.append(self._result(None, now_ns, "invalid", parsed.reason, msg=msg))
            return out
        one = parsed.actions[0] if len(parsed.actions) == 1 else None  # a whole StreamVLN sequence: kind invalid
        kind, amount = ("invalid", 0.0) if one is None else (kind_of(one), amount_of(one))
        if refuse:
            self.rejected += 1
            dropped = self._drop_all(now_ns, refuse, "rejected")
            return [*dropped, self._result(None, now_ns, "rejected", refuse, msg=msg, kind=kind, commanded=amount)]
        if len(self.queue) + len(parsed.actions) > self.cfg.max_queue:
            self.rejected += 1
            reason = f"queue full ({len(self.queue)} actions queued, navigator.max_queue {self.cfg.max_queue})"
            return [self._result(None, now_ns, "rejected", reason, msg=msg, kind=kind, commanded=amount)]
        self.holding = False
        if msg.source != "vlm":
            self.idle_since_ns = None
        for a in parsed.actions:
            self.queue.append(Pending(self.next_id, msg.query_id, msg.text, a, msg.source, msg.sender))
            self.next_id += 1
        return []

    def step(
        self, now_s: float, now_ns: int, pose: Pose2D | None, control: ControlMode | None, refuse: str = ""
    ) -> tuple[tuple[float, float, float], list[ActionResult]]:
        """pose: the newest fresh odometry (None if stale); control: the control loop's current mode (None if
        stale); refuse: why control is not accepting commands ("" when it is): the current action is preempted and
        everything queued rejected, with that reason."""
        if (refuse or control == "damp") and (self.current or self.queue):
            return ZERO, self._drop_all(now_ns, refuse or "control is damping", "rejected")
        if control not in ("hold", "walk"):
            return ZERO, []
        closed = self.cfg.execution == "closed_loop"
        if self.current is not None and closed and pose is None:
            return ZERO, self._drop_all(now_ns, "odometry stale")
        results = []
        if self.current is None:
            if not self.queue or (closed and pose is None):
                return ZERO, []
            self.current = self.queue.popleft()
            self.started_ns = now_ns
            if self.current.source == "vlm" and self.idle_since_ns is not None:
                self.vlm_wait_s += (now_ns - self.idle_since_ns) * 1e-9
                self.vlm_waits += 1
            self.idle_since_ns = None
            self.executor.start(self.current.action, now_s, pose or Pose2D(0.0, 0.0, 0.0))
        sp = self.executor.step(now_s, pose or self.executor.last_pose, walking=control == "walk")
        if sp.done:
            r = self.executor.result()
            if r is None:  # cannot happen: a finished action always has a result
                raise RuntimeError("executor finished without a result")
            outcome = "blocked" if r.blocked else "timeout" if r.timed_out else "completed"
            why = f"no progress for {self.executor.params.stall_window_s:.1f} s" if r.blocked else ""
            results.append(self._result(self.current, now_ns, outcome, why, estimated=r.achieved))
            self.done += 1
            finished, self.current = self.current, None
            if isinstance(finished.action, Stop):
                results += self._drop_all(now_ns, "STOP")  # what was queued behind a STOP is preempted by it
            elif finished.source == "vlm" and not self.queue:
                self.idle_since_ns = now_ns
            return ZERO, results
        return (sp.vx, sp.vy, sp.wz), results

    def nominal_s(self, action, done: float = 0.0) -> float:
        """Nominal time left for an action at the configured speeds, given the amount already achieved."""
        if isinstance(action, Forward):
            return max(0.0, abs(action.distance_m) - abs(done)) / self.cfg.forward_speed_m_s
        if isinstance(action, Turn):
            return max(0.0, abs(action.angle_rad) - abs(done)) / self.cfg.turn_rate_rad_s
        return 0.0

    def remaining_s(self) -> float:
        rest = sum(self.nominal_s(p.action) for p in self.queue)
        if self.current is not None:
            rest += self.nominal_s(self.current.action, self.executor.estimate_so_far())
        return rest

    def status(self) -> NavigatorStatus:
        state = "executing" if self.current else "holding" if self.holding else "idle"
        return NavigatorStatus(
            state=state,
            execution=self.cfg.execution,
            queue_len=len(self.queue),
            current_action_id=self.current.action_id if self.current else -1,
            current_query_id=self.current.query_id if self.current else -1,
            current_sender=self.current.sender if self.current else "",
            current_text=self.current.text if self.current else "",
            actions_done=self.done,
            invalid_texts=self.invalid,
            rejected_texts=self.rejected,
            remaining_s=self.remaining_s(),
            vlm_wait_s=self.vlm_wait_s,
            vlm_waits=self.vlm_waits,
        )
