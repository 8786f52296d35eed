"""The wireless-remote decoder (drivers.go2.remote) against the Unitree SDK's own, and the remote in the control tick:
L2+B damps in the same tick and latches, L2+A confirms stand-up only lying level with fresh state."""

from __future__ import annotations

import importlib
import sys
import types

import numpy as np
import pytest

from drivers.go2.remote import KEYS, RemoteError, decode_remote, decode_sticks, encode_remote, parse_combo
from edge.common.config import ControlConfig, SafetyConfig
from edge.controls.controller import Controller
from edge.controls.locomotion import Policy, load_policy_config
from tests.fakes.robot import STAND_Q, robot_state


@pytest.fixture(scope="module")
def sdk_joystick():
    """unitree_sdk2py.utils.joystick imports pygame at module level (for its PyGameJoystick only); its base Joystick,
    the decoder we compare with, never touches pygame. An empty module stands in for the import."""
    had = "pygame" in sys.modules
    sys.modules.setdefault("pygame", types.ModuleType("pygame"))
    try:
        yield importlib.import_module("unitree_sdk2py.utils.joystick")
    finally:
        if not had:
            sys.modules.pop("pygame", None)


SDK_NAMES = {
    "R1": "RB",
    "L1": "LB",
    "start": "start",
    "select": "back",
    "R2": "RT",
    "L2": "LT",
    "A": "A",
    "B": "B",
    "X": "X",
    "Y": "Y",
    "up": "up",
    "right": "right",
    "down": "down",
    "left": "left",
}  # F1, F2: not in the SDK


@pytest.mark.parametrize("keys", [(), ("L2", "B"), ("L2", "A"), ("start",), ("R1", "left", "Y"), tuple(SDK_NAMES)])
def test_decoder_agrees_with_the_sdk_joystick(sdk_joystick, keys):
    raw = encode_remote(keys, lx=0.25, ly=-0.5, rx=0.75, ry=-1.0)
    js = sdk_joystick.Joystick()
    js.extract(list(raw))
    assert decode_remote(raw) == frozenset(keys)
    for ours, theirs in SDK_NAMES.items():
        assert getattr(js, theirs).pressed == (ours in keys), ours
    sticks = decode_sticks(raw)
    assert (sticks["lx"], sticks["ly"], sticks["rx"], sticks["ry"]) == (0.25, -0.5, 0.75, -1.0)


def test_every_key_has_its_own_bit_and_bad_input_is_refused():
    bits = [int.from_bytes(encode_remote([k])[2:4], "little") for k in KEYS]
    assert bits == [1 << i for i in range(16)]
    assert decode_remote(bytes(40)) == frozenset()
    with pytest.raises(RemoteError, match="40 bytes, got 39"):
        decode_remote(bytes(39))
    with pytest.raises(RemoteError, match="unknown remote key"):
        parse_combo("L2+Q")
    assert parse_combo(" L2 + B ") == ("L2", "B")


CFG = load_policy_config("configs/policies/go2_robot_lab.yaml")


def _controller():
    return Controller(control=ControlConfig(), safety=SafetyConfig(), policy=Policy(CFG))


def _state(t, keys=(), q=STAND_Q, **kw):
    return robot_state(t=t, q=q, tick=int(round(t * 1000)), wireless_remote=encode_remote(keys), **kw)


def _standing(ctrl):
    t = 0.0
    for i in range(160):
        t = i * 0.02
        r = ctrl.tick(t, _state(t), None, stand_requested=True)
    assert r.mode == "hold"
    return t


def test_l2_b_damps_in_the_same_tick_and_latches():
    ctrl = _controller()
    t = _standing(ctrl)
    t += 0.02
    r = ctrl.tick(t, _state(t, ("L2", "B")), np.array([0.5, 0, 0]))
    assert r.mode == "damp" and r.reason == "e-stop (remote L2+B)" and np.all(r.command.kp == 0)
    assert r.remote == frozenset({"L2", "B"})
    for _ in range(5):  # released: still damping
        t += 0.02
        assert ctrl.tick(t, _state(t), np.array([0.5, 0, 0]), stand_requested=True).mode == "damp"


def test_b_alone_or_a_stale_state_does_not_damp():
    ctrl = _controller()
    t = _standing(ctrl)
    assert ctrl.tick(t + 0.02, _state(t + 0.02, ("B",)), None).mode == "hold"
    assert ctrl.tick(t + 0.04, _state(t + 0.04, ("L2",)), None).mode == "hold"


def test_l2_a_confirms_stand_only_on_the_press_and_only_lying_level():
    ctrl = Controller(control=ControlConfig(auto_stand=False), safety=SafetyConfig(), policy=Policy(CFG))
    lying = (0.0, 1.36, -2.65) * 4
    tilted = (np.cos(0.25), np.sin(0.25), 0.0, 0.0)  # rolled 0.5 rad
    t = 0.0
    for i in range(30):  # steady stream, nothing pressed
        t = i * 0.02
        assert ctrl.tick(t, _state(t, q=lying), None).mode == "passive"
    t += 0.02
    assert ctrl.tick(t, _state(t, ("L2", "A"), q=lying, quat_wxyz=tilted), None).mode == "passive"  # refused
    t += 0.02  # still held, now level: a held combo is not a new press
    assert ctrl.tick(t, _state(t, ("L2", "A"), q=lying), None).mode == "passive"
    t += 0.02
    assert ctrl.tick(t, _state(t, ("L2",), q=lying), None).mode == "passive"
    t += 0.02
    r = ctrl.tick(t, _state(t, ("L2", "A"), q=lying), None)  # A goes down while L2 is held
    assert r.mode == "stand_up"
