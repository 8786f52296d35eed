"""Configuration: frozen pydantic models loaded from YAML. A malformed file fails at load with the field named."""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.common.yaml_config import DEFAULT_CONFIG, DEFAULT_RUN_DIR, REPO_ROOT, ConfigError, config_path, read_yaml

__all__ = ["DEFAULT_CONFIG", "REPO_ROOT", "ConfigError", "load_config", "load_yaml_model", "resolve_path"]


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    run_dir: str = DEFAULT_RUN_DIR
    tcp: dict[str, str] = Field(default_factory=dict)


class RecorderConfig(Frozen):
    out_dir: str = "runs/recordings"  # persistent storage (not /run, which is RAM); one file per start
    max_mb: float = Field(500.0, gt=0)  # stop writing (and say so) beyond this size
    fsync_s: float = Field(1.0, gt=0)  # os.fsync at most this often: what a power cut may lose (a kill loses nothing)
    jpeg_quality: int = Field(80, ge=1, le=95)  # camera frames kept as Foxglove JPEG images (Pillow quality)


class RobotConfig(Frozen):
    dds_domain: int = Field(1, ge=0, le=232)
    interface: str = "lo"
    release_sport_mode: bool = False
    interface_wait_s: float = Field(60.0, ge=0, le=600)  # boot order: wait this long for the NIC to be up, logging


class RealtimeConfig(Frozen):
    """SCHED_FIFO and CPU placement for the processes whose table row asks for it (control, watchdog, simulator),
    in every profile, wherever the OS permits it (edge.common.realtime.configure_realtime)."""

    enabled: bool = True  # false: normal scheduling everywhere (the demo's comparison run)
    lock_memory: bool = True  # mlockall, where the memlock limit allows it


Finite = Annotated[float, Field(allow_inf_nan=False)]  # no NaN / inf


class SafetyConfig(Frozen):
    """Every safety threshold of the control loop and of the LowCmd watchdog, by name and unit: the one place for them
    (config section `safety`). Used by edge.controls.safety (state machine, command and target guards, damping),
    edge.controls.controller and edge.controls.watchdogd, and nowhere else. Ages are on the monotonic clock.
    Each field's `le=` is a hard bound a config can only tighten: a value that could fell the robot is refused at load
    with one line naming the field, the value and the bound. Sources of the defaults and bounds: docs/go2.md §5
    (limits, gains), §7 (safety practice), §11 (lost LowCmd, watchdog), §12 (remote)."""

    # staleness
    lowstate_max_age_s: Finite = Field(0.05, gt=0, le=0.1)  # older LowState: damp
    command_max_age_s: Finite = Field(0.15, gt=0, le=1.0)  # older velocityCommand: zero velocity at once
    zero_then_hold_s: Finite = Field(1.0, ge=0, le=10)  # zero / stale velocity this long: walk → hold
    # attitude and IMU sanity
    max_tilt_rad: Finite = Field(1.0, gt=0, le=1.6)  # |roll| or |pitch| above: damp
    quat_norm_sq_min: Finite = Field(0.5, gt=0, lt=1)  # |q|² of the IMU quaternion outside
    quat_norm_sq_max: Finite = Field(1.5, gt=1, le=4)  # [min, max]: state treated as not finite
    moving_threshold: Finite = Field(1e-3, ge=0, le=0.1)  # m/s or rad/s: a larger component means walk
    # stand-up: accepted only lying level, still, on a steady LowState stream (start-up gaps are tolerated in passive)
    stand_max_tilt_rad: Finite = Field(0.2, gt=0, le=0.35)  # "lying level": |roll| and |pitch| at most this
    stand_max_gyro_rad_s: Finite = Field(0.3, gt=0, le=1.0)  # "still": |body angular rate| at most this
    stand_min_steady_s: Finite = Field(0.5, ge=0, le=5)  # LowState fresh without a gap for this long first
    # loop timing: a tick this late (deadlines missed count whole periods) is a lag event: walk → hold
    max_tick_lateness_s: Finite = Field(0.02, gt=0, le=0.1)
    lag_hold_s: Finite = Field(1.0, ge=0, le=10)  # after a lag event, hold at least this long before walking again
    # joint targets
    soft_limit_factor: Finite = Field(0.9, gt=0, le=1)  # targets within this fraction of the range
    max_target_step_rad: Finite = Field(0.3, gt=0, le=0.5)  # largest target change per tick, rad
    # velocity command (policy input): limits and slew per tick. Hard bounds: the command ranges Unitree's Go2
    # policies are trained on (|vx|, |wz| ≤ 1, docs/go2.md §5)
    max_vx_m_s: Finite = Field(1.0, gt=0, le=1.0)
    max_vy_m_s: Finite = Field(0.5, gt=0, le=1.0)
    max_wz_rad_s: Finite = Field(1.0, gt=0, le=1.0)
    slew_vx_m_s: Finite = Field(0.05, gt=0, le=0.2)  # per tick
    slew_vy_m_s: Finite = Field(0.04, gt=0, le=0.2)
    slew_wz_rad_s: Finite = Field(0.10, gt=0, le=0.4)
    # gains: every command sent is within these (N·m/rad, N·m·s/rad)
    max_kp: Finite = Field(100.0, gt=0, le=100)
    max_kd: Finite = Field(10.0, gt=0, le=10)
    # damping: kp 0, kd damp_kd, sent every tick (also the passive command, as Unitree's Go2 "Passive" state); on
    # leaving control, from the LowCmd watchdog, and after any stop (systemd ExecStopPost)
    damp_kd: Finite = Field(3.0, ge=1, le=8)
    exit_damp_s: Finite = Field(0.2, ge=0, le=5)  # controlsd, on its way out
    stop_post_damp_s: Finite = Field(1.0, ge=0, le=10)  # edge.controls.damp after any stop
    # LowCmd watchdog (edge.controls.watchdogd): no LowCmd from control for this long → damping (≤ 100 ms in all)
    watchdog_timeout_s: Finite = Field(0.06, ge=0.045, le=0.08)

    @model_validator(mode="after")
    def _gains_within_bounds(self):
        if self.damp_kd > self.max_kd:
            raise ValueError(f"damp_kd = {self.damp_kd} exceeds max_kd = {self.max_kd}")
        if self.stand_max_tilt_rad >= self.max_tilt_rad:
            raise ValueError(f"stand_max_tilt_rad = {self.stand_max_tilt_rad} must be below max_tilt_rad")
        return self


