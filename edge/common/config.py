"""Configuration: frozen pydantic models loaded from YAML. A malformed file fails at load with the field named."""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "configs" / "sim.yaml"


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConfigError(ValueError):
    pass


def resolve_path(ref: str, base: Path = REPO_ROOT) -> Path:
    """'pkg://package/sub/path' → a file shipped inside an installed package (found without importing it);
    a relative path → relative to the repository root."""
    if ref.startswith("pkg://"):
        package, _, rest = ref[6:].partition("/")
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise ConfigError(f"{ref}: package {package!r} is not installed")
        return Path(spec.origin).parent / rest
    p = Path(os.path.expanduser(ref))
    return p if p.is_absolute() else base / p


class BusConfig(Frozen):
    run_dir: str = "/tmp/edge"
    tcp: dict[str, str] = Field(default_factory=dict)


class RecorderConfig(Frozen):
    out_dir: str = "runs/recordings"  # persistent storage (not /run, which is RAM); one file per start
    max_mb: float = Field(500.0, gt=0)  # stop writing (and say so) beyond this size


class RobotConfig(Frozen):
    dds_domain: int = Field(1, ge=0, le=232)
    interface: str = "lo"
    release_sport_mode: bool = False


Finite = Annotated[float, Field(allow_inf_nan=False)]  # no NaN / inf


class SafetyConfig(Frozen):
    """Every safety threshold of the control loop, by name and unit: the one place for them (config section
    `safety`). Used by edge.controls.safety (state machine, command and target guards, damping) and nowhere else.
    Ages are on the monotonic clock. Sources of the defaults: docs/go2.md §7 (safety practice), §5 (limits, gains)."""

    # staleness
    lowstate_max_age_s: Finite = Field(0.05, gt=0, le=0.5)  # older LowState: damp
    command_max_age_s: Finite = Field(0.15, gt=0, le=1.0)  # older velocityCommand: zero velocity at once
    zero_then_hold_s: Finite = Field(1.0, ge=0, le=10)  # zero / stale velocity this long: walk → hold
    # attitude and IMU sanity
    max_tilt_rad: Finite = Field(1.0, gt=0, le=1.6)  # |roll| or |pitch| above: damp
    quat_norm_sq_min: Finite = Field(0.5, gt=0, lt=1)  # |q|² of the IMU quaternion outside
    quat_norm_sq_max: Finite = Field(1.5, gt=1)  # [min, max]: state treated as not finite
    moving_threshold: Finite = Field(1e-3, ge=0)  # m/s or rad/s: a larger component means walk
    # joint targets
    soft_limit_factor: Finite = Field(0.9, gt=0, le=1)  # targets within this fraction of the range
    max_target_step_rad: Finite = Field(0.3, gt=0, le=1.0)  # largest target change per tick, rad
    # velocity command (policy input): limits and slew per tick
    max_vx_m_s: Finite = Field(1.0, gt=0)
    max_vy_m_s: Finite = Field(0.5, gt=0)
    max_wz_rad_s: Finite = Field(1.5, gt=0)
    slew_vx_m_s: Finite = Field(0.05, gt=0)  # per tick
    slew_vy_m_s: Finite = Field(0.04, gt=0)
    slew_wz_rad_s: Finite = Field(0.10, gt=0)
    # gains: every command sent is within these (N·m/rad, N·m·s/rad)
    max_kp: Finite = Field(200.0, gt=0)
    max_kd: Finite = Field(20.0, gt=0)
    # damping: kp 0, kd damp_kd, sent every tick; on leaving control and after any stop (systemd ExecStopPost)
    damp_kd: Finite = Field(3.0, gt=0)
    exit_damp_s: Finite = Field(0.2, ge=0, le=5)  # controlsd, on its way out
    stop_post_damp_s: Finite = Field(1.0, ge=0, le=10)  # edge.controls.damp after any stop

    @model_validator(mode="after")
    def _gains_within_bounds(self):
        if self.damp_kd > self.max_kd:
            raise ValueError(f"damp_kd {self.damp_kd} exceeds max_kd {self.max_kd}")
        return self


class ControlConfig(Frozen):
    policy: str = "configs/policies/go2_robot_lab.yaml"
    backend: Literal["onnxruntime", "tensorrt"] = "onnxruntime"
    auto_stand: bool = True  # simulator: stand up by itself; robot: wait for `edge stand`
    stand_duration_s: Finite = Field(2.0, gt=0, le=10)  # smoothstep from the measured pose to the default
    stand_kp: Finite = Field(50.0, ge=0)  # stand-up and hold gains (≤ safety.max_kp / max_kd)
    stand_kd: Finite = Field(3.5, ge=0)


class OdometryConfig(Frozen):
    # foot_force above which a foot is in stance; None: the robot profile's value
    # (drivers.go2.constants.FOOT_CONTACT_THRESHOLD)
    contact_threshold: Finite | None = Field(None, gt=0)


