"""edge.system.health: the readiness protocol (processState), its waits and errors, and its systemd mirror."""

from __future__ import annotations

import socket
import time

import pytest

from edge.common.sdnotify import Notifier
from edge.system.health import PERIOD_S, Health, HealthView, NotReadyError


def _recv_all(server: socket.socket, timeout_s: float = 1.0) -> list[str]:
    server.settimeout(timeout_s)
    out = []
    try:
        while True:
            out.append(server.recv(4096).decode())
            server.settimeout(0.05)
    except (TimeoutError, BlockingIOError, socket.timeout):
        return out


@pytest.fixture
def notify(tmp_path, monkeypatch):
    path = str(tmp_path / "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield server
    server.close()


def test_states_reach_a_waiter_in_order_with_progress(bus):
    view = HealthView(bus, ["vlmd"])
    h = Health("vlmd", bus).start()
    try:
        seen = []
        h.loading("engine", 0.4)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not seen:
            view.poll(0.1)
            st = view.state("vlmd")
            if st is not None and st.state == "loading":
                seen.append(st)
        assert seen and seen[0].progress == pytest.approx(0.4) and seen[0].reason == "engine"
        assert "vlmd: loading 40 % (engine)" == view.describe("vlmd")
        h.ready("navila (transformers)")
        up = view.wait_ready(5.0)
        st = up["vlmd"]
        assert st.state == "ready" and st.pid > 0 and st.rss_mb > 0 and st.uptime_s >= st.state_s >= 0
    finally:
        h.close()
        view.close()


def test_published_about_twice_a_second_without_changes(bus):
    view = HealthView(bus, ["navigatord"])
    h = Health("navigatord", bus).start()
    h.ready()
    try:
        view.wait_ready(5.0)
        n0 = view.sub.received
        time.sleep(2.0)
        view.poll()
        n = view.sub.received - n0
        assert 2.0 / PERIOD_S - 2 <= n <= 2.0 / PERIOD_S + 2, n
    finally:
        h.close()
        view.close()


def test_wait_names_what_is_not_ready_and_why(bus):
    view = HealthView(bus, ["controlsd", "vlmd"])
    h = Health("vlmd", bus).start()
    h.loading("TensorRT-LLM engine", 0.6)
    try:
        with pytest.raises(NotReadyError) as e:
            view.wait_ready(1.0)
        msg = str(e.value)
        assert "controlsd: no state received" in msg and "vlmd: loading 60 % (TensorRT-LLM engine)" in msg
        assert "without progress" in msg
    finally:
        h.close()
        view.close()


def test_progress_extends_the_bound_and_failure_ends_the_wait_at_once(bus):
    view = HealthView(bus, ["vlmd"])
    h = Health("vlmd", bus).start()
    try:
        t0 = time.monotonic()
        for i in range(6):  # 1.8 s of loading with progress, against a 1 s bound: still waited for
            h.loading("checkpoint", i / 10)
            time.sleep(0.3)
        h.ready()
        assert view.wait_ready(1.0)["vlmd"].state == "ready" and time.monotonic() - t0 > 1.5
        h.failed("CUDA out of memory")
        t0 = time.monotonic()
        with pytest.raises(NotReadyError, match="vlmd stopped during start-up: vlmd: failed \\(CUDA out of memory\\)"):
            view.wait_ready(30.0)
        assert time.monotonic() - t0 < 5
    finally:
        h.close()
        view.close()


def test_no_stack_on_the_bus_fails_fast_for_clients(bus):
    view = HealthView(bus, ["navigatord", "controlsd"])
    t0 = time.monotonic()
    with pytest.raises(NotReadyError, match="no stack running on bus"):
        view.wait_ready(30.0, absent_fail_s=0.5)
    assert time.monotonic() - t0 < 5
    view.close()


def test_abort_reason_ends_the_wait(bus):
    view = HealthView(bus, ["simd"])
    with pytest.raises(NotReadyError, match="simd exited with code 2"):
        view.wait_ready(30.0, abort=lambda: "simd exited with code 2")
    view.close()


def test_final_states_stick(bus):
    h = Health("recordd", bus)
    h.failed("disk full")
    h.ready()
    assert h.state == "failed" and h.reason == "disk full"
    h.close()


def test_systemd_mirror(notify, bus):
    h = Health("vlmd", bus, notifier=Notifier(), extend_s=300)
    h.loading("checkpoint", 0.1)
    h.loading("engine", 0.5)
    h.ready("navila")
    h.degraded("link down")
    h.ready("navila")  # READY=1 only once
    h.close("stopping", "SIGTERM")
    msgs = _recv_all(notify)
    assert msgs[0].startswith("STATUS=loading 10 %: checkpoint")
    assert "EXTEND_TIMEOUT_USEC=300000000" in msgs[1]  # each progress report extends the start timeout
    ready = [m for m in msgs if "READY=1" in m]
    assert len(ready) == 1 and "STATUS=ready: navila" in ready[0]
    assert any(m == "STATUS=degraded: link down" for m in msgs)
    assert msgs[-1].startswith("STOPPING=1") and "SIGTERM" in msgs[-1]
    assert not any("EXTEND" in m for m in msgs[msgs.index(ready[0]) :])  # never after READY=1


def test_a_state_change_racing_the_publisher_never_makes_a_negative_state_age():
    """A set() from another thread between the publisher's clock read and its lock once stamped the state's start after
    `now`: state_s < 0, the ProcessState refused, a traceback in vlmd's log (found by the fault suite)."""
    h = Health("x", None)

    class RacingLock:
        def __init__(self, inner):
            self.inner, self.raced = inner, False

        def __enter__(self):
            if not self.raced:  # the other thread wins the lock first, once
                self.raced = True
                with self.inner:
                    h._state, h._since = "loading", time.monotonic()
            return self.inner.__enter__()

        def __exit__(self, *exc):
            return self.inner.__exit__(*exc)

    h._lock = RacingLock(h._lock)
    assert h.message().state_s >= 0