class ControlConfig(Frozen):
    policy: str = "configs/policies/go2_robot_lab.yaml"
    backend: Literal["onnxruntime", "tensorrt", "auto"] = "onnxruntime"  # auto: what `make jetson-check` measured
    placement: str = "/opt/edge/engines/policy/placement.json"  # its choice (lower p99 while the VLM prefills)
    auto_stand: bool = True  # simulator: stand up by itself; robot: wait for `edge stand`
    stand_duration_s: Finite = Field(2.0, ge=1.0, le=10)  # smoothstep from the measured pose to the default
    stand_kp: Finite = Field(50.0, ge=10)  # stand-up and hold gains (≤ safety.max_kp / max_kd)
    stand_kd: Finite = Field(3.5, ge=0.5)


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
    publish_hz: float = Field(20.0, ge=1, le=50, allow_inf_nan=False)  # at most the control rate
    forward_speed_m_s: float = Field(0.5, gt=0, le=1.0, allow_inf_nan=False)  # ≤ safety.max_vx_m_s too
    turn_rate_rad_s: float = Field(math.pi / 6, gt=0, le=1.0, allow_inf_nan=False)  # ≤ safety.max_wz_rad_s too
    # Bounded work per tick: at most this many sentences are taken from actionText per tick (the rest wait in the
    # socket), and at most max_queue actions wait; beyond, a sentence gets a `rejected` result naming the bound.
    max_texts_per_tick: int = Field(50, ge=1, le=1000)
    max_queue: int = Field(32, ge=1, le=10000)
    # No controlState for this long: control is gone; queued and new sentences are rejected (s, monotonic clock).
    control_lost_s: float = Field(0.5, gt=0, le=10.0, allow_inf_nan=False)


class SimConfig(Frozen):
    physics_dt: float = Field(0.0025, gt=0)
    state_every_steps: int = Field(2, ge=1)  # 0.0025 × 2 → LowState at 200 Hz
    truth_hz: float = Field(50.0, gt=0)
    start: Literal["lying", "standing"] = "lying"
    landmarks: bool = True
    nav_layout: int | None = Field(None, ge=0)  # navigation world (drivers/sim/nav_world.py layout seed) instead
    start_pose: tuple[Finite, Finite, Finite] | None = None  # base x, y (m), yaw (rad) in the world frame; else origin
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