class ParserConfig(Frozen):
    """How language becomes actions (edge.navigation.parse.ActionParser): the one configuration that the VLM process
    (which counts answers and ends episodes) and the navigator (which executes them) both parse with."""

    navila_style: Literal["habitat", "isaac"] = "habitat"  # NaVILA's Habitat regexes or its Isaac substring tests
    max_forward_m: float = Field(3.0, gt=0, allow_inf_nan=False)  # longer: Invalid (robot holds)
    max_turn_rad: float = Field(2 * math.pi, gt=0, allow_inf_nan=False)  # larger: Invalid
    streamvln_max_actions: int = Field(4, ge=1)  # StreamVLN answers cut to this many actions


class NavigatorConfig(Frozen):
    execution: Literal["open_loop", "closed_loop"] = "closed_loop"
    publish_hz: float = Field(20.0, gt=0)
    forward_speed_m_s: float = Field(0.5, gt=0)
    turn_rate_rad_s: float = Field(math.pi / 6, gt=0)


class SimConfig(Frozen):
    physics_dt: float = Field(0.0025, gt=0)
    state_every_steps: int = Field(2, ge=1)  # 0.0025 × 2 → LowState at 200 Hz
    truth_hz: float = Field(50.0, gt=0)
    start: Literal["lying", "standing"] = "lying"
    landmarks: bool = True
    camera_hz: float = Field(0.0, ge=0)  # head camera frames on cameraFrame; 0 = no rendering
    camera_width: int = Field(320, gt=0)
    camera_height: int = Field(240, gt=0)


class CameraConfig(Frozen):
    serial: str | None = None  # RealSense serial; None = first device
    playback: str | None = None  # a .db3 recording instead of a device
    width: int = 640
    height: int = 480
    fps: int = 30
    depth: bool = False


class RemoteVlmConfig(Frozen):
    endpoint: str  # tcp://gpu-server:5560
    client_secret_key: str  # our key pair (edge.vlm.remote keys)
    server_public_key: str
    timeout_s: float = Field(3.0, gt=0)
    jpeg_quality: int | None = Field(None, ge=1, le=95)  # binary JPEG frames for slow links (Wi-Fi); None = raw


class VlmConfig(Frozen):
    model: Literal["navila", "streamvln", "fixed"] = "navila"
    checkpoint: str | None = None  # NaVILA / StreamVLN folder (required unless model is fixed)
    vision_manifest: str | None = None  # vision encoder built by build_engines.py (else PyTorch)
    generator_backend: Literal["transformers", "tensorrt_llm"] = "transformers"
    engine_dir: str | None = None  # TensorRT-LLM engine (generator_backend tensorrt_llm)
    fixed_answers: list[str] = Field(default_factory=list)
    fixed_latency_s: float = Field(0.0, ge=0)
    history: Literal["motion", "step"] = "motion"  # a frame per 0.5 s of motion, or per executed action
    history_period_s: float = Field(0.5, gt=0)
    overlap: bool = True  # ask early so the answer is ready when the action ends
    overlap_margin_s: float = Field(0.15, ge=0)
    max_invalid: int = Field(3, ge=1)  # consecutive unparseable answers before giving up (robot holds)
    max_queries: int = Field(200, ge=1)
    remote: RemoteVlmConfig | None = None


class EdgeConfig(Frozen):
    profile: Literal["sim", "robot"] = "sim"
    bus: BusConfig = BusConfig()
    robot: RobotConfig = RobotConfig()
    safety: SafetyConfig = SafetyConfig()
    control: ControlConfig = ControlConfig()
    odometry: OdometryConfig = OdometryConfig()
    parser: ParserConfig = ParserConfig()
    navigator: NavigatorConfig = NavigatorConfig()
    sim: SimConfig = SimConfig()
    camera: CameraConfig = CameraConfig()
    vlm: VlmConfig = VlmConfig()
    recorder: RecorderConfig = RecorderConfig()

    @model_validator(mode="after")
    def _stand_gains_within_safety_bounds(self):
        c, lim = self.control, self.safety
        if c.stand_kp > lim.max_kp or c.stand_kd > lim.max_kd:
            raise ValueError(
                f"control.stand_kp / stand_kd {c.stand_kp} / {c.stand_kd} exceed safety.max_kp / max_kd "
                f"{lim.max_kp} / {lim.max_kd}"
            )
        return self


def load_yaml_model(model: type[BaseModel], path: str | Path, overrides: dict | None = None):
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at top level, got {type(data).__name__}")
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    try:
        return model.model_validate(data)
    except ValidationError as e:
        lines = [f"  {'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()]
        raise ConfigError(f"{path}: invalid {model.__name__}:\n" + "\n".join(lines)) from None


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> EdgeConfig:
    return load_yaml_model(EdgeConfig, path or os.environ.get("EDGE_CONFIG") or DEFAULT_CONFIG, overrides)
