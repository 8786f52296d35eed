"""VLM process: instruction + camera frames → the VLM's mid-level action on actionText (source "vlm"), and the raw
answer with frame ids and timings on vlmOutput.

A thin shell around a pure step (VlmCore.step), like the navigator: each tick's inputs — instructions, the current
frame id, control mode, navigator status and results, and the answer the inference returned — go out as a VlmStep
record on vlmStep before the step runs, so `edge replay --process vlmd` can feed them back in lock-step.

Inference runs in one worker thread (local model) or on a GPU server (edge.vlm.remote, CURVE-encrypted); this
loop never waits on it. If the link drops or answers late, no action is sent: the navigator runs out of actions
and the robot holds.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np

from edge.common.config import EdgeConfig, resolve_path
from edge.common.realtime import DT_VLM, Ratekeeper
from edge.msg.bus import session_id
from edge.msg.messages import MAX_TEXT, ActionText, VlmAnswerIn, VlmOutput, VlmStep
from edge.navigation.parse import ActionParser
from edge.system.process_main import Process, process_main
from edge.vlm.model import build_model, to_model_frame
from edge.vlm.remote import AsyncVlmClient
from edge.vlm.scheduler import VlmScheduler, primitive_times
from engines.vlm.models import VlmFrame, navila_sample

log = logging.getLogger("vlmd")
# Camera history kept for `history: primitive` (the frames at an action's intermediate primitives), a time span, not
# a count: RECENT_S covers actions of up to 10 s at the navigator's default speeds (a 3 m move at 0.5 m/s takes 6 s, a
# 180° turn at 30°/s 6 s; NaVILA's largest are 75 cm and 45°). A longer action loses its earliest intermediate
# frames (logged). One frame per RECENT_SPACING_S at most (≤ 100 frames: ≈ 92 MB at 640×480, 23 MB at 320×240).
RECENT_S = 10.0
RECENT_SPACING_S = 0.1


class RecentFrames:
    """The camera frames vlmd keeps, by arrival: (monotonic ns, frame id) of the last RECENT_S seconds, the current
    frame last. When a new frame arrives, the previous one stays if it arrived RECENT_SPACING_S or more after the
    frame kept before it; a frame id lower than the current one means the camera restarted its numbering (a
    reconnect), and the older ids are dropped. One rule for VlmCore (which ids) and CameraFrames (which pixels)."""

    def __init__(self):
        self.entries: deque[tuple[int, int]] = deque()

    def __iter__(self):
        return iter(self.entries)

    def add(self, frame_id: int, now_ns: int) -> list[int]:
        """Record the current frame; returns the ids no longer kept."""
        e = self.entries
        dropped: list[int] = []
        if e and e[-1][1] == frame_id:
            return dropped
        if e and frame_id < e[-1][1]:
            dropped = [f for _, f in e]
            e.clear()
        elif len(e) > 1 and e[-1][0] - e[-2][0] < RECENT_SPACING_S * 1e9:
            dropped.append(e.pop()[1])
        e.append((now_ns, frame_id))
        while e[0][0] < now_ns - RECENT_S * 1e9:
            dropped.append(e.popleft()[1])
        return dropped

    def at(self, t_ns: int) -> int | None:
        """The newest kept frame id that had arrived at monotonic time t_ns; None if none."""
        fid = None
        for seen_ns, f in self.entries:
            if seen_ns > t_ns:
                break
            fid = f
        return fid


class LocalInference:
    """One worker thread owns the model: reset and infer are serialised, the caller polls."""

    def __init__(self, model):
        self.model = model
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="vlm-infer")
        self.pending: dict[int, Future] = {}

    def reset(self, instruction: str) -> None:
        self.pool.submit(self.model.reset, instruction)

    def submit(self, query_id: int, frames) -> None:
        self.pending[query_id] = self.pool.submit(self.model.infer, frames)

    def poll(self):
        for qid, fut in list(self.pending.items()):
            if fut.done():
                del self.pending[qid]
                try:
                    return qid, fut.result(), ""
                except Exception as e:  # a failed query is reported, never fatal
                    log.exception("VLM query %d failed", qid)
                    return qid, None, f"{type(e).__name__}: {e}"
        return None

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class RemoteInference:
    """Queries a VLM server; the robot keeps history and sampling, the server keeps the model and its caches."""

    def __init__(self, cfg, limits):
        self.client = AsyncVlmClient(
            cfg.endpoint,
            resolve_path(cfg.client_secret_key),
            resolve_path(cfg.server_public_key),
            cfg.timeout_s,
            cfg.jpeg_quality,
            limits,
        )
        self.instruction, self.reset_next = "", True
        self.ids: dict[int, int] = {}  # client request id → our query id

    def reset(self, instruction: str) -> None:
        self.instruction, self.reset_next = instruction, True

    def submit(self, query_id: int, frames) -> None:
        rid = self.client.submit(self.instruction, frames, self.reset_next)
        self.reset_next = False
        self.ids[rid] = query_id

    def poll(self):
        got = self.client.poll()
        if got is None:
            return None
        rid, answer = got
        qid = self.ids.pop(rid, -1)
        if isinstance(answer, Exception):
            # No reset: the server keeps the episode under our key (if it restarted, it starts a new one from the
            # instruction every request carries).
            return qid, None, f"link: {answer}"
        return qid, answer, ""

    def close(self) -> None:
        self.client.close()


def warn_camera_view(cfg, family: str) -> list[str]:
    """WARNING per way the calibrated camera differs from the view the model was trained on (a VLN model does not
    complain about another camera height or FOV; it navigates worse). Returns the warnings."""
    from calibration.measure import compare_with_training_view
    from calibration.store import CalibrationError, load_calibration
    from edge.common.config import resolve_path

    path = resolve_path(cfg.calibration.file)
    try:
        cam = load_calibration(path).camera if path.is_file() else None
    except CalibrationError as e:
        log.warning("calibration unreadable: %s", e)
        return []
    if cam is None:
        log.warning("camera not calibrated (%s): its view is unchecked against %s's training view", path, family)
        return []
    warnings = compare_with_training_view(cam, family)
    for w in warnings:
        log.warning("CAMERA VIEW DIFFERS FROM TRAINING: %s", w)
    return warnings


@dataclass
class VlmOutputs:
    """What one tick does: reset the model (each new instruction), launch a query, publish an answer."""

    resets: list[str] = field(default_factory=list)
    launch: tuple[int, str, list[VlmFrame]] | None = None  # query id, trigger, frames to infer on
    output: VlmOutput | None = None  # on vlmOutput
    action: ActionText | None = None  # on actionText (to the navigator)
    unsent: str = ""  # why an answer to send was not sent (no navigator to take it)


class VlmCore:
    """The VLM process's pure step: one tick's inputs (a VlmStep, the model's answer included) → what to do. No I/O,
    no clock of its own, no model: `frame_of(frame_id)` gives the model frame for a camera frame id. `sender` is this
    session's ActionText.sender (edge.msg.bus.session_id): only results for our own sentences count."""

    def __init__(
        self, cfg: EdgeConfig, family: str, remote: bool, frame_of: Callable[[int], VlmFrame], sender: str = ""
    ):
        self.family, self.remote, self.frame_of, self.sender = family, remote, frame_of, sender
        self.cfg = cfg.vlm
        self.grammar: Literal["navila", "streamvln"] = "streamvln" if family == "streamvln" else "navila"
        self.sched = VlmScheduler(cfg.vlm, self.grammar, ActionParser(cfg.parser), sender)
        self.history: list[VlmFrame] = []
        self.seen = RecentFrames()  # by first tick: the ids CameraFrames keeps pixels for
        self.launched: dict[int, tuple[int, str, tuple[int, ...]]] = {}  # query id → (launch ns, trigger, frame ids)

    def _add_history(self, frame: VlmFrame) -> None:
        """Keep the history in camera order (frame ids grow with time) and each frame once: with overlap, an early
        query's frame is added before the running action's intermediate frames, which are older."""
        ids = [f.frame_id for f in self.history]
        if frame.frame_id not in ids:
            self.history.insert(bisect.bisect(ids, frame.frame_id), frame)

    def frame_at(self, t_ns: int) -> int | None:
        """The camera frame id the process had at monotonic time t_ns (the newest kept at or before it)."""
        return self.seen.at(t_ns)

    def step(self, inp: VlmStep) -> VlmOutputs:
        sched, out = self.sched, VlmOutputs()
        for text in inp.instructions:
            sched.start(text)
            self.history.clear()
            out.resets.append(text)
        current = inp.frame_id if inp.frame_id >= 0 else None
        mode = inp.control_mode or None
        results = [r for r in inp.results if r.sender == self.sender]
        sched.on_results(results, inp.now_ns)
        if current is not None:
            self.seen.add(current, inp.now_ns)
        primitive = self.cfg.history == "primitive" and sched.active
        if primitive:
            for r in results:
                for t in primitive_times(r):
                    fid = self.frame_at(t)
                    try:
                        if fid is None:
                            raise KeyError(f"no camera frame kept from {(inp.now_ns - t) * 1e-9:.1f} s ago")
                        self._add_history(self.frame_of(fid))
                    except KeyError as e:  # an action longer than the frames kept: that observation is missing
                        log.warning("history: %s", e)
        if current is not None and sched.want_history_frame(inp.start_s, mode, results):
            self._add_history(self.frame_of(current))
        status = inp.status[-1] if inp.status else None
        launch = sched.decide(mode, status, inp.status_mono_ns) if current is not None else None
        if launch is not None and current is not None:
            frame = self.frame_of(current)
            frames = navila_sample(self.history, frame) if self.grammar == "navila" else [frame]
            if primitive:  # the queried frame is an observation from now on (Habitat: the start, then each step)
                self._add_history(frame)
            self.launched[launch.query_id] = (inp.now_ns, launch.trigger, tuple(f.frame_id for f in frames))
            out.launch = (launch.query_id, launch.trigger, frames)
        for a in inp.answers:
            t0, trigger, ids = self.launched.pop(a.query_id, (inp.now_ns, "idle", ()))
            latency_s = (inp.now_ns - t0) * 1e-9
            send = sched.on_answer(a.query_id, a.text if a.ok else None, latency_s)
            out.output = VlmOutput(
                query_id=a.query_id,
                family=self.family,
                text=a.text,
                frame_ids=a.frame_ids if a.ok else ids,
                trigger=trigger,
                launched_mono_ns=t0,
                vision_ms=a.vision_ms,
                prefill_ms=a.prefill_ms,
                decode_ms=a.decode_ms,
                total_ms=latency_s * 1e3,
                vision_calls=a.vision_calls,
                cache_hits=a.cache_hits,
                new_tokens=a.new_tokens,
                remote=self.remote,
                error=a.error,
                episode_over="" if sched.active or sched.episode is None else sched.episode.end_reason,
            )
            if send and not inp.status:  # no navigator to take it (a queued answer would run stale later)
                out.unsent = f"no fresh navigatorStatus: answer {a.query_id} not sent"
            elif send:  # a runaway answer is cut to the schema's limit; the parser then judges it
                out.action = ActionText(
                    text=a.text[:MAX_TEXT], source="vlm", grammar=self.grammar, query_id=a.query_id, sender=self.sender
                )
        return out


def answer_in(polled) -> tuple[VlmAnswerIn, ...]:
    """The inference's poll() result (None, or query id, VlmAnswer or None, error) as the step's input."""
    if polled is None:
        return ()
    qid, answer, error = polled
    if answer is None:
        return (VlmAnswerIn(query_id=qid, ok=False, error=error),)
    tm = answer.timings
    return (
        VlmAnswerIn(
            query_id=qid,
            ok=True,
            text=answer.text,
            frame_ids=tuple(answer.frame_ids),
            vision_ms=tm.vision_s * 1e3,
            prefill_ms=tm.prefill_s * 1e3,
            decode_ms=tm.decode_s * 1e3,
            vision_calls=answer.vision_calls,
            cache_hits=answer.cache_hits,
            new_tokens=answer.new_tokens,
            error=error,
        ),
    )


class CameraFrames:
    """frame_of for the live process: the pixels of the frames RecentFrames keeps (the same rule and arrival times as
    VlmCore.seen), each converted to a model frame once. KeyError for a frame not kept."""

    def __init__(self):
        self.timeline = RecentFrames()
        self.frames: dict[int, np.ndarray | VlmFrame] = {}

    @property
    def kept(self) -> dict[int, tuple[int, np.ndarray | VlmFrame]]:
        """The earlier frames kept, oldest first: id → (arrival ns, frame); the current one is not among them."""
        return {f: (t, self.frames[f]) for t, f in list(self.timeline)[:-1]}

    def set(self, frame_id: int, rgb: np.ndarray, now_ns: int) -> None:
        for f in self.timeline.add(frame_id, now_ns):  # the same frame again: nothing dropped, first arrival kept
            del self.frames[f]
        self.frames.setdefault(frame_id, rgb)  # a repeated frame keeps its (possibly converted) first copy

    def __call__(self, frame_id: int) -> VlmFrame:
        got = self.frames.get(frame_id)
        if got is None:
            raise KeyError(f"camera frame {frame_id} is not among the frames of the last {RECENT_S:.0f} s kept")
        if not isinstance(got, VlmFrame):
            got = self.frames[frame_id] = to_model_frame(frame_id, got)
        return got


def camera_image(cam, now_ns: int) -> tuple[int, np.ndarray] | None:
    """The newest rgb8 camera frame younger than 1 s as (frame id, H×W×3 pixels), else None. The bus has checked
    the header (positive bounded size, payload length); anything else wrong with a frame skips it, never kills us."""
    if cam is None or cam.payload is None or cam.msg.encoding != "rgb8" or cam.age_s(now_ns) >= 1.0:
        return None
    try:
        return cam.msg.frame_id, np.frombuffer(cam.payload, np.uint8).reshape(cam.msg.height, cam.msg.width, 3)
    except ValueError as e:
        log.warning("camera frame %d skipped: %s", cam.msg.frame_id, e)
        return None


def run(proc: Process) -> int:
    cfg, stop, sub, pub, health = proc.cfg, proc.stop, proc.ports.sub, proc.ports.pub, proc.health
    vcfg = cfg.vlm
    backend = f"remote {vcfg.remote.endpoint}" if vcfg.remote else vcfg.generator_backend
    health.detail(model=vcfg.model, backend=backend, checkpoint=vcfg.checkpoint or "")
    model = None
    if not vcfg.remote:
        health.loading(f"loading {vcfg.model} model", 0.0)
        model = build_model(vcfg, lambda stage, f: health.loading(f"loading {vcfg.model}: {stage}", f))
    family = model.family if model is not None else vcfg.model
    infer = RemoteInference(vcfg.remote, cfg.remote) if vcfg.remote else LocalInference(model)
    frames = CameraFrames()
    sender = session_id("vlmd")
    core = VlmCore(cfg, family, vcfg.remote is not None, frames, sender)
    instr_sub, cam_sub = sub["instruction"], sub["cameraFrame"]
    ctrl_sub, status_sub, result_sub = sub["controlState"], sub["navigatorStatus"], sub["actionResult"]
    text_pub, out_pub, step_pub = pub["actionText"], pub["vlmOutput"], pub["vlmStep"]
    rk = Ratekeeper(DT_VLM)
    warn_camera_view(cfg, family)
    up = f"{family} ({backend}), history per {vcfg.history}, overlap {vcfg.overlap}"
    n_instructions = 0
    health.detail(model=family, episode="none", instructions=0)
    health.ready(up)
    while not stop.is_set():
        tick = rk.wait()
        now_ns = time.monotonic_ns()
        instructions = [r.msg.text for r in instr_sub.drain()]
        current = camera_image(cam_sub.latest(), now_ns)
        frame_id = -1
        if current is not None:
            frames.set(*current, now_ns)
            frame_id = current[0]
        ctrl = ctrl_sub.fresh(now_ns)
        st = status_sub.fresh(now_ns)
        inp = VlmStep(
            tick=tick.index,
            start_s=tick.start_s,
            now_ns=now_ns,
            family=family,
            remote=vcfg.remote is not None,
            sender=sender,
            instructions=tuple(instructions),
            frame_id=frame_id,
            control_mode="" if ctrl is None else ctrl.msg.mode,
            status=() if st is None else (st.msg,),
            status_mono_ns=0 if st is None else st.mono_ns,
            results=tuple(r.msg for r in result_sub.drain()),
            answers=answer_in(infer.poll()),
        )
        step_pub.publish(inp)
        out = core.step(inp)
        for text in out.resets:
            log.info("instruction: %r", text)
            infer.reset(text)
            n_instructions += 1
            health.detail(episode="active", instruction=text[:200], instructions=n_instructions)
        if out.launch is not None:
            qid, trigger, launch_frames = out.launch
            infer.submit(qid, launch_frames)
            log.info("query %d (%s) on frames %s", qid, trigger, [f.frame_id for f in launch_frames])
        if out.output is not None:
            o = out.output
            (health.degraded if o.error else health.ready)(f"query {o.query_id} failed: {o.error}" if o.error else up)
            out_pub.publish(o)
            log.info("answer %d in %.0f ms: %r", o.query_id, o.total_ms, o.text)
            if o.episode_over:
                log.info("episode over: %s", o.episode_over)
                health.detail(episode=f"over: {o.episode_over}")
        if out.unsent:
            log.warning("%s", out.unsent)
        if out.action is not None:
            text_pub.publish(out.action)
    infer.close()
    return 0


def main(argv=None) -> int:
    return process_main("vlmd", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
