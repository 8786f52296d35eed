"""Every bus message, and the topic registry (TOPICS): the one place for names, schemas, rates and freshness.

Rules: SI units unless the field name says otherwise; add fields with defaults, never rename or retype.
The envelope (topic, seq, sender monotonic time) is added by edge.msg.bus, not stored in the models.
Every number is bounded by its schema: no NaN or infinity anywhere (Msg), and sizes, counts and ids within the
ranges their consumers can handle, so a malformed message is refused by the bus (edge.msg.bus.decode) instead of
reaching a process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Msg(BaseModel):
    # allow_inf_nan=False: every float field of every message is finite (a NaN pose or speed is refused on the bus)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    def payload_size(self) -> int:
        """Bytes of raw payload after the header (camera pixels); 0 for every other message."""
        return 0


# ---- navigation ---------------------------------------------------------------------------------------------

MAX_TEXT = 4096
MAX_NAME = 128
Source = Literal["operator", "script", "vlm"]
QueryId = Annotated[int, Field(ge=-1, lt=1 << 62)]


class ActionText(Msg):
    """A mid-level action in language: a VLM answer, or an operator / script standing in for it.

    (sender, query_id) names the sentence uniquely: sender is the sending session ("vlmd-4711-9f3a",
    "operator-5120-07bc": edge.msg.bus.session_id), query_id counts that session's sentences from 1."""

    text: str = Field(max_length=MAX_TEXT)
    source: Source = "operator"
    grammar: Literal["navila", "streamvln"] = "navila"
    query_id: QueryId = -1
    sender: str = Field("", max_length=MAX_NAME)


class VelocityCommand(Msg):
    """Body-frame velocity setpoint for the locomotion policy."""

    vx_m_s: float = Field(allow_inf_nan=False)
    vy_m_s: float = Field(0.0, allow_inf_nan=False)
    wz_rad_s: float = Field(allow_inf_nan=False)
    action_id: int = -1


class Odometry(Msg):
    """The robot's own pose estimate (IMU yaw + leg kinematics); never simulator truth."""

    x_m: float
    y_m: float
    yaw_rad: float
    vx_m_s: float = 0.0
    vy_m_s: float = 0.0
    wz_rad_s: float = 0.0
    stance: tuple[bool, bool, bool, bool] = (False, False, False, False)


ExecutionMode = Literal["open_loop", "closed_loop"]
ActionKind = Literal["forward", "turn", "stop", "invalid"]


class ActionResult(Msg):
    """One finished (or refused) action, with what was asked and what the robot believes it did."""

    action_id: int
    text: str
    kind: ActionKind
    execution: ExecutionMode
    commanded: float  # metres for forward, radians for turn, 0 for stop/invalid
    estimated: float  # same unit, from the robot's own odometry
    start_mono_ns: int = Field(ge=0)
    end_mono_ns: int = Field(ge=0)
    # rejected: never started (control not accepting commands, queue full), the reason says why
    outcome: Literal["completed", "timeout", "blocked", "preempted", "invalid", "rejected"]
    reason: str = ""
    query_id: QueryId = -1  # the ActionText this action came from: (sender, query_id)
    sender: str = Field("", max_length=MAX_NAME)
    source: Source = "operator"


class NavigatorStatus(Msg):
    state: Literal["idle", "executing", "holding"]
    execution: ExecutionMode
    queue_len: int = Field(ge=0)
    current_action_id: int = -1
    current_query_id: QueryId = -1
    current_sender: str = Field("", max_length=MAX_NAME)
    current_text: str = ""
    actions_done: int = Field(0, ge=0)
    invalid_texts: int = Field(0, ge=0)
    rejected_texts: int = Field(0, ge=0)  # sentences refused (control not accepting, queue full)
    remaining_s: float = Field(0.0, ge=0)  # estimated time until the current and queued actions are done
    vlm_wait_s: float = Field(0.0, ge=0)  # total time the robot stood idle between VLM actions, waiting for answers
    vlm_waits: int = Field(0, ge=0)  # how many such waits


class Instruction(Msg):
    """A navigation instruction for the VLM ("walk past the sofa and stop at the door"); starts a new episode."""

    text: str = Field(min_length=1, max_length=2000)


