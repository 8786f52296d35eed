"""One 8-frame VLM query over TCP loopback: ours (edge.vlm.remote, CURVE, raw 384×384 RGB) vs NaVILA-Bench's reference
protocol (docs/vln-models.md §1.9: 8-byte big-endian length + JSON with 8 base64 JPEGs, one request per connection).

Both send the same eight 384×384 frames (camera-like 640×480 renders, squash-resized as the robot does), so the
comparison is fair; the reference JPEG-encodes them itself. Timed from frames in hand to answer in hand: the
reference includes JPEG encode + base64 + JSON on the client and base64 + JPEG decode to arrays on the server;
ours includes CURVE encryption both ways. The model answers at once (zero latency) in both.
Loopback has no bandwidth limit, so extra_info also gives the transfer time the bytes alone would take on a
100 Mbit/s link (a good Wi-Fi link), where bytes dominate.

Run: .venv/bin/python -m pytest tests/benchmarks/test_bench_frame_transport.py --benchmark-enable -s
"""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image

from edge.vlm.remote import VlmClient, VlmServer, generate_keys
from engines.vlm.models import FixedAnswerVlm, VlmFrame

ANSWER = "The next action is move forward 75 cm."
QUERY = "Walk past the table and stop at the door."
ROUNDS = 40
LINK_BIT_S = 100e6
_results: dict[str, dict] = {}


