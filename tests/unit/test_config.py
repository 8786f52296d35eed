from __future__ import annotations

import pytest

from edge.common.config import ConfigError, load_config, resolve_path
from edge.controls.locomotion import load_policy_config


def test_shipped_configs_load():
    assert load_config("configs/sim.yaml").robot.interface == "lo"
    robot = load_config("configs/go2.yaml")
    assert robot.robot.dds_domain == 0 and robot.control.auto_stand is False


def test_overrides_apply_and_are_validated():
    cfg = load_config("configs/sim.yaml", {"navigator.execution": "open_loop"})
    assert cfg.navigator.execution == "open_loop"
    with pytest.raises(ConfigError, match="navigator.execution"):
        load_config("configs/sim.yaml", {"navigator.execution": "sideways"})


@pytest.mark.parametrize(
    "text, match",
    [
        ("safety: {damp_kd: -1}", "safety.damp_kd"),
        ("robot: {dds_domain: 1, interfce: lo}", "robot.interfce"),
        ("control: [1, 2", "not valid YAML"),
        ("- a\n- b", "mapping"),
    ],
)
def test_malformed_config_names_the_problem(tmp_path, text, match):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(p)


def test_missing_file_and_package():
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent/edge.yaml")
    with pytest.raises(ConfigError, match="not installed"):
        resolve_path("pkg://no_such_package_xyz/data")


def test_policy_config_checks_joint_names(tmp_path):
    text = (resolve_path("configs/policies/go2_robot_lab.yaml").read_text()).replace("RL_calf]", "RL_knee]")
    p = tmp_path / "p.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match="joint_order"):
        load_policy_config(p)


@pytest.mark.parametrize(
    "text, match",
    [
        ("safety: {max_vx_m_s: -1}", "safety.max_vx_m_s"),
        ("safety: {lowstate_max_age_s: .inf}", "safety.lowstate_max_age_s"),
        ("safety: {command_max_age_s: .nan}", "safety.command_max_age_s"),
        ("safety: {max_tilt_rad: 3.0}", "safety.max_tilt_rad"),
        ("safety: {damp_kd: .nan}", "safety.damp_kd"),
        ("safety: {damp_kd: 30}", "safety.damp_kd = 30: must be ≤ 8"),
        ("safety: {max_kd: 5, damp_kd: 6}", "damp_kd = 6.0 exceeds max_kd = 5.0"),
        ("safety: {quat_norm_sq_min: 1.2}", "safety.quat_norm_sq_min"),
        ("control: {stand_kp: 500}", "control.stand_kp = 500 exceeds safety.max_kp = 100"),
        ("odometry: {contact_threshold: -1}", "odometry.contact_threshold"),
    ],
)
def test_unsafe_control_settings_are_refused(tmp_path, text, match):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(p)


def test_foot_contact_threshold_is_the_robot_profiles():
    from edge.controls.odometry import leg_odometry

    assert leg_odometry(load_config("configs/sim.yaml")).contact_threshold == 15.0  # MuJoCo newtons
    assert leg_odometry(load_config("configs/go2.yaml")).contact_threshold == 20.0  # the Go2's raw units
    assert leg_odometry(load_config("configs/go2.yaml", {"odometry.contact_threshold": 33})).contact_threshold == 33


@pytest.mark.parametrize(
    "overrides, line",
    [  # the values that loaded without complaint and could fell the robot, each refused in one line
        ({"safety.max_kp": 1000}, "safety.max_kp = 1000: must be ≤ 100"),
        ({"safety.max_vx_m_s": 100}, "safety.max_vx_m_s = 100: must be ≤ 1"),
        ({"navigator.forward_speed_m_s": 50}, "navigator.forward_speed_m_s = 50: must be ≤ 1"),
        ({"safety.max_vx_m_s": 0.5, "navigator.forward_speed_m_s": 0.8}, "navigator.forward_speed_m_s = 0.8 exceeds"),
        ({"navigator.publish_hz": 1_000_000}, "navigator.publish_hz = 1000000: must be ≤ 50"),
        ({"control.stand_duration_s": 0.1}, "control.stand_duration_s = 0.1: must be ≥ 1"),
        ({"control.stand_kp": 500}, "control.stand_kp = 500 exceeds safety.max_kp = 100"),
        ({"safety.damp_kd": 0}, "safety.damp_kd = 0: must be ≥ 1"),
        ({"safety.watchdog_timeout_s": 0.5}, "safety.watchdog_timeout_s = 0.5: must be ≤ 0.08"),
        ({"safety.stand_max_tilt_rad": 1.0}, "safety.stand_max_tilt_rad = 1: must be ≤ 0.35"),
    ],
)
def test_values_that_can_fell_the_robot_are_refused_in_one_line(overrides, line):
    with pytest.raises(ConfigError) as e:
        load_config("configs/sim.yaml", overrides)
    assert line in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "edit, line",
    [
        (("kp: 20.0", "kp: 1000"), "kp = 1000: must be ≤ 100"),
        (("kd: 0.5", "kd: 50"), "kd = 50: must be ≤ 10"),
        (("rate_hz: 50", "rate_hz: 5000"), "rate_hz = 5000: must be 50 (the control loop's rate)"),
    ],
)
def test_policy_contract_bounds(tmp_path, edit, line):
    text = resolve_path("configs/policies/go2_robot_lab.yaml").read_text()
    assert edit[0] in text
    p = tmp_path / "p.yaml"
    p.write_text(text.replace(edit[0], edit[1]))
    with pytest.raises(ConfigError) as e:
        load_policy_config(p)
    assert line in str(e.value) and "\n" not in str(e.value)