class RemoteConfig(Frozen):
    """Every limit of the remote VLM link, by name and unit (config section `remote`): the robot checks them before
    sending and on every reply, the GPU server before any work. Wire format and the facts behind the numbers:
    docs/remote.md. A request is ONE ZeroMQ message part, so the transport's per-part cap bounds all of it."""

    # requests (robot → server)
    max_request_bytes: int = Field(12 * 2**20, gt=0)  # bytes: 8-byte prefix + header + frame bytes, one part
    max_header_bytes: int = Field(64 * 2**10, ge=256)  # bytes of JSON header, checked before it is parsed
    max_frames: int = Field(16, ge=1)  # per request (NaVILA sends 8, StreamVLN 1)
    max_side_px: int = Field(1920, ge=1)  # largest frame height or width, px
    max_pixels: int = Field(1920 * 1920, ge=1)  # decoded pixels per request, summed over frames, px
    max_instruction_chars: int = Field(8192, ge=1)
    # replies (server → robot)
    max_reply_bytes: int = Field(64 * 2**10, ge=1024)  # bytes of one reply, checked before it is parsed
    max_answer_chars: int = Field(4096, ge=1)  # answer text; the bus caps it at edge.msg.messages.MAX_TEXT too
    # time (the robot's query deadline is vlm.remote.timeout_s; each request carries what is left of it)
    heartbeat_s: float = Field(1.0, gt=0, allow_inf_nan=False)  # ZMTP PING interval on both ends
    heartbeat_timeout_s: float = Field(3.0, gt=0, allow_inf_nan=False)  # no traffic this long: connection closed
    handshake_timeout_s: float = Field(5.0, gt=0, allow_inf_nan=False)  # CURVE handshake must finish within
    # server
    max_sessions: int = Field(32, ge=1)  # robots with state on the server; idle ones are evicted first
    session_idle_s: float = Field(600.0, gt=0, allow_inf_nan=False)  # a robot's state is dropped after this idle
    batch_max: int = Field(8, ge=1)  # robots answered in one model call (batchable models; 1 = serial)
    batch_wait_ms: float = Field(8.0, ge=0, allow_inf_nan=False)  # wait this long to fill a batch …
    batch_wait_share: float = Field(0.1, ge=0, le=1, allow_inf_nan=False)  # … or this share of the last model call
    lone_wait_ms: float = Field(2.0, ge=0, allow_inf_nan=False)  # … but a lone request only this long
    key_reload_s: float = Field(1.0, gt=0, allow_inf_nan=False)  # the clients folder is checked this often
    warn_every_s: float = Field(10.0, gt=0, allow_inf_nan=False)  # a repeated warning is logged at most this often

    @property
    def largest_frame_bytes(self) -> int:
        """Raw RGB bytes of the largest frame the limits allow (max_side_px², capped by max_pixels)."""
        return min(self.max_side_px**2, self.max_pixels) * 3

    @model_validator(mode="after")
    def _largest_frame_fits(self):
        need = 8 + self.max_header_bytes + self.largest_frame_bytes  # 8-byte prefix + header + one raw frame
        if self.max_request_bytes < need:
            raise ValueError(
                f"max_request_bytes {self.max_request_bytes} < {need}: the largest frame the limits allow "
                f"({self.largest_frame_bytes} bytes raw) would never arrive"
            )
        if self.max_reply_bytes < 4 * self.max_answer_chars + 1024:  # UTF-8 ≤ 4 bytes/char + the other fields
            raise ValueError(f"max_reply_bytes {self.max_reply_bytes} < 4 × max_answer_chars + 1024")
        return self


class VlmConfig(Frozen):
    model: Literal["navila", "streamvln", "fixed"] = "navila"
    checkpoint: str | None = None  # NaVILA / StreamVLN folder (required unless model is fixed)
    vision_manifest: str | None = None  # vision encoder built by build_engines.py (else PyTorch)
    generator_backend: Literal["transformers", "tensorrt_llm"] = "transformers"
    engine_dir: str | None = None  # TensorRT-LLM engine (generator_backend tensorrt_llm)
    trtllm_runner: Literal["python", "cpp"] = "python"  # cpp: ModelRunnerCpp, KV capped, mmap on Jetson (16 GB Orins)
    fixed_answers: list[str] = Field(default_factory=list)
    fixed_latency_s: float = Field(0.0, ge=0)
    # observations: a frame per 0.5 s of motion (Isaac), per executed action, or per executed 25 cm / 15° primitive
    # plus each queried frame (Habitat, NaVILA's VLN-CE rule; edge.vlm.scheduler, docs/navigation.md §8)
    history: Literal["motion", "step", "primitive"] = "motion"
    history_period_s: float = Field(0.5, gt=0)
    overlap: bool = True  # ask early so the answer is ready when the action ends
    overlap_margin_s: float = Field(0.15, ge=0)
    max_invalid: int = Field(3, ge=1)  # consecutive unparseable answers before giving up (robot holds)
    max_queries: int = Field(200, ge=1)
    remote: RemoteVlmConfig | None = None


