"""Evaluation through the whole stack (`make eval`): val-unseen episodes, each on a fresh simulated stack.

    python -m training.stack_eval [--episodes 20] [--overlap] [--out build/eval]

Per episode (edge.tools.demo.run_nav_episode): simd loads the episode's layout and starts the Go2 at its pose, the
operator sends the instruction, vlmd runs the trained model on the robot's path (ONNX vision tower built and
parity-gated by build_engines.py from configs/engines_nav10.yaml, transformers LLM, `vlm.history: primitive`),
the navigator parses and executes each answer closed-loop, control walks the learned policy over DDS. An episode
ends at the model's stop, after 40 answers (drivers.sim.nav_world.MAX_ANSWERS), at a fall or damping, or at a timeout.
Scoring from simulator truth with training.rollout.score (the offline definitions: SR / SPL / NE / OS, success
radius 1.25 m from the goal landmark's centre, a run that did not stop never succeeds) on the truth path (a pose per
5 cm moved). Episodes: the first N of make_episodes("val_unseen", ⌈N/2⌉ layouts, 2 per layout, seed 1) — the same
episodes as `python -m training.evaluate models/nav10 --layouts ⌈N/2⌉ --per-layout 2`.

Writes build/eval/<stamp>/: per episode <episode_id>/ (bus.mcap, episode.json, report.json + report.png as
`edge report` makes them), eval.json (summary + per-episode results) and eval.md (the table).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np

from training.episodes import Episode, World, make_episodes
from training.geometry import State
from training.rollout import MAX_ACTIONS, Trajectory, score, summarise

log = logging.getLogger("stack_eval")


def stack_episodes(n: int, seed: int = 1) -> list[Episode]:
    return make_episodes("val_unseen", math.ceil(n / 2), 2, seed=seed)[:n]


def episode_spec(ep: Episode) -> dict:
    """What edge.tools.demo.run_nav_episode takes (no training types on the robot side)."""
    return {
        "episode_id": ep.episode_id,
        "layout_seed": ep.layout_seed,
        "instruction": ep.instruction,
        "start": list(ep.start),
        "goal": ep.goal,
    }


def score_run(world: World, ep: Episode, run: dict):
    """training.rollout.score on the stack's truth path (collisions are not counted on the stack: 0)."""
    traj = Trajectory(ep, states=[State(*p) for p in run["path"]] or [ep.start_state])
    traj.stopped, traj.end_reason = run["stopped"], run["stop_reason"]
    res = score(world, traj)
    texts = tuple(a["text"] for a in run["answers"])
    return dataclasses.replace(res, steps=len(texts), answers=texts)


def table(rows: dict[str, dict]) -> str:
    head = (
        "| run | episodes | SR % | SPL % | NE m | OS % | steps | VLM p50 / p99 ms | idle s / episode | episode s "
        "| damped (retries) |"
    )
    lines = [head, "|" + "---|" * 11]
    for name, s in rows.items():
        lines.append(
            f"| {name} | {s['episodes']} | {s['SR']:.1f} | {s['SPL']:.1f} | {s['NE']:.2f} | {s['OS']:.1f} | "
            f"{s['steps']:.1f} | {s['vlm_ms_p50']:.0f} / {s['vlm_ms_p99']:.0f} | {s['idle_s']:.1f} | "
            f"{s['episode_s']:.0f} | {s['damped']} ({s['retries']}) |"
        )
    return "\n".join(lines) + "\n"


def stack_failure(ep: Episode, error: Exception) -> dict:
    """The run record of an episode whose stack never got going (the robot did not stand: control damped on a
    LowState gap at stand-up on the loaded machine) or lost a process."""
    return {
        "path": [],
        "stopped": False,
        "stop_reason": f"stack: {error}",
        "success": False,
        "answers": [],
        "vlm_idle_s": 0.0,
        "episode_s": 0.0,
        "wall_s": 0.0,
    }


def infrastructure(reason: str) -> bool:
    """The stack's safety or start-up ended the run, not the model: worth another run on a fresh stack."""
    return reason.startswith(("damped", "stack:"))


