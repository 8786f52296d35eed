"""Operator side of the bus: send action sentences (standing in for the VLM), instructions, e-stop, stand; follow
and confirm the results. Every wait is on state (processState, controlState, navigatorStatus, actionResult) with a
bound, and ends in an OperatorError whose one-line message says what is wrong and what to do.

Before sending a sentence or an instruction, the receiving processes must report ready and control must accept
commands: a damped, e-stopped or lying-passive control refuses at once with control's reason (the navigator would
reject the sentence with the same reason).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from edge.common.config import EdgeConfig
from edge.msg.bus import Bus, Received, session_id
from edge.msg.messages import (
    ActionResult,
    ActionText,
    ControlState,
    Estop,
    Instruction,
    OperatorCommand,
    SimRemote,
    Source,
)
from edge.navigation.action_queue import control_refusal
from edge.system.health import HealthView, NotReadyError
from edge.system.process_config import PROCS
from edge.tools.errors import EXIT_NOT_READY, EXIT_USAGE, OperatorError

FAILED_OUTCOMES = ("invalid", "rejected", "preempted", "timeout", "blocked")
NAVIGATOR_SILENT_S = 3.0  # no navigatorStatus (nominal 10 Hz) for this long while waiting: navigatord is gone
ABSENT_FAIL_S = 3.0  # no process of the stack heard of and no socket on the bus: not running


def read_script(path: str | Path) -> list[str]:
    """One action sentence per line; blank lines and '#' comments are skipped."""
    try:
        lines = [ln.strip() for ln in Path(path).read_text().splitlines()]
    except OSError as e:
        raise OperatorError(f"cannot read script {path}: {e.strerror}", EXIT_USAGE) from None
    return [ln for ln in lines if ln and not ln.startswith("#")]


def consumer_of(topic: str) -> str:
    """The process that receives an operator topic (its PULL side), from the process table."""
    return next(p.name for p in PROCS if topic in p.subs)


def describe_result(r: ActionResult) -> str:
    """One result in the units people use: cm, degrees (+ left / − right), ms."""
    ms = (r.end_mono_ns - r.start_mono_ns) * 1e-6
    if r.kind == "forward":
        amount = f"commanded {r.commanded * 100:.1f} cm, estimated {r.estimated * 100:.1f} cm"
    elif r.kind == "turn":
        side = "left" if r.commanded >= 0 else "right"
        amount = f"commanded {side} {abs(math.degrees(r.commanded)):.1f}°, estimated {math.degrees(r.estimated):+.1f}°"
    else:
        amount = ""
    parts = [f"{r.kind} {r.outcome}", amount, f"in {ms:.0f} ms" if r.outcome != "invalid" else "", r.reason]
    return ", ".join(p for p in parts if p)


class Operator:
    """One operator session (sender id unique per session: results are matched on (sender, query id))."""

    def __init__(self, bus: Bus, cfg: EdgeConfig | None = None, name: str = "operator"):
        self.bus = bus
        self.cfg = cfg or EdgeConfig()
        self.sender = session_id(name)
        self.text_pub = bus.pub("actionText")
        self.results = bus.sub("actionResult")
        self.control = bus.sub("controlState")
        self.status = bus.sub("navigatorStatus")
        self.health = HealthView(bus, [p.name for p in PROCS if self.cfg.profile in p.profiles])
        self._next_query = 1

    # ---- readiness ------------------------------------------------------------------------------------------------
    def wait_ready(self, names: list[str], timeout_s: float = 30.0) -> None:
        try:
            self.health.wait_ready(timeout_s, names, absent_fail_s=ABSENT_FAIL_S)
        except NotReadyError as e:
            raise OperatorError(f"stack not ready: {e} (start it with `edge run`)", EXIT_NOT_READY) from None

    def control_state(self, timeout_s: float = 2.0) -> Received | None:
        """Newest controlState, waiting up to timeout_s for the first one."""
        deadline = time.monotonic() + timeout_s
        r = self.control.latest()
        while (r is None or r.age_s() > self.cfg.navigator.control_lost_s) and time.monotonic() < deadline:
            self.control.wait(0.05)
            r = self.control.latest()
        return r

    def refusal(self) -> str:
        """Why control would not take a command now ("" if it would)."""
        return control_refusal(self.cfg, self.control_state())

    def require_accepting(self) -> None:
        if reason := self.refusal():
            raise OperatorError(f"refused: {reason}")

    # ---- sentences ------------------------------------------------------------------------------------------------
    def say(
        self, text: str, source: Source = "operator", grammar: str = "navila", ready_timeout_s: float = 30.0
    ) -> int:
        """Send one sentence once controlsd is up and accepts commands (else OperatorError at once with control's
        reason) and navigatord is ready; returns its query id."""
        self.wait_ready(["controlsd"], ready_timeout_s)
        self.require_accepting()
        self.wait_ready([consumer_of("actionText")], ready_timeout_s)
        qid = self._next_query
        self._next_query += 1
        self.text_pub.publish(ActionText(text=text, source=source, grammar=grammar, query_id=qid, sender=self.sender))
        return qid

    def wait_for(self, query_id: int, timeout_s: float = 60.0) -> list[ActionResult]:
        """Results of one sentence: at once for invalid / rejected, else once the navigator is idle again after the
        last one. OperatorError if the navigator stops reporting, or after timeout_s."""
        got: list[ActionResult] = []
        last_ns = 0
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for r in self.results.wait(0.05):
                if r.msg.sender == self.sender and r.msg.query_id == query_id:
                    got.append(r.msg)
                    last_ns = r.mono_ns
            st = self.status.latest()  # a status sent after the last result (the navigator sends one each time)
            if st is not None and st.age_s() > NAVIGATOR_SILENT_S:
                raise OperatorError(f"navigatord stopped reporting ({st.age_s():.1f} s since its last status)")
            if got and st is not None and st.mono_ns > last_ns:
                refused = all(r.outcome in ("invalid", "rejected") for r in got)  # nothing of it will run
                if refused or (st.msg.state != "executing" and not st.msg.queue_len):
                    return got
        raise OperatorError(f"no complete result for sentence {query_id} within {timeout_s:g} s")

    def wait_mode(self, modes: tuple[str, ...], timeout_s: float = 30.0) -> Received:
        """Wait for control to be in one of `modes`; OperatorError naming its last mode and reason otherwise."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            r = self.control.latest()
            if r is not None and r.msg.mode in modes:
                return r
            self.control.wait(0.05)
        last = self.control.latest()
        raise OperatorError(
            f"control not in {'/'.join(modes)} after {timeout_s:g} s (last: "
            f"{'no controlState' if last is None else f'{last.msg.mode}: {last.msg.reason}'})"
        )

    def navigator_idle(self) -> bool:
        """The navigator reports (fresh: under 0.3 s old) that it has nothing executing or queued."""
        st = self.status.latest()
        return st is not None and st.age_s() < 0.3 and st.msg.state != "executing" and st.msg.queue_len == 0

    def close(self) -> None:
        for s in (self.text_pub, self.results, self.control, self.status):
            s.close()
        self.health.close()


