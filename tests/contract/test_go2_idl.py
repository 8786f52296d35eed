"""Contract: our LowCmd/LowState builders against the unitree_go IDL, through a real cyclonedds CDR round trip."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from unitree_sdk2py.idl.unitree_go.msg.dds_ import LowCmd_, LowState_

from drivers.go2.constants import NUM_JOINTS, NUM_MOTOR_SLOTS, POS_STOP_F, VEL_STOP_F
from drivers.robot_io import JointCommand
from drivers.unitree.go2 import crc_ok, lowcmd_to_joint_command, lowstate_to_robot_state, make_lowcmd, make_lowstate

f32 = np.float32
J = np.arange(NUM_JOINTS)


def _distinct_cmd() -> JointCommand:
    # Every field and joint has a different value (and none is float32-exact, to exercise rounding).
    return JointCommand(q=0.1 + 0.01 * J, dq=-2.3 - 0.1 * J, kp=20.0 + J + 0.3, kd=0.5 + 0.05 * J, tau=1.7 - 0.2 * J)


def test_lowcmd_round_trip_every_field():
    cmd = _distinct_cmd()
    wire = make_lowcmd(cmd).serialize()
    assert len(wire) == 812  # docs/go2.md §2.1: CDR payload incl. 4-byte header
    m = LowCmd_.deserialize(wire)
    assert list(m.head) == [0xFE, 0xEF]
    assert m.level_flag == 0xFF
    assert len(m.motor_cmd) == NUM_MOTOR_SLOTS
    for i, mc in enumerate(m.motor_cmd):
        assert mc.mode == 0x01, i
        if i < NUM_JOINTS:
            assert (mc.q, mc.dq, mc.kp, mc.kd, mc.tau) == (
                f32(cmd.q[i]),
                f32(cmd.dq[i]),
                f32(cmd.kp[i]),
                f32(cmd.kd[i]),
                f32(cmd.tau[i]),
            ), i
        else:
            assert (mc.q, mc.dq, mc.kp, mc.kd, mc.tau) == (f32(POS_STOP_F), f32(VEL_STOP_F), 0.0, 0.0, 0.0), i
        assert list(mc.reserve) == [0, 0, 0]
    assert crc_ok(m)
    # The inverse helper recovers the command (float32-rounded, as on the wire).
    back = lowcmd_to_joint_command(m)
    for n in ("q", "dq", "kp", "kd", "tau"):
        np.testing.assert_array_equal(getattr(back, n), getattr(cmd, n).astype(f32), err_msg=n)


def test_dq_not_qd():
    # unitree_rl_gym's deploy code sets motor_cmd[i].qd, silently creating a new attribute (docs/go2.md §7).
    assert "qd" not in {f.name for f in dataclasses.fields(JointCommand)}
    assert not hasattr(JointCommand(q=np.zeros(12)), "qd")
    with pytest.raises(TypeError):
        JointCommand(q=np.zeros(12), qd=np.ones(12))  # type: ignore[call-arg]
    dq = np.linspace(0.5, 6.0, NUM_JOINTS)
    m = LowCmd_.deserialize(make_lowcmd(JointCommand(q=np.zeros(12), dq=dq)).serialize())
    np.testing.assert_array_equal([mc.dq for mc in m.motor_cmd[:NUM_JOINTS]], dq.astype(f32))
    assert not any(hasattr(mc, "qd") for mc in m.motor_cmd)


def test_corrupted_lowcmd_fails_crc_after_round_trip():
    m = make_lowcmd(_distinct_cmd())
    m.crc ^= 1
    assert not crc_ok(LowCmd_.deserialize(m.serialize()))


def test_lowstate_round_trip_every_field():
    q, dq, tau = 0.2 + 0.03 * J, -1.1 + 0.07 * J, 3.3 - 0.4 * J
    s = 0.5**0.5
    quat = [s, 0.0, 0.0, s]  # 90° yaw
    gyro, accel, ff, tick = [0.11, -0.22, 0.33], [0.4, -0.5, 9.81], [11, 22, 33, 44], 123456
    wire = make_lowstate(q, dq, tau, quat, gyro, accel, ff, tick).serialize()
    assert len(wire) == 1180  # docs/go2.md §2.2
    m = LowState_.deserialize(wire)
    assert crc_ok(m)
    assert m.tick == tick
    assert list(m.foot_force) == ff
    np.testing.assert_allclose(m.imu_state.rpy, [0.0, 0.0, np.pi / 2], atol=1e-6)
    st = lowstate_to_robot_state(m, recv_mono_s=42.0)
    for name, want in (("q", q), ("dq", dq), ("tau", tau), ("quat_wxyz", quat), ("gyro", gyro), ("accel", accel)):
        np.testing.assert_array_equal(getattr(st, name), np.asarray(want).astype(f32), err_msg=name)
    np.testing.assert_array_equal(st.foot_force, ff)
    assert st.tick == tick and st.recv_mono_s == 42.0
    # Slots 12–19 untouched (zeros): the converter reads 0–11 only.
    assert all(ms.q == 0.0 for ms in m.motor_state[NUM_JOINTS:])


def test_lowstate_rejects_wrong_sizes_and_wraps_tick():
    z = np.zeros(12)
    with pytest.raises(ValueError, match="q"):
        make_lowstate(np.zeros(11), z, z, [1, 0, 0, 0], [0, 0, 0], [0, 0, 0], [0] * 4, 0)
    with pytest.raises(ValueError, match="foot_force"):
        make_lowstate(z, z, z, [1, 0, 0, 0], [0, 0, 0], [0, 0, 0], [0] * 3, 0)
    m = LowState_.deserialize(
        make_lowstate(z, z, z, [1, 0, 0, 0], [0, 0, 0], [0, 0, 0], [1e6, -1e6, 0.4, 0.6], 2**32 + 5).serialize()
    )
    assert m.tick == 5
    assert list(m.foot_force) == [32767, -32768, 0, 1]  # clipped to int16, rounded
