from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; MuJoCo picks its GL backend at first import

import shutil
import tempfile

import pytest

from edge.msg.bus import Bus


@pytest.fixture
def run_dir():
    """A short per-test directory for ipc:// sockets (Unix socket paths are limited to ~107 bytes)."""
    d = tempfile.mkdtemp(prefix="edge-t-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def bus(run_dir):
    return Bus(run_dir)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """Tiny random-weight checkpoints in the real layouts (navila/, streamvln/, policy/), written once per run by
    the same generator users run (`python -m exporters.tiny OUT`). Read-only: copy before corrupting."""
    from exporters.tiny import write_tiny_checkpoints

    return write_tiny_checkpoints(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(autouse=True)
def _restore_root_logging():
    """A CLI entry point called in-process (edge.tools.cli.main) configures the root logger onto the stderr that
    pytest captured for that test and closes afterwards; later log lines would then hit a closed file ("--- Logging
    error ---"). Put the root logger's own handlers and level back after every test (pytest's per-phase capture
    handlers are pytest's to manage)."""
    import logging

    def ours(h: logging.Handler) -> bool:
        return not type(h).__module__.startswith("_pytest")

    root = logging.getLogger()
    handlers, level = [h for h in root.handlers if ours(h)], root.level
    closed = [h for h in handlers if getattr(getattr(h, "stream", None), "closed", False)]
    assert not closed, f"an earlier test left the root logger writing to a closed stream: {closed}"
    yield
    for h in [h for h in root.handlers if ours(h) and h not in handlers]:
        root.removeHandler(h)
    for h in handlers:
        if h not in root.handlers:
            root.addHandler(h)
    root.setLevel(level)
