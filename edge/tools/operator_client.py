"""Operator side of the bus: send action sentences (standing in for the VLM), e-stop, stand; follow the results."""

from __future__ import annotations

import time
from pathlib import Path

from edge.msg.bus import Bus, Received
from edge.msg.messages import ActionResult, ActionText, Instruction, OperatorCommand, SimRemote


def read_script(path: str | Path) -> list[str]:
    """One action sentence per line; blank lines and '#' comments are skipped."""
    lines = [ln.strip() for ln in Path(path).read_text().splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


class Operator:
    def __init__(self, bus: Bus):
        self.bus = bus
        self.text_pub = bus.pub("actionText")
        self.results = bus.sub("actionResult")
        self.control = bus.sub("controlState")
        self.status = bus.sub("navigatorStatus")
        self._next_query = 1

    def say(self, text: str, source: str = "operator", grammar: str = "navila") -> int:
        if not self.text_pub.wait_peer():
            raise TimeoutError("nobody is listening on actionText (is navigatord running?)")
        qid = self._next_query
        self._next_query += 1
        self.text_pub.publish(ActionText(text=text, source=source, grammar=grammar, query_id=qid))
        return qid

    def wait_for(self, query_id: int, timeout_s: float = 30.0) -> list[ActionResult]:
        """Results of one sentence, once the navigator is idle again."""
        got: list[ActionResult] = []
        last_ns = 0
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for r in self.results.wait(0.05):
                if r.msg.query_id == query_id:
                    got.append(r.msg)
                    last_ns = r.mono_ns
            st = self.status.latest()  # idle, and said so after the last result: the sentence is done
            if (
                got
                and st is not None
                and st.mono_ns > last_ns
                and st.msg.state != "executing"
                and st.msg.queue_len == 0
            ):
                return got
        raise TimeoutError(f"no result for sentence {query_id} within {timeout_s} s")

    def wait_mode(self, modes: tuple[str, ...], timeout_s: float = 30.0) -> Received:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            r = self.control.latest()
            if r is not None and r.msg.mode in modes:
                return r
            time.sleep(0.02)
        last = self.control.latest()
        raise TimeoutError(
            f"control not in {modes} after {timeout_s} s (last: "
            f"{None if last is None else (last.msg.mode, last.msg.reason)})"
        )

    def close(self) -> None:
        for s in (self.text_pub, self.results, self.control, self.status):
            s.close()


def send_once(bus: Bus, topic: str, msg) -> None:
    pub = bus.pub(topic)
    try:
        if not pub.wait_peer():
            raise TimeoutError(f"nobody is listening on {topic} (is the stack running?)")
        pub.publish(msg)  # queued on the connection; close() lingers until it is delivered
    finally:
        pub.close()


def instruct(bus: Bus, text: str) -> None:
    send_once(bus, "instruction", Instruction(text=text))


def stand(bus: Bus) -> None:
    send_once(bus, "operatorCommand", OperatorCommand(command="stand"))


def remote(bus: Bus, keys: str, hold_s: float = 0.5) -> None:
    """Simulator: hold wireless-remote keys ('L2+B') in LowState for hold_s (drivers.go2.remote)."""
    from drivers.go2.remote import parse_combo

    send_once(bus, "simRemote", SimRemote(keys=parse_combo(keys), hold_s=hold_s))
