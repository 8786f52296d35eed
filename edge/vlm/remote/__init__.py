"""Run the VLM on a GPU server for one robot or a fleet: the robot sends frames over ZeroMQ with CURVE encryption and
authentication; the server keeps each robot's episode under its authenticated key and bounds everything.

    protocol.py  wire format (one part each way) and every limit check (config section `remote`)
    keys.py      key files (never overwritten, 0600 secrets, rotation) and the server's hot-reloaded robot keys
    server.py    VlmServer: per-robot sessions, deadlines, micro-batching
    client.py    VlmClient / AsyncVlmClient: the robot side, with errors that say what happened
    cli.py       `python -m edge.vlm.remote keys DIR NAME [--rotate]` and `… serve`

Keys: `python -m edge.vlm.remote keys DIR NAME` → DIR/NAME.key (public, share it) and DIR/NAME.key_secret (0600,
keep it). Server: `python -m edge.vlm.remote serve --bind tcp://0.0.0.0:5560 --keys DIR --clients ROBOT_KEYS
(--fixed TEXT | --config FILE)`. Robot: the `vlm.remote` config section. Bytes: 8 raw 384×384 frames are 3.5 MB a
query (~0.3 s at 100 Mbit/s); over Wi-Fi use jpeg_quality (~0.1 MB). Protocol, limits, keys and their sources:
docs/remote.md; the path to a serving engine: docs/serving.md.
"""

from edge.vlm.remote.cli import main
from edge.vlm.remote.client import (
    AsyncVlmClient,
    QueryStats,
    VlmBadReply,
    VlmClient,
    VlmHandshakeFailed,
    VlmKeyRefused,
    VlmLinkError,
    VlmServerError,
    VlmServerGone,
    VlmTimeout,
    VlmUnreachable,
)
from edge.vlm.remote.keys import ClientKeys, KeyFileError, load_public, load_secret, write_keypair
from edge.vlm.remote.protocol import BadReply, RequestRefused
from edge.vlm.remote.server import VlmServer


def generate_keys(directory, name, *, rotate: bool = False):
    """DIR/NAME.key and DIR/NAME.key_secret (see keys.write_keypair); returns both paths."""
    return write_keypair(directory, name, rotate=rotate)


__all__ = [
    "AsyncVlmClient",
    "BadReply",
    "ClientKeys",
    "KeyFileError",
    "QueryStats",
    "RequestRefused",
    "VlmBadReply",
    "VlmClient",
    "VlmHandshakeFailed",
    "VlmKeyRefused",
    "VlmLinkError",
    "VlmServer",
    "VlmServerError",
    "VlmServerGone",
    "VlmTimeout",
    "VlmUnreachable",
    "generate_keys",
    "load_public",
    "load_secret",
    "main",
    "write_keypair",
]
