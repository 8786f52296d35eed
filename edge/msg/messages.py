"""Every bus message, and the topic registry (TOPICS): the one place for names, schemas, rates and freshness.

Rules: SI units unless the field name says otherwise; add fields with defaults, never rename or retype.
The envelope (topic, seq, sender monotonic time) is added by edge.msg.bus, not stored in the models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def payload_size(self) -> int:
        """Bytes of raw payload after the header (camera pixels); 0 for every other message."""
        return 0


# ---- navigation ---------------------------------------------------------------------------------------------

MAX_TEXT = 4096


class ActionText(Msg):
    """A mid-level action in language: a VLM answer, or an operator / script standing in for it."""

    text: str = Field(max_length=MAX_TEXT)
    source: Literal["operator", "script", "vlm"] = "operator"
    grammar: Literal["navila", "streamvln"] = "navila"
    query_id: int = -1


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
    start_mono_ns: int
    end_mono_ns: int
    outcome: Literal["completed", "timeout", "preempted", "invalid"]
    reason: str = ""
    query_id: int = -1  # the ActionText this action came from


class NavigatorStatus(Msg):
    state: Literal["idle", "executing", "holding"]
    execution: ExecutionMode
    queue_len: int
    current_action_id: int = -1
    current_query_id: int = -1
    current_text: str = ""
    actions_done: int = 0
    invalid_texts: int = 0
    remaining_s: float = 0.0  # estimated time until the current and queued actions are done
    vlm_wait_s: float = 0.0  # total time the robot stood idle between VLM actions, waiting for the next answer
    vlm_waits: int = 0  # how many such waits


class Instruction(Msg):
    """A navigation instruction for the VLM ("walk past the sofa and stop at the door"); starts a new episode."""

    text: str = Field(min_length=1, max_length=2000)


class VlmOutput(Msg):
    """One VLM query: the raw answer, the frames it saw and where the time went."""

    query_id: int
    family: str
    text: str
    frame_ids: tuple[int, ...]
    trigger: Literal["idle", "early"]  # robot idle, or launched early to overlap the running action
    launched_mono_ns: int
    vision_ms: float
    prefill_ms: float
    decode_ms: float
    total_ms: float
    vision_calls: int
    cache_hits: int
    new_tokens: int
    remote: bool = False
    error: str = ""
    episode_over: str = ""  # why the episode ended with this answer (STOP, too many invalid); "" = going on


# ---- control --------------------------------------------------------------------------------------------------

ControlMode = Literal["passive", "stand_up", "hold", "walk", "damp"]


class ControlState(Msg):
    """Published by the 50 Hz loop every tick: what it did and why."""

    mode: ControlMode
    reason: str
    tick: int
    missed_ticks: int
    period_ms: float  # measured start-to-start period of this tick
    lateness_ms: float  # start of this tick minus its deadline
    work_ms: float  # compute time of the previous tick
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

    tick: int  # deadline index of the process's Ratekeeper
    start_s: float  # the tick's start, monotonic s (the executor's clock)
    now_ns: int  # monotonic ns (ages, action start / end stamps)
    texts: tuple[ActionText, ...] = ()  # drained from actionText this tick, in order
    pose_fresh: bool = False  # a fresh odometry sample was there; then x, y, yaw are its pose
    x_m: float = 0.0
    y_m: float = 0.0
    yaw_rad: float = 0.0
    control_mode: ControlMode | Literal[""] = ""  # "" = no fresh controlState
    control_boot: str = ""  # the fresh controlState's boot_id (a new one: control restarted)


class VlmAnswerIn(Msg):
    """What the inference (local model or GPU server) returned for one query, as the VLM step received it."""

    query_id: int
    ok: bool  # False: the query failed (error says why); text and timings are then empty
    text: str = ""
    frame_ids: tuple[int, ...] = ()
    vision_ms: float = 0.0
    prefill_ms: float = 0.0
    decode_ms: float = 0.0
    vision_calls: int = 0
    cache_hits: int = 0
    new_tokens: int = 0
    error: str = ""


class VlmStep(Msg):
    """One vlmd tick's inputs (edge.vlm.vlmd.VlmCore.step); the model's answer is an input, not recomputed."""

    tick: int
    start_s: float
    now_ns: int
    family: str  # the model family answering (navila, streamvln, fixed)
    remote: bool = False
    instructions: tuple[str, ...] = ()  # drained from instruction this tick, in order
    frame_id: int = -1  # the current camera frame (fresh rgb8); -1 = none
    control_mode: ControlMode | Literal[""] = ""
    status: tuple[NavigatorStatus, ...] = ()  # the fresh navigatorStatus: none or one (no nulls in records)
    status_mono_ns: int = 0
    results: tuple[ActionResult, ...] = ()  # drained from actionResult this tick
    answers: tuple[VlmAnswerIn, ...] = ()  # polled from the inference this tick: none or one


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


class CameraIntrinsics(Msg):
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float


class CameraFrame(Msg):
    """Header of a frame; the pixels travel as raw bytes after it (see edge.msg.bus)."""

    frame_id: int
    sensor_time_ns: int
    width: int
    height: int
    encoding: Literal["rgb8", "z16"]
    intrinsics: CameraIntrinsics

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
    )
}


def topic_of(schema: type[Msg]) -> Topic:
    matches = [t for t in TOPICS.values() if t.schema is schema]
    if len(matches) != 1:
        raise KeyError(f"{schema.__name__} is on {len(matches)} topics")
    return matches[0]
