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
