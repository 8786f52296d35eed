from __future__ import annotations

from edge.common.config import SafetyConfig
from edge.controls.safety import SafetyInputs, SafetyStateMachine

LIM = SafetyConfig(lowstate_max_age_s=0.05, max_tilt_rad=1.0, zero_then_hold_s=1.0, stand_min_steady_s=0.0)


def run(sm, t, **kw):
    base = dict(now_s=t, state_age_s=0.005)
    base.update(kw)
    return sm.step(SafetyInputs(**base))


def standing(t0=0.0):
    sm = SafetyStateMachine(safety=LIM, stand_duration_s=2.0)
    assert run(sm, t0, stand_requested=True) == "stand_up"
    assert run(sm, t0 + 1.99, stand_requested=True) == "stand_up"
    assert run(sm, t0 + 2.0) == "hold"
    return sm


def test_passive_waits_for_state_then_for_stand():
    sm = SafetyStateMachine(safety=LIM, stand_duration_s=2.0)
    assert run(sm, 0.0, state_age_s=None, stand_requested=True) == "passive"
    assert sm.reason == "waiting for LowState"
    assert run(sm, 0.1, state_age_s=0.2, stand_requested=True) == "passive"  # stale is not a fault yet
    assert run(sm, 0.2) == "passive" and sm.reason == "waiting for stand"
    assert run(sm, 0.3, roll_rad=1.5, stand_requested=True) == "passive"  # refuses to stand on its side
    assert run(sm, 0.4, stand_requested=True) == "stand_up"


def test_stand_hold_walk_and_back_to_hold_after_zero_velocity():
    sm = standing()
    assert run(sm, 2.1, velocity_fresh=True, velocity_nonzero=True) == "walk"
    assert run(sm, 3.0, velocity_fresh=True, velocity_nonzero=False) == "walk"  # zero: walk in place first
    assert run(sm, 3.99, velocity_fresh=True) == "walk"
    assert run(sm, 4.0, velocity_fresh=True) == "hold"


def test_stale_velocity_gives_zero_then_hold():
    sm = standing()
    run(sm, 2.1, velocity_fresh=True, velocity_nonzero=True)
    assert run(sm, 2.2) == "walk" and "stale" in sm.reason
    assert run(sm, 3.2) == "hold"


def test_faults_damp_and_damp_is_latched():
    for kw, why in (
        (dict(state_age_s=0.06), "LowState stale"),
        (dict(state_age_s=None), "stale (never)"),
        (dict(pitch_rad=-1.2), "tilt"),
        (dict(state_finite=False), "not finite"),
        (dict(policy_fault="nan"), "policy fault"),
        (dict(estop=True), "e-stop"),
    ):
        sm = standing()
        assert run(sm, 2.5, **kw) == "damp", kw
        assert why in sm.reason
        assert run(sm, 3.0, velocity_fresh=True, velocity_nonzero=True, stand_requested=True) == "damp"


def test_estop_in_passive_damps_too():
    sm = SafetyStateMachine(safety=LIM, stand_duration_s=2.0)
    assert run(sm, 0.0, state_age_s=None, estop=True) == "damp"


STAND = SafetyConfig(stand_min_steady_s=0.5, stand_max_tilt_rad=0.2, stand_max_gyro_rad_s=0.3)


def test_stand_needs_a_steady_stream_first_so_start_up_gaps_are_waited_out():
    sm = SafetyStateMachine(safety=STAND, stand_duration_s=2.0)
    assert run(sm, 0.0, stand_requested=True) == "passive" and "steady for 0.00 s of 0.5 s" in sm.reason
    assert run(sm, 0.3, stand_requested=True) == "passive"
    assert run(sm, 0.35, state_age_s=0.071, stand_requested=True) == "passive"  # a 71 ms gap: no damp, restart wait
    assert sm.reason == "waiting for LowState"
    assert run(sm, 0.4, stand_requested=True) == "passive"
    assert run(sm, 0.89, stand_requested=True) == "passive"
    assert run(sm, 0.9, stand_requested=True) == "stand_up"


def test_stand_is_accepted_only_lying_level_and_still():
    sm = SafetyStateMachine(safety=STAND, stand_duration_s=2.0)
    run(sm, 0.0)
    assert run(sm, 1.0, roll_rad=0.5, stand_requested=True) == "passive"  # the restarted control that tipped
    assert "not lying level: roll 0.50" in sm.reason and "≤ 0.2" in sm.reason
    assert run(sm, 1.1, pitch_rad=-0.21, stand_requested=True) == "passive"
    assert run(sm, 1.2, gyro_rad_s=0.8, stand_requested=True) == "passive" and "still moving" in sm.reason
    assert run(sm, 1.3, roll_rad=0.19, pitch_rad=0.19, gyro_rad_s=0.29, stand_requested=True) == "stand_up"


def test_a_late_tick_turns_walk_into_hold_for_a_while_and_is_counted():
    sm = standing()
    assert run(sm, 2.1, velocity_fresh=True, velocity_nonzero=True) == "walk"
    assert run(sm, 2.12, velocity_fresh=True, velocity_nonzero=True, lateness_s=0.019) == "walk"  # within bound
    assert run(sm, 2.44, velocity_fresh=True, velocity_nonzero=True, lateness_s=0.03) == "hold"  # a 30 ms lag
    assert sm.reason.startswith("lag: tick started 30 ms late (bound 20 ms)") and sm.lag_events == 1
    assert run(sm, 3.43, velocity_fresh=True, velocity_nonzero=True) == "hold"  # lag_hold_s 1.0
    assert run(sm, 3.44, velocity_fresh=True, velocity_nonzero=True) == "walk"
    assert run(sm, 3.5, velocity_fresh=True, velocity_nonzero=True, lateness_s=0.05, state_age_s=0.06) == "damp"
    assert "LowState stale" in sm.reason and sm.lag_events == 2  # late and stale: damp, not hold


def test_estop_reason_names_its_source():
    sm = standing()
    assert run(sm, 2.5, estop=True, estop_source="remote L2+B") == "damp" and sm.reason == "e-stop (remote L2+B)"


def test_a_stall_longer_than_the_watchdog_waits_latches_damp_not_hold():
    """SIGSTOP of control for 1 s (fault suite): the watchdog damped the robot onto its belly; the resumed control must
    not lift it back with hold targets (an unramped stand-up), in any commanding mode. The gap between our LowCmds
    decides, not the lateness: two late ticks in a row (15 ms, then 45 ms late) are a 50 ms gap, under the watchdog's
    60 ms."""
    for mode_velocity in (True, False):  # walking, or holding
        sm = standing()
        if mode_velocity:
            assert run(sm, 2.1, velocity_fresh=True, velocity_nonzero=True) == "walk"
        late = dict(velocity_fresh=True, velocity_nonzero=mode_velocity)
        assert run(sm, 2.2, lateness_s=0.045, send_gap_s=0.05, **late) != "damp"
        assert run(sm, 2.26, lateness_s=0.039, send_gap_s=0.059, **late) != "damp"
        assert run(sm, 3.3, lateness_s=1.0, send_gap_s=1.02, **late) == "damp"
        assert sm.reason.startswith("stalled: no LowCmd for ≈ 1020 ms, over the watchdog's 60 ms")
        assert run(sm, 4.0, velocity_fresh=True, velocity_nonzero=True) == "damp"  # latched
