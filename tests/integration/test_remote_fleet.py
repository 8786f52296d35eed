"""One server, many robots (issue: "two robots on one server mix their episodes"). Each robot's answers on a shared
server are exactly the answers it gets alone: tiny NaVILA (micro-batched: one vision call and one batched decode for
several robots) and tiny StreamVLN (per-robot history and KV cache, run one robot at a time), with robots that
interleave, reset while others run, and send the same frame ids with different pixels. Two and four robots with a
fake that shows any cross-talk in its text."""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from edge.common.config import RemoteConfig
from edge.vlm.remote import VlmClient
from engines.vlm.models import NavilaVlm, StreamVlnVlm, VlmFrame, navila_sample
from tests.fakes.vlm import EchoVlm, ServerThread, make_keys

pytestmark = pytest.mark.integration
BIND = "tcp://127.0.0.1:*"
ROBOTS = ("r0", "r1", "r2", "r3")


@pytest.fixture(scope="module")
def navila(tiny):
    return NavilaVlm(tiny["navila"], max_new_tokens=6)


@pytest.fixture(scope="module")
def streamvln(tiny):
    return StreamVlnVlm(tiny["streamvln"], max_new_tokens=4)


@pytest.fixture
def keys(tmp_path):
    return make_keys(tmp_path, ROBOTS)


def camera(robot: int, n: int) -> list[VlmFrame]:
    """A robot's camera frames: ids 1…n for every robot (ids are the sender's business), pixels its own."""
    rng = np.random.default_rng(100 + robot)
    return [VlmFrame(i + 1, rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)) for i in range(n)]


def navila_queries(robot: int, n: int) -> list[list[VlmFrame]]:
    cam = camera(robot, n)
    return [navila_sample(cam[:k], cam[k]) for k in range(n)]


def streamvln_queries(robot: int, n: int) -> list[list[VlmFrame]]:
    return [[f] for f in camera(robot, n)]


def script(robot: int, n: int, family: str) -> list[tuple[str, list[VlmFrame]]]:
    """(instruction, frames) per query; robot 0 changes its instruction half-way (a new episode)."""
    queries = navila_queries(robot, n) if family == "navila" else streamvln_queries(robot, n)
    out = []
    for k, q in enumerate(queries):
        instruction = f"robot {robot}: walk to the door and stop."
        if robot == 0 and k >= n // 2:
            instruction = "robot 0: turn around and stop."
        out.append((instruction, q))
    return out


def summary(a):
    return a.text, tuple(a.frame_ids), a.vision_calls, a.cache_hits, a.new_tokens


def alone(model, steps):
    s = model.new_session()
    out = []
    for instruction, frames in steps:
        if instruction != s.instruction:
            s.reset(instruction)
        out.append(summary(s.infer(frames)))
    return out


def run_concurrently(endpoint, keys, scripts: dict[int, list]) -> dict[int, list]:
    got: dict[int, list] = {r: [] for r in scripts}
    errors: list[BaseException] = []
    start = threading.Barrier(len(scripts))

    def robot(r: int) -> None:
        c = VlmClient(endpoint, keys.robot(ROBOTS[r]), keys.server_public, timeout_s=120.0)
        try:
            start.wait(30)
            for instruction, frames in scripts[r]:
                got[r].append(summary(c.query(instruction, frames)))
        except BaseException as e:
            errors.append(e)
        finally:
            c.close()

    threads = [threading.Thread(target=robot, args=(r,)) for r in scripts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    return got


@pytest.mark.parametrize("family", ["navila", "streamvln"])
def test_two_robots_interleaving_get_exactly_their_answers_alone(family, request, keys):
    model = request.getfixturevalue(family)
    n = 9 if family == "streamvln" else 6  # StreamVLN: crosses its 8-call window
    scripts = {r: script(r, n, family) for r in (0, 1)}
    expected = {r: alone(model, scripts[r]) for r in scripts}
    assert expected[0] != expected[1]  # same frame ids, different pixels and instructions: different answers
    srv = ServerThread(BIND, model, keys)
    clients = {r: VlmClient(srv.endpoint, keys.robot(ROBOTS[r]), keys.server_public, timeout_s=120.0) for r in (0, 1)}
    try:
        got: dict[int, list] = {0: [], 1: []}
        for k in range(n):  # A, B, A, B, …: robot 0's new instruction half-way must not touch robot 1
            for r in (0, 1):
                instruction, frames = scripts[r][k]
                got[r].append(summary(clients[r].query(instruction, frames)))
        assert got == expected
        assert srv.stats.answered == 2 * n and len(srv.server.sessions()) == 2
    finally:
        for c in clients.values():
            c.close()
        srv.stop()


def test_four_robots_micro_batched_navila_get_their_answers_alone(navila, keys):
    """Concurrent NaVILA robots are answered in batches of four (one vision call, one batched decode) with exactly
    the tokens each gets alone. The batch waits are long here only to make the batches certain on a loaded machine."""
    n = 3
    scripts = {r: script(r, n, "navila") for r in range(4)}
    expected = {r: alone(navila, scripts[r]) for r in scripts}
    limits = RemoteConfig(batch_max=4, batch_wait_ms=5000, lone_wait_ms=5000)
    srv = ServerThread(BIND, navila, keys, limits=limits)
    try:
        got = run_concurrently(srv.endpoint, keys, scripts)
        assert got == expected
        assert srv.stats.batch_sizes[4] >= 1 and sum(k * v for k, v in srv.stats.batch_sizes.items()) == 4 * n
    finally:
        srv.stop()


def test_four_robots_on_streamvln_get_their_answers_alone(streamvln, keys):
    n = 4
    scripts = {r: script(r, n, "streamvln") for r in range(4)}
    expected = {r: alone(streamvln, scripts[r]) for r in scripts}
    srv = ServerThread(BIND, streamvln, keys)
    try:
        assert run_concurrently(srv.endpoint, keys, scripts) == expected
        assert set(srv.stats.batch_sizes) == {1}  # one robot at a time: its KV cache is its own
    finally:
        srv.stop()


@pytest.mark.parametrize("n_robots", [2, 4])
def test_no_cross_talk_between_robots(n_robots, keys):
    """Every answer names its own robot's instruction, its own call count (no foreign reset) and its own pixels."""
    model = EchoVlm(latency_s=0.01)
    srv = ServerThread(BIND, model, keys)
    n = 12
    scripts = {r: [(f"robot {r}", camera(r, 2)) for _ in range(n)] for r in range(n_robots)}
    try:
        got = run_concurrently(srv.endpoint, keys, scripts)
        for r in range(n_robots):
            pixels = sum(int(f.rgb.sum()) for f in camera(r, 2))
            assert [g[0] for g in got[r]] == [f"robot {r}#{k + 1} frame 2 sum {pixels}" for k in range(n)]
        assert sorted(model.resets) == [f"robot {r}" for r in range(n_robots)]
        assert len(model.sessions) == n_robots and srv.stats.answered == n_robots * n
    finally:
        srv.stop()
