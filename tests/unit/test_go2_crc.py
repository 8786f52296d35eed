"""Go2 LowCmd/LowState CRC (docs/go2.md §3 vectors through the SDK CRC on real IDL objects) and command validation."""

from __future__ import annotations

import numpy as np
import pytest
from unitree_sdk2py.idl.default import unitree_go_msg_dds__LowCmd_, unitree_go_msg_dds__LowState_
from unitree_sdk2py.utils.crc import CRC

from drivers.go2.constants import POS_STOP_F, VEL_STOP_F
from drivers.robot_io import JointCommand
from drivers.unitree.go2 import crc_ok, fill_lowcmd, make_lowcmd, make_lowstate


def test_crc_lowcmd_all_zero():
    assert CRC().Crc(unitree_go_msg_dds__LowCmd_()) == 0x4B5A4880


def test_crc_lowstate_all_zero():
    assert CRC().Crc(unitree_go_msg_dds__LowState_()) == 0x85F11EA6


def test_crc_lowcmd_header_only():
    m = unitree_go_msg_dds__LowCmd_()
    m.head = [0xFE, 0xEF]
    m.level_flag = 0xFF
    assert CRC().Crc(m) == 0x322AC991


def test_crc_lowcmd_header_and_stop_sentinels():
    m = unitree_go_msg_dds__LowCmd_()
    m.head = [0xFE, 0xEF]
    m.level_flag = 0xFF
    for mc in m.motor_cmd:
        mc.mode, mc.q, mc.dq = 1, 2.146e9, 16000.0
    assert CRC().Crc(m) == 0x06E577CD


def test_crc_ignores_the_crc_word_itself():
    m = unitree_go_msg_dds__LowCmd_()
    m.crc = 0xDEADBEEF
    assert CRC().Crc(m) == 0x4B5A4880


def test_make_lowcmd_matches_sentinel_vector_for_an_all_stop_command():
    # A command equal to the stop sentinel on all 12 joints must give the §3 vector 4 (all 20 slots identical).
    cmd = JointCommand(q=np.full(12, POS_STOP_F), dq=np.full(12, VEL_STOP_F))
    m = make_lowcmd(cmd)
    assert m.crc == 0x06E577CD
    assert crc_ok(m)


def test_crc_ok_detects_corruption():
    m = make_lowcmd(JointCommand(q=np.linspace(-1, 1, 12), kp=np.full(12, 20.0), kd=np.full(12, 0.5)))
    assert crc_ok(m)
    m.motor_cmd[5].q += 0.01
    assert not crc_ok(m)
    s = make_lowstate(
        np.zeros(12), np.zeros(12), np.zeros(12), [1, 0, 0, 0], [0, 0, 0], [0, 0, 9.81], [10, 20, 30, 40], 7
    )
    assert crc_ok(s)
    s.tick += 1
    assert not crc_ok(s)


@pytest.mark.parametrize("field", ["q", "dq", "kp", "kd", "tau"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e39])  # 1e39 overflows float32 → inf on the wire
def test_fill_lowcmd_refuses_non_finite(field, bad):
    vals = {n: np.zeros(12) for n in ("q", "dq", "kp", "kd", "tau")}
    vals[field][3] = bad
    m = unitree_go_msg_dds__LowCmd_()
    with pytest.raises(ValueError):
        fill_lowcmd(m, JointCommand(**vals))
    assert m.crc == 0 and m.level_flag == 0  # msg untouched
