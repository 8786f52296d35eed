"""Typed fakes and helpers for the remote VLM tests: a stateful echo model with sessions, key folders for a fleet, a
server running in a thread, and a bounded wait on state."""

from __future__ import annotations

import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edge.common.config import RemoteConfig
from edge.vlm.remote import VlmServer, write_keypair
from engines.vlm.models import VlmAnswer, VlmFrame, VlmTimings


@dataclass
class EchoVlm:
    """A VisionLanguageModel whose answer shows its episode: "<instruction>#<call in episode> frame <last id> sum
    <pixel checksum>", so any mixing of two robots' episodes, frames or resets shows in the text. Sessions made by
    new_session share `resets` and `inferred` (the frame ids of every call, logged as it starts) with their root, and
    keep their own episode. `latency_s` (the root's) is slept per call."""

    latency_s: float = 0.0
    family: str = "echo"
    resets: list[str] = field(default_factory=list)
    inferred: list[tuple[int, ...]] = field(default_factory=list)
    sessions: list[EchoVlm] = field(default_factory=list)
    instruction: str = ""
    calls: int = 0
    root: EchoVlm | None = None

    def new_session(self) -> EchoVlm:
        root = self.root or self
        s = EchoVlm(family=self.family, resets=self.resets, inferred=self.inferred, root=root)
        root.sessions.append(s)
        return s

    def reset(self, instruction: str) -> None:
        self.resets.append(instruction)
        self.instruction, self.calls = instruction, 0

    def infer(self, frames):
        ids = tuple(f.frame_id for f in frames)
        self.inferred.append(ids)  # when the call starts
        time.sleep((self.root or self).latency_s)
        self.calls += 1
        total = int(sum(int(f.rgb.sum(dtype=np.uint64)) for f in frames))
        text = f"{self.instruction}#{self.calls} frame {ids[-1]} sum {total}"
        return VlmAnswer(text, ids, VlmTimings(0.0, 0.0, 0.0, 0.0), len(frames), 0, 3)


@dataclass
class Keys:
    """server/ (its pair), clients/ (public keys of the authorised robots), robots/<name>.key_secret, intruder."""

    root: Path

    @property
    def server_secret(self) -> Path:
        return self.root / "server/server.key_secret"

    @property
    def server_public(self) -> Path:
        return self.root / "server/server.key"

    @property
    def clients(self) -> Path:
        return self.root / "clients"

    def robot(self, name: str) -> Path:
        return self.root / "robots" / f"{name}.key_secret"

    def robot_public(self, name: str) -> Path:
        return self.root / "robots" / f"{name}.key"

    def add_robot(self, name: str, authorise: bool = True) -> Path:
        write_keypair(self.root / "robots", name)
        if authorise:
            shutil.copy(self.robot_public(name), self.clients / f"{name}.key")
        return self.robot(name)


def make_keys(root: Path, robots: tuple[str, ...] = ("client",)) -> Keys:
    keys = Keys(root)
    write_keypair(root / "server", "server")
    os.makedirs(keys.clients, exist_ok=True)
    for name in robots:
        keys.add_robot(name)
    keys.add_robot("intruder", authorise=False)
    return keys


class ServerThread:
    """A VlmServer serving in a thread; stop() ends it and frees the port."""

    def __init__(self, bind: str, model, keys: Keys, limits: RemoteConfig | None = None, **kw):
        self.server = VlmServer(bind, model, keys.server_secret, keys.clients, limits=limits, **kw)
        self.endpoint, self._stop = self.server.endpoint, threading.Event()
        self._thread = threading.Thread(target=self.server.serve, args=(self._stop, 0.02), daemon=True)
        self._thread.start()

    @property
    def stats(self):
        return self.server.stats

    def stop(self) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(30)
            self.server.close()


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.01) -> None:
    """Wait on state with a bound; AssertionError names what did not happen."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout_s} s"
        time.sleep(poll_s)


def frames(n: int = 8, h: int = 384, w: int = 384, first_id: int = 1, seed: int | None = None) -> list[VlmFrame]:
    rng = np.random.default_rng(first_id if seed is None else seed)
    return [VlmFrame(first_id + i, rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for i in range(n)]
