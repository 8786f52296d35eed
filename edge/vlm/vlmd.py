"""VLM process: instruction + camera frames → the VLM's mid-level action on actionText (source "vlm"), and the raw
answer with frame ids and timings on vlmOutput.

Inference runs in one worker thread (local model) or on a GPU server (edge.vlm.remote, CURVE-encrypted); this
loop never waits on it. If the link drops or answers late, no action is sent: the navigator runs out of actions
and the robot holds.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from edge.common.config import resolve_path
from edge.common.realtime import DT_VLM, Ratekeeper
from edge.msg.messages import MAX_TEXT, ActionText, VlmOutput
from edge.navigation.parse import ActionParser
from edge.system.process_main import Process, process_main
from edge.vlm.model import build_model, to_model_frame
from edge.vlm.remote import AsyncVlmClient
from edge.vlm.scheduler import VlmScheduler
from engines.vlm.models import navila_sample

log = logging.getLogger("vlmd")


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


def run(proc: Process) -> int:
    cfg, stop, sub, pub = proc.cfg, proc.stop, proc.ports.sub, proc.ports.pub
    vcfg = cfg.vlm
    model = None if vcfg.remote else build_model(vcfg)
    family = model.family if model is not None else vcfg.model
    grammar = "streamvln" if family == "streamvln" else "navila"
    infer = RemoteInference(vcfg.remote, cfg.remote) if vcfg.remote else LocalInference(model)
    sched = VlmScheduler(vcfg, grammar, ActionParser(cfg.parser))
    instr_sub, cam_sub = sub["instruction"], sub["cameraFrame"]
    ctrl_sub, status_sub, result_sub = sub["controlState"], sub["navigatorStatus"], sub["actionResult"]
    text_pub, out_pub = pub["actionText"], pub["vlmOutput"]
    history: list = []
    launched: dict[int, tuple[int, str, tuple[int, ...]]] = {}  # query id → (launch ns, trigger, frame ids)
    rk = Ratekeeper(DT_VLM)
    log.info(
        "model %s (%s), history per %s, overlap %s",
        family,
        "remote" if vcfg.remote else "local",
        vcfg.history,
        vcfg.overlap,
    )
    while not stop.is_set():
        tick = rk.wait()
        now_ns = time.monotonic_ns()
        for r in instr_sub.drain():
            log.info("instruction: %r", r.msg.text)
            sched.start(r.msg.text)
            history.clear()
            infer.reset(r.msg.text)
        cam = cam_sub.latest()
        current: tuple[int, np.ndarray] | None = None
        if cam is not None and cam.payload is not None and cam.msg.encoding == "rgb8" and cam.age_s(now_ns) < 1.0:
            rgb = np.frombuffer(cam.payload, np.uint8).reshape(cam.msg.height, cam.msg.width, 3)
            current = (cam.msg.frame_id, rgb)
        ctrl = ctrl_sub.fresh(now_ns)
        mode = None if ctrl is None else ctrl.msg.mode
        results = [r.msg for r in result_sub.drain()]
        sched.on_results(results, now_ns)
        if current is not None and sched.want_history_frame(tick.start_s, mode, results):
            if not history or history[-1].frame_id != current[0]:
                history.append(to_model_frame(*current))
        st = status_sub.fresh(now_ns)
        launch = (
            sched.decide(mode, None if st is None else st.msg, 0 if st is None else st.mono_ns)
            if current is not None
            else None
        )
        if launch is not None and current is not None:
            frame = to_model_frame(*current)
            frames = navila_sample(history, frame) if grammar == "navila" else [frame]
            launched[launch.query_id] = (time.monotonic_ns(), launch.trigger, tuple(f.frame_id for f in frames))
            infer.submit(launch.query_id, frames)
            log.info("query %d (%s) on frames %s", launch.query_id, launch.trigger, launched[launch.query_id][2])
        done = infer.poll()
        if done is not None:
            qid, answer, error = done
            t0, trigger, ids = launched.pop(qid, (now_ns, "idle", ()))
            latency = (time.monotonic_ns() - t0) * 1e-9
            send = sched.on_answer(qid, None if answer is None else answer.text, latency)
            tm = None if answer is None else answer.timings
            out_pub.publish(
                VlmOutput(
                    query_id=qid,
                    family=family,
                    text="" if answer is None else answer.text,
                    frame_ids=ids if answer is None else tuple(answer.frame_ids),
                    trigger=trigger,
                    launched_mono_ns=t0,
                    vision_ms=0.0 if tm is None else tm.vision_s * 1e3,
                    prefill_ms=0.0 if tm is None else tm.prefill_s * 1e3,
                    decode_ms=0.0 if tm is None else tm.decode_s * 1e3,
                    total_ms=latency * 1e3,
                    vision_calls=0 if answer is None else answer.vision_calls,
                    cache_hits=0 if answer is None else answer.cache_hits,
                    new_tokens=0 if answer is None else answer.new_tokens,
                    remote=vcfg.remote is not None,
                    error=error,
                    episode_over="" if sched.active or sched.episode is None else sched.episode.end_reason,
                )
            )
            if send:
                if not text_pub.wait_peer(0.5):
                    log.warning("navigator not listening: answer %d dropped", qid)
                else:  # a runaway answer is cut to the schema's limit; the parser then judges it
                    text_pub.publish(
                        ActionText(text=answer.text[:MAX_TEXT], source="vlm", grammar=grammar, query_id=qid)
                    )
                log.info("answer %d in %.0f ms: %r", qid, latency * 1e3, answer.text)
            if sched.episode is not None and not sched.episode.active:
                log.info("episode over: %s", sched.episode.end_reason)
    infer.close()
    return 0


def main(argv=None) -> int:
    return process_main("vlmd", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
