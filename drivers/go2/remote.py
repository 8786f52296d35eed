"""The Unitree wireless remote as it arrives inside LowState: `wireless_remote`, 40 bytes (docs/go2.md §12).

Layout (little-endian), from sdk-cpp `include/unitree/dds_wrapper/common/unitree_joystick.hpp` (`REMOTE_DATA_RX`) and
`example/state_machine/gamepad.hpp` ("40 Byte (now used 24B)"); the Python SDK's `unitree_sdk2py/utils/joystick.py`
`Joystick.extract` reads the same bytes (tests/unit/test_remote.py checks this decoder against it):

    bytes 0–1   head
    bytes 2–3   uint16 keys, bit 0 R1, 1 L1, 2 start, 3 select, 4 R2, 5 L2, 6 F1, 7 F2,
                8 A, 9 B, 10 X, 11 Y, 12 up, 13 right, 14 down, 15 left
    bytes 4–23  float32 lx, rx, ry, L2 (analog), ly
    bytes 24–39 unused

Combinations, as the Go2's stock firmware and Unitree's own Go2 deploy code (unitree_rl_lab
`deploy/robots/go2/main.cpp`, `include/FSMState.h`) use them: L2+B damps (e-stop), L2+A stands up.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

REMOTE_BYTES = 40
KEYS = ("R1", "L1", "start", "select", "R2", "L2", "F1", "F2", "A", "B", "X", "Y", "up", "right", "down", "left")
ESTOP_COMBO = ("L2", "B")  # held: damp now, latched
STAND_COMBO = ("L2", "A")  # the last key going down while the others are held: confirm stand-up


class RemoteError(ValueError):
    """Bytes that are not a wireless-remote record."""


def decode_remote(raw: bytes | bytearray | Iterable[int]) -> frozenset[str]:
    """The keys held (names from KEYS). RemoteError if raw is not 40 bytes."""
    b = bytes(raw)
    if len(b) != REMOTE_BYTES:
        raise RemoteError(f"wireless_remote must be {REMOTE_BYTES} bytes, got {len(b)}")
    (bits,) = struct.unpack_from("<H", b, 2)
    return frozenset(k for i, k in enumerate(KEYS) if bits >> i & 1)


def decode_sticks(raw: bytes | bytearray | Iterable[int]) -> dict[str, float]:
    """Stick axes lx, ly, rx, ry (−1 … 1)."""
    b = bytes(raw)
    if len(b) != REMOTE_BYTES:
        raise RemoteError(f"wireless_remote must be {REMOTE_BYTES} bytes, got {len(b)}")
    lx, rx, ry, _l2, ly = struct.unpack_from("<5f", b, 4)
    return {"lx": lx, "ly": ly, "rx": rx, "ry": ry}


def encode_remote(
    keys: Iterable[str] = (), lx: float = 0.0, ly: float = 0.0, rx: float = 0.0, ry: float = 0.0
) -> bytes:
    """The 40 bytes for `keys` held (the simulator's injection). RemoteError for an unknown key name."""
    keys = tuple(keys)
    unknown = [k for k in keys if k not in KEYS]
    if unknown:
        raise RemoteError(f"unknown remote key(s) {unknown}; known: {', '.join(KEYS)}")
    out = bytearray(REMOTE_BYTES)
    struct.pack_into("<H", out, 2, sum(1 << KEYS.index(k) for k in set(keys)))
    struct.pack_into("<5f", out, 4, lx, rx, ry, 0.0, ly)
    return bytes(out)


def key_mask(combo: Iterable[str]) -> int:
    """The bits of bytes 2–3 (little-endian uint16) that are set when all of combo is held."""
    return int.from_bytes(encode_remote(combo)[2:4], "little")


def held(combo: tuple[str, ...], keys: frozenset[str]) -> bool:
    return all(k in keys for k in combo)


def pressed(combo: tuple[str, ...], keys: frozenset[str], before: frozenset[str]) -> bool:
    """All of combo held now, and its last key was not held before (an edge, as the SDK's `on_pressed`)."""
    return held(combo, keys) and combo[-1] not in before


def parse_combo(text: str) -> tuple[str, ...]:
    """'L2+B' → ('L2', 'B'); RemoteError naming the unknown key."""
    combo = tuple(k.strip() for k in text.split("+") if k.strip())
    encode_remote(combo)  # validates the names
    return combo