def camera_frames(n=8, seed=0) -> list[VlmFrame]:
    """Indoor-like 640×480 renders (shaded wall, plank floor, a door, textured boxes and a poster, sensor noise),
    squash-resized to 384×384 as the robot does. Their JPEGs (q75) are ~14 KB each: a low-texture room; busier
    scenes compress less, which only adds to the reference's bytes and encode time."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:480, 0:640].astype(np.float32)

    def texture(h, w, scale):  # smooth random texture: upsampled noise
        small = rng.uniform(0, 255, (max(2, h // scale), max(2, w // scale), 3)).astype(np.uint8)
        return np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC), np.float32)

    out = []
    for i in range(n):
        horizon = int(250 + 10 * np.sin(i))
        wall = 170 + 40 * np.sin(x / 90 + i) * np.cos(y / 130)
        depth = np.maximum(y - horizon + 40, 20)
        planks = 15 * (np.sin((x - 320) / depth * 40) > 0.9) + 10 * np.sin((x - 320) / depth * 7)
        floor = 90 + 60 * (y - horizon) / 230 + planks
        img = np.where(y < horizon, wall, floor)[..., None] * np.array([1.0, 0.95, 0.85], np.float32)
        d0 = 180 + 12 * i  # the door drifts as the robot turns
        img[90:horizon, d0 : d0 + 90] = (110, 70, 40) + 0.15 * texture(horizon - 90, 90, 6)
        img[120:200, 420:520] = texture(80, 100, 4)  # a poster
        for _ in range(3):  # furniture
            bx, bw, bh = int(rng.uniform(0, 560)), int(rng.uniform(50, 160)), int(rng.uniform(40, 140))
            img[480 - bh - 40 : 440, bx : bx + bw] = 0.6 * texture(bh, min(bw, 640 - bx), 12) + 40
        img += rng.normal(0, 4, img.shape)  # sensor noise
        rgb = np.clip(img, 0, 255).astype(np.uint8)
        out.append(VlmFrame(100 + i, np.asarray(Image.fromarray(rgb).resize((384, 384), Image.BICUBIC))))
    return out


# ---- NaVILA-Bench reference protocol (scripts/vlm_server.py), reproduced faithfully ------------------------------


def _ref_server(sock: socket.socket, stop: threading.Event) -> None:
    sock.settimeout(0.1)
    while not stop.is_set():
        try:
            conn, _ = sock.accept()
        except socket.timeout:
            continue
        conn.settimeout(None)
        try:
            size = int.from_bytes(conn.recv(8), "big")
            data = b""
            while len(data) < size:  # as the reference: 4 KiB reads, bytes concatenation
                packet = conn.recv(4096)
                if not packet:
                    break
                data += packet
            request = json.loads(data.decode())
            images = [np.asarray(Image.open(io.BytesIO(base64.b64decode(s))).convert("RGB")) for s in request["images"]]
            assert len(images) == 8 and request["query"]
            reply = json.dumps(ANSWER).encode()
            conn.sendall(len(reply).to_bytes(8, "big"))
            conn.sendall(reply)
        finally:
            conn.close()


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return bytes(buf)


def _ref_query(port: int, frames: list[VlmFrame]) -> tuple[str, int]:
    images = []
    for f in frames:
        buf = io.BytesIO()
        Image.fromarray(f.rgb).save(buf, format="JPEG")  # PIL default quality (75)
        images.append(base64.b64encode(buf.getvalue()).decode())
    data = json.dumps({"images": images, "query": QUERY}).encode()
    with socket.create_connection(("127.0.0.1", port)) as conn:  # one request per connection
        conn.sendall(len(data).to_bytes(8, "big"))
        conn.sendall(data)
        n = int.from_bytes(_recv_exact(conn, 8), "big")
        return json.loads(_recv_exact(conn, n)), 8 + len(data)


@pytest.fixture(scope="module")
def frames():
    return camera_frames()


@pytest.fixture
def ours(tmp_path):
    """VlmServer (CURVE, zero-latency fixed model) in a thread; returns a factory of clients (raw or JPEG)."""
    generate_keys(tmp_path / "server", "server")
    generate_keys(tmp_path / "clients", "robot")
    server = VlmServer(
        "tcp://127.0.0.1:*", FixedAnswerVlm([ANSWER]), tmp_path / "server/server.key_secret", tmp_path / "clients"
    )
    stop = threading.Event()
    t = threading.Thread(target=server.serve, args=(stop, 0.05), daemon=True)
    t.start()
    made = []

    def client(jpeg_quality=None):
        made.append(
            VlmClient(
                server.endpoint,
                tmp_path / "clients/robot.key_secret",
                tmp_path / "server/server.key",
                5.0,
                jpeg_quality=jpeg_quality,
            )
        )
        return made[-1]

    yield client
    for c in made:
        c.close()
    stop.set()
    t.join(5)
    server.close()


@pytest.fixture
def reference():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    stop = threading.Event()
    t = threading.Thread(target=_ref_server, args=(sock, stop), daemon=True)
    t.start()
    yield sock.getsockname()[1]
    stop.set()
    t.join(5)
    sock.close()


@pytest.mark.parametrize("protocol", ["ours", "ours_jpeg", "reference"])
def test_bench_frame_transport(benchmark, request, frames, protocol):
    """ours: raw RGB (the default); ours_jpeg: our protocol with JPEG q75 parts (opt-in); reference: NaVILA-Bench."""
    rtts, sent = [], []
    if protocol.startswith("ours"):
        client = request.getfixturevalue("ours")(75 if protocol == "ours_jpeg" else None)

        def query():
            t0 = time.perf_counter()
            assert client.query(QUERY, frames).text == ANSWER
            rtts.append(time.perf_counter() - t0)
            sent.append(client.last.bytes_sent)
    else:
        port = request.getfixturevalue("reference")

        def query():
            t0 = time.perf_counter()
            text, n = _ref_query(port, frames)
            rtts.append(time.perf_counter() - t0)
            assert text == ANSWER
            sent.append(n)

    benchmark.pedantic(query, rounds=ROUNDS, iterations=1, warmup_rounds=3)
    ms = np.array(rtts[-ROUNDS:]) * 1e3
    r = {
        "median_ms": round(float(np.median(ms)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "bytes_sent": int(np.median(sent)),
        "link_100mbit_ms": round(float(np.median(sent)) * 8 / LINK_BIT_S * 1e3, 1),
    }
    _results[protocol] = r
    benchmark.extra_info.update(r)
    print(
        f"\n{protocol:9s}: round trip median {r['median_ms']} ms, p99 {r['p99_ms']} ms, "
        f"{r['bytes_sent']:,} bytes sent ({r['link_100mbit_ms']} ms at 100 Mbit/s)"
    )
    ref = _results.get("reference")
    for name in ("ours", "ours_jpeg"):
        if ref is not None and name in _results:
            o = _results[name]
            ratio = {
                f"ref_over_{name}_median": round(ref["median_ms"] / o["median_ms"], 2),
                f"ref_over_{name}_p99": round(ref["p99_ms"] / o["p99_ms"], 2),
                f"{name}_over_ref_bytes": round(o["bytes_sent"] / ref["bytes_sent"], 2),
            }
            benchmark.extra_info.update(ratio)
            print(
                f"reference / {name}: median ×{ratio[f'ref_over_{name}_median']}, "
                f"p99 ×{ratio[f'ref_over_{name}_p99']}; {name} sends ×{ratio[f'{name}_over_ref_bytes']} the bytes"
            )
