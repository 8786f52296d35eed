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
        ("safety: {damp_kd: 30}", "damp_kd 30.0 exceeds max_kd"),
        ("safety: {quat_norm_sq_min: 1.2}", "safety.quat_norm_sq_min"),
        ("control: {stand_kp: 500}", "exceed safety.max_kp"),
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