class VlmOutput(Msg):
    """One VLM query: the raw answer, the frames it saw and where the time went."""

    query_id: QueryId
    family: str
    text: str
    frame_ids: tuple[int, ...]
    trigger: Literal["idle", "early"]  # robot idle, or launched early to overlap the running action
    launched_mono_ns: int = Field(ge=0)
    vision_ms: float = Field(ge=0)
    prefill_ms: float = Field(ge=0)
    decode_ms: float = Field(ge=0)
    total_ms: float = Field(ge=0)
    vision_calls: int = Field(ge=0)
    cache_hits: int = Field(ge=0)
    new_tokens: int = Field(ge=0)
    remote: bool = False
    error: str = ""
    episode_over: str = ""  # why the episode ended with this answer (STOP, too many invalid); "" = going on


# ---- control --------------------------------------------------------------------------------------------------

ControlMode = Literal["passive", "stand_up", "hold", "walk", "damp"]


class ControlState(Msg):
    """Published by the 50 Hz loop every tick: what it did and why."""

    mode: ControlMode
    reason: str
    tick: int = Field(ge=0)
    missed_ticks: int = Field(ge=0)
    period_ms: float = Field(ge=0)  # measured start-to-start period of this tick
    lateness_ms: float  # start of this tick minus its deadline
    work_ms: float = Field(ge=0)  # compute time of the previous tick
    vx_m_s: float  # velocity command applied to the policy this tick
    vy_m_s: float
    wz_rad_s: float
    roll_rad: float = 0.0
    pitch_rad: float = 0.0
    lowstate_age_ms: float = -1.0
    boot_id: str = ""  # random per control process start: a new one means control restarted (navigator drops all)
    lag_events: int = 0  # ticks that started later than safety.max_tick_lateness_s, since start
    last_lag_ms: float = 0.0  # lateness of the latest one
    remote: str = ""  # wireless-remote keys held ("L2+B"), from the LowState used this tick
    realtime: str = ""  # what the process got: "SCHED_FIFO 80, cpus 2-3, memory locked"


class WatchdogState(Msg):
    """The LowCmd watchdog (edge.controls.watchdogd), ~10 Hz and on change: whether it is damping because control's
    LowCmd stream stopped."""

    state: Literal["waiting", "watching", "damping"]  # waiting: no LowCmd from control seen yet
    reason: str
    control_age_ms: float = -1.0  # age of control's newest LowCmd (-1: none yet)
    stops: int = 0  # how often control's stream stopped
    damping_sent: int = 0
    reaction_ms: float = -1.0  # latest stop: control's last LowCmd → the first damping command written
    realtime: str = ""


class Estop(Msg):
    """Operator emergency stop: control damps and stays damped until restarted."""

    reason: str = "operator"


class OperatorCommand(Msg):
    """Operator confirmation steps on the real robot (the simulator profile stands up by itself)."""

    command: Literal["stand"]


# ---- step records (what a process consumed in one tick, for `edge replay`) -----------------------------------------
# A timer-driven process reads the newest sample of its latest-only topics at its own tick; which sample that was
# cannot be reconstructed from the recorded streams (it depends on microseconds of transport). So each replayable
# process publishes the inputs its pure step consumed, once per tick, before that tick's outputs; the recorder keeps
# them, and edge.tools.replay feeds them to the same step in lock-step and diffs the outputs.


class NavigatorStep(Msg):
    """One navigatord tick's inputs (edge.navigation.navigatord.NavigatorCore.step)."""

    tick: int = Field(ge=0)  # deadline index of the process's Ratekeeper
    start_s: float = Field(ge=0)  # the tick's start, monotonic s (the executor's clock)
    late_s: float = Field(0.0, ge=0)  # how late it started after the first deadline it serves (realtime.Tick.late_s)
    now_ns: int = Field(ge=0)  # monotonic ns (ages, action start / end stamps)
    texts: tuple[ActionText, ...] = ()  # drained from actionText this tick, in order
    pose_fresh: bool = False  # a fresh odometry sample was there; then x, y, yaw are its pose
    x_m: float = 0.0
    y_m: float = 0.0
    yaw_rad: float = 0.0
    control_mode: ControlMode | Literal[""] = ""  # "" = no fresh controlState
    control_boot: str = Field("", max_length=MAX_NAME)  # the fresh controlState's boot_id (new: control restarted)
    # why control does not accept commands now ("" = it does): edge.navigation.action_queue.control_refusal of the
    # newest controlState at this tick; queued and new sentences are then rejected with it
    control_refusal: str = Field("", max_length=MAX_TEXT)


