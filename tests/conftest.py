from __future__ import annotations

import shutil
import tempfile

import pytest

from edge.bus import Bus


@pytest.fixture
def run_dir():
    """A short per-test directory for ipc:// sockets (Unix socket paths are limited to ~107 bytes)."""
    d = tempfile.mkdtemp(prefix="edge-t-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def bus(run_dir):
    return Bus(run_dir)