class CalibrationConfig(Frozen):
    """Where this robot's calibration lives (calibration/store.py, written by `edge calibrate …`)."""

    file: str = "runs/calibration/sim.yaml"
    robot: str = "sim"  # robot id: one file per robot
    required: bool = False  # robot profile: control does not start without it


class EdgeConfig(Frozen):
    profile: Literal["sim", "robot"] = "sim"
    bus: BusConfig = BusConfig()
    robot: RobotConfig = RobotConfig()
    realtime: RealtimeConfig = RealtimeConfig()
    safety: SafetyConfig = SafetyConfig()
    control: ControlConfig = ControlConfig()
    odometry: OdometryConfig = OdometryConfig()
    parser: ParserConfig = ParserConfig()
    navigator: NavigatorConfig = NavigatorConfig()
    sim: SimConfig = SimConfig()
    camera: CameraConfig = CameraConfig()
    vlm: VlmConfig = VlmConfig()
    remote: RemoteConfig = RemoteConfig()
    recorder: RecorderConfig = RecorderConfig()
    calibration: CalibrationConfig = CalibrationConfig()

    @model_validator(mode="after")
    def _within_safety_bounds(self):
        """Cross-section bounds: stand gains within the gain bounds, navigator speeds within the command limits."""
        c, n, lim = self.control, self.navigator, self.safety
        for field, value, bound_name, bound in (
            ("control.stand_kp", c.stand_kp, "safety.max_kp", lim.max_kp),
            ("control.stand_kd", c.stand_kd, "safety.max_kd", lim.max_kd),
            ("navigator.forward_speed_m_s", n.forward_speed_m_s, "safety.max_vx_m_s", lim.max_vx_m_s),
            ("navigator.turn_rate_rad_s", n.turn_rate_rad_s, "safety.max_wz_rad_s", lim.max_wz_rad_s),
        ):
            if value > bound:
                raise ValueError(f"{field} = {value:g} exceeds {bound_name} = {bound:g}")
        return self


def load_yaml_model(model: type[BaseModel], path: str | Path, overrides: dict | None = None):
    data = read_yaml(path, overrides)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(explain(model, Path(path), e, overrides or {})) from None


_BOUNDS = {"less_than_equal": "≤", "less_than": "<", "greater_than_equal": "≥", "greater_than": ">"}


def _num(v) -> str:
    return f"{v:g}" if isinstance(v, float) else repr(v)


def describe_error(err) -> str:
    """One pydantic error as 'field = value: must be ≤ bound' (or the validator's own sentence), without newlines."""
    field = ".".join(map(str, err["loc"]))
    ctx = err.get("ctx") or {}
    if err["type"] in _BOUNDS:
        bound = next(iter(ctx.values()))
        return f"{field} = {_num(err['input'])}: must be {_BOUNDS[err['type']]} {_num(bound)}"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "value_error":  # a model validator: its message names the fields
        return f"{field + ': ' if field else ''}{msg}"
    value = f" = {_num(err['input'])}" if err["type"] not in ("missing", "extra_forbidden") else ""
    return f"{field}{value}: {msg}".replace("\n", " ")


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the section a location points into (for the hint on an unknown key)."""
    for key in loc[:-1]:
        field = model.model_fields.get(str(key))
        ann = getattr(field, "annotation", None) if field is not None else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return sorted(model.model_fields)


def explain(model: type[BaseModel], path: Path, e: ValidationError, overrides: dict) -> str:
    """One line: each error blamed on the --set override that caused it, else on the file; an unknown key gets its
    section's known fields as a hint."""
    parts = []
    for err in e.errors():
        loc = tuple(err["loc"])
        dotted = ".".join(map(str, loc))
        related = lambda k: dotted == k or dotted.startswith(k + ".") or k.startswith(dotted + ".")  # noqa: E731
        culprit = next((k for k in overrides if dotted and related(k)), None)
        if err["type"] == "extra_forbidden":
            known = _fields_at(model, loc)
            section = ".".join(map(str, loc[:-1])) or "the top level"
            what = f"{dotted}: unknown field" + (f" (known in {section}: {', '.join(known)})" if known else "")
        else:
            what = describe_error(err)
        if culprit:
            parts.append(f"--set {culprit}={overrides[culprit]!r}: {what}")
        elif dotted:
            parts.append(f"{path}: {what}")
        else:  # a check across fields: the file and every override share the blame
            parts.append(f"{path}" + "".join(f" with --set {k}={v!r}" for k, v in overrides.items()) + f": {what}")
    return "; ".join(parts)


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> EdgeConfig:
    return load_yaml_model(EdgeConfig, config_path(path), overrides)