class VlmAnswerIn(Msg):
    """What the inference (local model or GPU server) returned for one query, as the VLM step received it."""

    query_id: QueryId
    ok: bool  # False: the query failed (error says why); text and timings are then empty
    text: str = Field("", max_length=MAX_TEXT)
    frame_ids: tuple[int, ...] = ()
    vision_ms: float = Field(0.0, ge=0)
    prefill_ms: float = Field(0.0, ge=0)
    decode_ms: float = Field(0.0, ge=0)
    vision_calls: int = Field(0, ge=0)
    cache_hits: int = Field(0, ge=0)
    new_tokens: int = Field(0, ge=0)
    error: str = Field("", max_length=MAX_TEXT)


class VlmStep(Msg):
    """One vlmd tick's inputs (edge.vlm.vlmd.VlmCore.step); the model's answer is an input, not recomputed."""

    tick: int = Field(ge=0)
    start_s: float = Field(ge=0)
    now_ns: int = Field(ge=0)
    family: str = Field(max_length=MAX_NAME)  # the model family answering (navila, streamvln, fixed)
    remote: bool = False
    sender: str = Field("", max_length=MAX_NAME)  # this vlmd session's ActionText.sender (edge.msg.bus.session_id)
    instructions: tuple[str, ...] = ()  # drained from instruction this tick, in order
    frame_id: int = Field(-1, ge=-1)  # the current camera frame (fresh rgb8); -1 = none
    control_mode: ControlMode | Literal[""] = ""
    status: tuple[NavigatorStatus, ...] = ()  # the fresh navigatorStatus: none or one (no nulls in records)
    status_mono_ns: int = Field(0, ge=0)
    results: tuple[ActionResult, ...] = ()  # drained from actionResult this tick
    answers: tuple[VlmAnswerIn, ...] = ()  # polled from the inference this tick: none or one


# ---- health ----------------------------------------------------------------------------------------------------

ProcessStateName = Literal["starting", "loading", "ready", "degraded", "stopping", "failed"]


class ProcessState(Msg):
    """Every process's health, about twice a second and at once on a change (edge.system.health): the one readiness
    protocol the launcher, `make demo`, the tests, the CLI and systemd (READY=1) wait on.

    starting: sockets open, setting up; loading: slow work (model load, engine deserialise), `progress` 0–1 when
    known; ready: doing its job; degraded: running but impaired (reason says how); stopping; failed (reason: why).
    cpu_percent / rss_mb are the process's own (all threads; 100 = one core)."""

    name: str = Field(min_length=1, max_length=MAX_NAME)
    state: ProcessStateName
    reason: str = Field("", max_length=MAX_TEXT)
    progress: float = Field(-1.0, ge=-1.0, le=1.0)  # loading fraction; -1 = unknown
    pid: int = Field(ge=0)
    host: str = Field("", max_length=MAX_NAME)
    uptime_s: float = Field(ge=0)
    state_s: float = Field(ge=0)  # time in this state
    cpu_percent: float = Field(0.0, ge=0)
    rss_mb: float = Field(0.0, ge=0)
    detail: dict[str, str] = Field(default_factory=dict, max_length=32)  # e.g. vlmd: model, backend, episode


# ---- simulator (reports only) ----------------------------------------------------------------------------------


class SimTruth(Msg):
    """Ground-truth base pose from the simulator. For reports and tests only, never for control."""

    sim_time_s: float
    x_m: float
    y_m: float
    z_m: float
    roll_rad: float
    pitch_rad: float
    yaw_rad: float
    fallen: bool
    qpos: tuple[float, ...] = ()  # full MuJoCo qpos (base + joints), for the head-camera renderer
    remote: str = ""  # wireless-remote keys the simulator is holding in LowState ("L2+B"), from simRemote
    realtime: str = ""  # what the simulator process got (scheduling)


class SimRemote(Msg):
    """Simulator only (`edge remote L2+B`): hold these Unitree wireless-remote keys (drivers.go2.remote.KEYS) in
    LowState.wireless_remote for hold_s, as a press on the real remote would."""

    keys: tuple[str, ...] = Field(max_length=16)
    hold_s: float = Field(0.5, gt=0, le=10, allow_inf_nan=False)


# ---- camera (header + raw pixels) -------------------------------------------------------------------------------


MAX_IMAGE_SIDE = 8192  # pixels; a RealSense D4xx delivers at most 1920×1080 colour, 1280×720 depth
ImageSide = Annotated[int, Field(gt=0, le=MAX_IMAGE_SIDE)]