def summary_of(results: list, runs: list[dict], overlap: bool) -> dict:
    summary = summarise(results)
    lat = [a["total_ms"] for r in runs for a in r["answers"] if not a["error"]] or [0.0]
    summary.pop("collisions")
    summary.update(
        vlm_ms_p50=float(np.percentile(lat, 50)),
        vlm_ms_p99=float(np.percentile(lat, 99)),
        idle_s=float(np.mean([r["vlm_idle_s"] for r in runs])) if runs else 0.0,
        episode_s=float(np.mean([r["episode_s"] for r in runs])) if runs else 0.0,
        wall_s=float(np.sum([r["wall_s"] for r in runs])),
        overlap=overlap,
        max_answers=MAX_ACTIONS,
        retries=int(sum(r["retries"] for r in runs)),
        damped=int(sum(infrastructure(r["stop_reason"]) for r in runs)),
    )
    return summary


def evaluate_stack(
    episodes: list[Episode],
    out: Path,
    overlap: bool = False,
    timeout_s: float = 420.0,
    retries: int = 1,
    on_episode: Callable[[dict], None] | None = None,
) -> dict:
    """Each episode on a fresh stack; an episode that control damped or whose stack did not start (a LowState gap
    on a loaded machine: the stack's safety, not the model) runs again up to `retries` times, and the count is
    reported. `on_episode(result so far)` after each episode (eval.json is written as it goes)."""
    from edge.system.health import NotReadyError
    from edge.tools.demo import nav_vlm_overrides, run_nav_episode
    from edge.tools.errors import OperatorError
    from edge.tools.report import build_report

    overrides = nav_vlm_overrides(overlap)
    results, runs = [], []
    result: dict = {}
    for ep in episodes:
        for attempt in range(1 + retries):
            run_out = out / (ep.episode_id + (f"-retry{attempt}" if attempt else ""))
            try:
                run = run_nav_episode(run_out, episode_spec(ep), overrides, timeout_s=timeout_s)
            except (OperatorError, NotReadyError) as e:  # the stack did not start, or a process died
                run = stack_failure(ep, e)
            run["retries"] = attempt
            if not infrastructure(run["stop_reason"]):
                break
            log.warning("%s: %s: run again on a fresh stack", ep.episode_id, run["stop_reason"])
        if (run_out / "bus.mcap").is_file():
            try:
                build_report({ep.episode_id: run_out / "bus.mcap"}, run_out)
            except Exception:  # a report that cannot be drawn never loses the evaluation
                log.exception("%s: no report", ep.episode_id)
        run["run_dir"] = str(run_out)
        res = score_run(World(ep.layout_seed), ep, run)
        if res.success != run["success"]:  # one definition: the robot-side check must agree with score()
            raise AssertionError(f"{ep.episode_id}: success {run['success']} on the stack, {res.success} by score()")
        results.append(res)
        runs.append(run)
        log.info("%s: %s in %.0f s", ep.episode_id, dataclasses.asdict(res), run["wall_s"])
        result = {
            "summary": summary_of(results, runs, overlap),
            "episodes": [
                dataclasses.asdict(res)
                | {k: r[k] for k in ("stop_reason", "vlm_idle_s", "episode_s", "wall_s", "retries", "run_dir")}
                for res, r in zip(results, runs)
            ],
        }
        if on_episode is not None:
            on_episode(result)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.stack_eval", description=__doc__.split("\n")[0])
    ap.add_argument("--episodes", type=int, default=20, help="the first N val-unseen episodes (2 per layout)")
    ap.add_argument("--skip", type=int, default=0, help="start at episode index SKIP (split a long evaluation)")
    ap.add_argument("--overlap", default="off", choices=("off", "on", "both"), help="vlm.overlap (off for SR)")
    ap.add_argument("--timeout-s", type=float, default=420.0, help="per episode, after the instruction")
    ap.add_argument("--retries", type=int, default=1, help="runs again of an episode whose control damped")
    ap.add_argument("--out", default="build/eval")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    episodes = stack_episodes(args.episodes + args.skip)[args.skip :]
    out = Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
    result: dict = {}

    def write(name: str, partial: dict) -> None:
        result[name] = partial
        out.mkdir(parents=True, exist_ok=True)
        (out / "eval.json").write_text(json.dumps(result, indent=1) + "\n")
        (out / "eval.md").write_text(table({k: v["summary"] for k, v in result.items()}))

    for overlap in {"off": [False], "on": [True], "both": [False, True]}[args.overlap]:
        name = f"overlap_{'on' if overlap else 'off'}"
        evaluate_stack(episodes, out / name, overlap, args.timeout_s, args.retries, lambda r, n=name: write(n, r))
    print(f"{out}/eval.json\n" + (out / "eval.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