def send_once(bus: Bus, topic: str, msg) -> None:
    """Send one event to its consumer (queued on the connection; close() lingers ≤ 1 s to deliver it)."""
    pub = bus.pub(topic)
    try:
        pub.publish(msg)
    finally:
        pub.close()


def confirm_damping(bus: Bus, since_ns: int, confirm_s: float = 2.0) -> ControlState:
    """Control's first damping state stamped after since_ns (an e-stop sent then); OperatorError if none within
    confirm_s (exit 3 when no controlState comes at all)."""
    watch = bus.sub("controlState", conflate=False)
    try:
        deadline = time.monotonic() + confirm_s
        seen = False
        while time.monotonic() < deadline:
            for r in watch.wait(0.05):
                seen = True
                if r.msg.mode == "damp" and r.mono_ns >= since_ns:
                    return r.msg
        if not seen:
            raise OperatorError(f"no controlState within {confirm_s:g} s: is the stack running?", EXIT_NOT_READY)
        raise OperatorError(f"control did not confirm damping within {confirm_s:g} s")
    finally:
        watch.close()


def estop(bus: Bus, reason: str = "operator", confirm_s: float = 2.0) -> ControlState:
    """Damp now (sent at once, no readiness wait), then confirmed from controlState (confirm_damping). The command
    line sends through the faster edge.tools.estop first and confirms the same way."""
    t0 = time.monotonic_ns()
    send_once(bus, "estop", Estop(reason=reason))
    return confirm_damping(bus, t0, confirm_s)


def stand(bus: Bus, cfg: EdgeConfig | None = None, confirm_s: float = 3.0) -> ControlState:
    """Confirm stand-up (robot profile). Returns control's state once it stands up; OperatorError with control's
    reason if it refuses (not lying level, stale state) or is damping."""
    op = Operator(bus, cfg)
    try:
        op.wait_ready(["controlsd"])
        r = op.control_state()
        if r is not None and r.msg.mode == "damp":
            raise OperatorError(f"refused: control is damping ({r.msg.reason}); restart controlsd to clear")
        if r is not None and r.msg.mode in ("stand_up", "hold", "walk"):
            return r.msg
        send_once(bus, "operatorCommand", OperatorCommand(command="stand"))
        try:
            return op.wait_mode(("stand_up", "hold", "walk"), confirm_s).msg
        except OperatorError:
            last = op.control.latest()
            why = "no controlState" if last is None else f"{last.msg.mode}: {last.msg.reason}"
            raise OperatorError(f"stand-up refused by control ({why})") from None
    finally:
        op.close()


def instruct(bus: Bus, text: str, cfg: EdgeConfig | None = None, confirm_s: float = 5.0) -> dict[str, str]:
    """Give the VLM an instruction once it, the navigator and control are ready and control accepts commands;
    returns the VLM process's detail (model, backend, episode) once it has taken the instruction."""
    op = Operator(bus, cfg)
    vlm = consumer_of("instruction")
    try:
        op.wait_ready(["controlsd"])
        op.require_accepting()
        op.wait_ready([vlm, consumer_of("actionText")], 120.0)
        before = op.health.state(vlm)
        count = int(before.detail.get("instructions", "0")) if before is not None else 0
        send_once(bus, "instruction", Instruction(text=text))
        deadline = time.monotonic() + confirm_s
        while time.monotonic() < deadline:
            op.health.poll(0.1)
            st = op.health.state(vlm)
            if st is not None and int(st.detail.get("instructions", "0")) > count:
                return st.detail
        raise OperatorError(f"{vlm} did not confirm the instruction within {confirm_s:g} s")
    finally:
        op.close()


def remote(bus: Bus, keys: str, hold_s: float = 0.5) -> None:
    """Simulator: hold wireless-remote keys ('L2+B') in LowState for hold_s (drivers.go2.remote)."""
    from drivers.go2.remote import parse_combo

    send_once(bus, "simRemote", SimRemote(keys=parse_combo(keys), hold_s=hold_s))