class CameraIntrinsics(Msg):
    """Pinhole intrinsics in pixels of the image they describe: focal lengths positive, principal point inside it."""

    width: ImageSide
    height: ImageSide
    fx: float = Field(gt=0)
    fy: float = Field(gt=0)
    cx: float
    cy: float

    @model_validator(mode="after")
    def _principal_point_in_image(self):
        if not (0 <= self.cx <= self.width and 0 <= self.cy <= self.height):
            raise ValueError(f"principal point ({self.cx}, {self.cy}) outside the {self.width}x{self.height} image")
        return self


class CameraFrame(Msg):
    """Header of a frame; the pixels travel as raw bytes after it (see edge.msg.bus). Width and height are positive
    and bounded (a 0×0 frame once killed the VLM process), and the intrinsics describe an image of this size."""

    frame_id: int = Field(ge=-1)
    sensor_time_ns: int = Field(ge=0)
    width: ImageSide
    height: ImageSide
    encoding: Literal["rgb8", "z16"]
    intrinsics: CameraIntrinsics

    @model_validator(mode="after")
    def _intrinsics_of_this_image(self):
        i = self.intrinsics
        if (i.width, i.height) != (self.width, self.height):
            raise ValueError(f"intrinsics are for {i.width}x{i.height}, the frame is {self.width}x{self.height}")
        return self

    def payload_size(self) -> int:
        return self.width * self.height * (3 if self.encoding == "rgb8" else 2)


# ---- registry --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Topic:
    name: str
    schema: type[Msg]
    rate_hz: float  # nominal; 0 for event topics
    max_age_s: float | None  # older than this = stale (inf for events); None: its consumer's own limit, by name
    latest_only: bool  # True: subscribers conflate and see only the newest message
    payload: bool = False  # raw bytes follow the header
    # The recorder keeps every message; the payload (camera pixels) it keeps as a Foxglove image at most this often
    # (Hz; 0 = never): at camera rate the pixels would fill the disk (640×480 rgb8 at 30 fps is 27.6 MB/s).
    record_payload_hz: float = 0.0
    # Socket pattern. "pubsub": a stream; the one publisher binds, subscribers connect. "pushpull": an event topic with
    # one consumer and several, possibly short-lived senders; the consumer binds (PULL), senders connect (PUSH), and
    # what is sent before the connection completes is queued and delivered, never silently dropped as a PUB would.
    pattern: Literal["pubsub", "pushpull"] = "pubsub"
    # per_process: every process publishes its own stream (endpoint <topic>.<process>); subscribers connect to the
    # processes they name. Used by processState, which every process of the table publishes.
    per_process: bool = False

    @property
    def consumer_binds(self) -> bool:
        return self.pattern == "pushpull"


_INF = float("inf")
TOPICS: dict[str, Topic] = {
    t.name: t
    for t in (
        Topic("actionText", ActionText, 0, _INF, latest_only=False, pattern="pushpull"),
        Topic("velocityCommand", VelocityCommand, 20, None, latest_only=True),  # safety.command_max_age_s
        Topic("odometry", Odometry, 50, 0.1, latest_only=True),
        Topic("actionResult", ActionResult, 0, _INF, latest_only=False),
        Topic("navigatorStatus", NavigatorStatus, 10, 0.5, latest_only=True),
        Topic("controlState", ControlState, 50, 0.1, latest_only=True),
        Topic("estop", Estop, 0, _INF, latest_only=False, pattern="pushpull"),
        Topic("operatorCommand", OperatorCommand, 0, _INF, latest_only=False, pattern="pushpull"),
        Topic("simTruth", SimTruth, 50, 0.1, latest_only=True),
        Topic("simRemote", SimRemote, 0, _INF, latest_only=False, pattern="pushpull"),
        Topic("watchdogState", WatchdogState, 10, 0.5, latest_only=True),
        Topic("cameraFrame", CameraFrame, 10, 0.3, latest_only=True, payload=True, record_payload_hz=1.0),
        Topic("instruction", Instruction, 0, _INF, latest_only=False, pattern="pushpull"),
        Topic("vlmOutput", VlmOutput, 0, _INF, latest_only=False),
        Topic("navigatorStep", NavigatorStep, 20, _INF, latest_only=False),
        Topic("vlmStep", VlmStep, 20, _INF, latest_only=False),
        Topic("processState", ProcessState, 2, 1.5, latest_only=False, per_process=True),
    )
}


def topic_of(schema: type[Msg]) -> Topic:
    matches = [t for t in TOPICS.values() if t.schema is schema]
    if len(matches) != 1:
        raise KeyError(f"{schema.__name__} is on {len(matches)} topics")
    return matches[0]
