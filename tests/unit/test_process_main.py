"""edge.system.process_main: a process's start-up, its health from the first moment, and its end states."""

from __future__ import annotations

import threading
import time

import pytest

from edge.system.health import HealthView, NotReadyError
from edge.system.process_main import EXIT_CONFIG, process_main


def _run_in_thread(fn):
    out: dict = {}
    t = threading.Thread(target=lambda: out.setdefault("rc", _catch(fn, out)), daemon=True)
    t.start()
    return t, out


def _catch(fn, out):
    try:
        return fn()
    except Exception as e:  # the exception process_main re-raises after publishing "failed"
        out["exc"] = e
        return None


def test_sockets_open_and_health_published_before_slow_work(bus, run_dir, monkeypatch):
    """The process's inputs exist and it says 'loading' while run() is still busy: waiters see why it is not ready."""
    monkeypatch.setattr("signal.signal", lambda *a: None)  # not the main thread
    release = threading.Event()

    def run(proc):
        proc.health.loading("model", 0.5)
        release.wait(10)
        proc.health.ready()
        proc.stop.wait(0.5)
        return 0

    view = HealthView(bus, ["navigatord"])
    t, out = _run_in_thread(lambda: process_main("navigatord", run, ["--set", f"bus.run_dir={run_dir}"]))
    try:
        with pytest.raises(NotReadyError, match=r"navigatord: loading 50 % \(model\)"):
            view.wait_ready(1.0)
        assert (bus.endpoint("actionText")[6:]).startswith(run_dir)
        import os

        assert os.path.exists(bus.endpoint("actionText")[6:])  # its PULL socket is bound while it loads
        release.set()
        assert view.wait_ready(5.0)["navigatord"].state == "ready"
    finally:
        release.set()
        t.join(5)
        view.close()
    assert out["rc"] == 0


def test_an_exception_ends_in_failed_with_the_reason(bus, run_dir, monkeypatch):
    monkeypatch.setattr("signal.signal", lambda *a: None)
    view = HealthView(bus, ["recordd"])

    def run(proc):
        proc.health.ready()
        time.sleep(0.8)
        raise OSError("disk full")

    t, out = _run_in_thread(lambda: process_main("recordd", run, ["--set", f"bus.run_dir={run_dir}"]))
    deadline = time.monotonic() + 5
    st = None
    while time.monotonic() < deadline:
        view.poll(0.1)
        st = view.latest.get("recordd")
        if st is not None and st.msg.state == "failed":
            break
    t.join(5)
    view.close()
    assert st is not None and st.msg.state == "failed" and st.msg.reason == "OSError: disk full"
    assert isinstance(out.get("exc"), OSError)


@pytest.mark.parametrize(
    "argv, blamed",
    [
        (
            ["--set", "navigator.executon=open_loop"],
            "--set navigator.executon='open_loop': navigator.executon: unknown field",
        ),
        (["--set", "navigator.execution=fast"], "--set navigator.execution='fast'"),
        (["--set", "navigator"], "--set expects KEY=VALUE"),
        (["--config", "/nonexistent/go2.yaml"], "config file not found: /nonexistent/go2.yaml"),
    ],
)
def test_config_mistakes_end_in_one_line_naming_the_culprit(argv, blamed, capfd):
    assert process_main("navigatord", lambda proc: 0, argv) == EXIT_CONFIG
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and blamed in err[0] and "ERROR" in err[0], err
