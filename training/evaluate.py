"""Offline evaluation: the checkpoint through engines.vlm.models.NavilaVlm (the robot's inference path: history
sampling, 384 squash + SigLIP normalisation, vision tower + mm_projector, NaVILA prompt with the double BOS, greedy
decoding to <|eot_id|>), answers parsed by edge.navigation.parse.ActionParser (NaVILA habitat grammar), executed
kinematically with noise, frames rendered by the stack's head camera. No physics. Reports VLN-CE metrics,
optionally under contract drifts:

    python -m training.evaluate CHECKPOINT [--split val_unseen] [--layouts 25] [--per-layout 4]
                                [--drifts none,bgr,no_norm,reversed,fold]

Drifts (each breaks one part of the contract while keeping every shape):
  bgr        frames reach the model with channels in BGR order
  no_norm    no SigLIP normalisation (pixels in [0, 1] instead of [-1, 1])
  reversed   the 8 sampled frames in reverse order (current frame first)
  history    only the 7 history frames reversed (current still last) — informational
  fold       DownSampleBlock with row-major token order (later VILA's extra permute) instead of NaVILA's column-major
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("MUJOCO_GL", "egl")

from engines.vlm.models import NavilaVlm, VlmFrame, navila_sample  # noqa: E402
from engines.vlm.vision import DownSampleBlock, load_vision_encoder  # noqa: E402
from training.episodes import Episode, World, make_episodes  # noqa: E402
from training.expert import action_from_parsed, parse_answer  # noqa: E402
from training.geometry import Noise  # noqa: E402
from training.rollout import MAX_ACTIONS, Trajectory, rollout, score, summarise  # noqa: E402

DRIFTS = ("none", "bgr", "no_norm", "reversed", "history", "fold")


class RowMajorDownSample(DownSampleBlock):
    """The drifted fold: same 2×2 channel blocks, tokens in row-major block order (k = 14·i + j)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)  # k = 14·j + i
        n = math.isqrt(y.shape[1])
        return y.reshape(-1, n, n, y.shape[-1]).transpose(1, 2).reshape(y.shape)


class VlmPolicy:
    """A NaVILA checkpoint as a rollout policy. Frames: rendered on demand by a training.rollout.Renderers, RGB →
    edge.vlm.model.to_model_frame (the VLM process's 384 squash) → navila_sample → NavilaVlm.infer."""

    def __init__(
        self, checkpoint: str | Path, renderers, drift: str = "none", noise: Noise = Noise(), vision: str = "torch"
    ):
        from engines.vlm.checkpoints import load_navila_checkpoint

        if drift not in DRIFTS:
            raise ValueError(f"unknown drift {drift!r} (one of {DRIFTS})")
        if vision not in ("torch", "onnx") or (vision == "onnx" and drift != "none"):
            raise ValueError(f"vision {vision!r}: torch, or onnx with the real contract (drift none)")
        ckpt = load_navila_checkpoint(checkpoint)
        if drift == "no_norm":
            ckpt = dataclasses.replace(
                ckpt, vision=dataclasses.replace(ckpt.vision, image_mean=(0.0, 0.0, 0.0), image_std=(1.0, 1.0, 1.0))
            )
        encoder = load_vision_encoder(ckpt)
        if drift == "fold":
            encoder.projector[0] = RowMajorDownSample()
        if vision == "onnx":  # the robot's path: exporters.vision export (parity-gated) run by ONNX Runtime
            import tempfile

            from engines.ort_runner import OrtModel
            from exporters.vision import export_vision

            self._tmp = tempfile.TemporaryDirectory(prefix="nav10-vision-")
            encoder = OrtModel(export_vision(checkpoint, self._tmp.name).onnx, threads=2)
        self.vlm = NavilaVlm(ckpt, vision=encoder)
        self.renderers, self.drift, self.noise = renderers, drift, noise
        self.rgb: dict[int, np.ndarray] = {}  # observation index → camera RGB (this episode)
        self.query_s: list[float] = []

    def _frame(self, traj: Trajectory, world: World, k: int) -> VlmFrame:
        from edge.vlm.model import to_model_frame
        from training.rollout import render_obs

        if k not in self.rgb:
            self.rgb[k] = render_obs(self.renderers.get(world), traj, k)
        rgb = self.rgb[k]
        if self.drift == "bgr":
            rgb = np.ascontiguousarray(rgb[..., ::-1])
        return to_model_frame(k, rgb)

    def __call__(self, traj: Trajectory, world: World):
        n = len(traj.states)
        cur = self._frame(traj, world, n - 1)
        # only the frames navila_sample picks are rendered (the others would be cache misses anyway)
        hist_ids = [VlmFrame(k, np.zeros((1, 1, 3), np.uint8)) for k in range(n - 1)]
        picked = [f.frame_id for f in navila_sample(hist_ids, VlmFrame(n - 1, np.zeros((1, 1, 3), np.uint8)))]
        frames = [
            VlmFrame(-1, np.zeros_like(cur.rgb)) if k == -1 else (cur if k == n - 1 else self._frame(traj, world, k))
            for k in picked
        ]
        if self.drift == "reversed":
            frames = frames[::-1]
        elif self.drift == "history":
            frames = frames[:-1][::-1] + frames[-1:]
        t0 = time.perf_counter()
        ans = self.vlm.infer(frames)
        self.query_s.append(time.perf_counter() - t0)
        return action_from_parsed(parse_answer(ans.text)), ans.text

    def run(self, world: World, ep: Episode, rng: np.random.Generator, max_actions: int = MAX_ACTIONS) -> Trajectory:
        self.rgb = {}
        self.vlm.reset(ep.instruction)
        return rollout(world, ep, self, rng, self.noise, max_actions=max_actions)


def episode_rng(seed: int, ep: Episode) -> np.random.Generator:
    """The execution noise and walking jitter of one episode: seeded by (seed, episode id)."""
    return np.random.default_rng([seed, zlib.crc32(ep.episode_id.encode())])


def evaluate(
    checkpoint: str | Path,
    episodes: list[Episode],
    drift: str = "none",
    seed: int = 0,
    log=print,
    vision: str = "torch",
    max_actions: int = MAX_ACTIONS,
) -> tuple[dict, list]:
    """(VLN-CE summary, per-episode EpisodeResult incl. answer texts). `vision`: "torch" (the checkpoint's PyTorch
    encoder) or "onnx" (exported and parity-gated by exporters.vision, run by ONNX Runtime). Each episode's noise
    comes from its own generator (`episode_rng`), so an episode scores the same alone or in any set."""
    from training.rollout import Renderers

    rend = Renderers()
    policy = VlmPolicy(checkpoint, rend, drift, vision=vision)
    results, worlds = [], {}
    t0 = time.perf_counter()
    for ep in sorted(episodes, key=lambda e: e.layout_seed):
        world = worlds.setdefault(ep.layout_seed, World(ep.layout_seed))
        traj = policy.run(world, ep, episode_rng(seed, ep), max_actions)
        results.append(score(world, traj))
    rend.close()
    summary = summarise(results)
    q = np.array(policy.query_s) if policy.query_s else np.zeros(1)
    summary.update(
        query_ms_p50=float(np.percentile(q, 50) * 1e3),
        query_ms_p99=float(np.percentile(q, 99) * 1e3),
        wall_s=time.perf_counter() - t0,
    )
    log(
        f"{drift if vision == 'torch' else 'onnx':9s} "
        + " ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in summary.items())
    )
    return summary, results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--split", default="val_unseen", choices=("train", "val_unseen"))
    ap.add_argument("--layouts", type=int, default=25)
    ap.add_argument("--per-layout", type=int, default=4)
    ap.add_argument("--episode-seed", type=int, default=1)
    ap.add_argument(
        "--drifts", default="none", help=f"comma-separated, of {DRIFTS}; 'onnx' = real contract, ONNX vision"
    )
    ap.add_argument("--json", default=None, help="write the summaries (and per-episode results) here")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    eps = make_episodes(args.split, args.layouts, args.per_layout, seed=args.episode_seed)
    out = {}
    for drift in args.drifts.split(","):
        if drift == "onnx":
            summary, results = evaluate(args.checkpoint, eps, "none", vision="onnx")
        else:
            summary, results = evaluate(args.checkpoint, eps, drift)
        out[drift] = {"summary": summary, "episodes": [dataclasses.asdict(r) for r in results]}
    if args.json:
        record = {
            "checkpoint_sha256": checkpoint_digest(args.checkpoint),
            "command": "python -m training.evaluate " + " ".join(argv if argv is not None else sys.argv[1:]),
            "split": args.split,
            "episode_seed": args.episode_seed,
            "per_layout": args.per_layout,
            "runs": out,
        }
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
    return 0


def checkpoint_digest(checkpoint: str | Path) -> str:
    """sha256 over every file the checkpoint readers load: config.json and all of llm/, vision_tower/ and
    mm_projector/ (weights, configs, tokenizer), each with its relative path. Ties an evaluation record to the model
    it evaluated; training logs and records are not part of it. FileNotFoundError for a folder not in that layout."""
    root = Path(checkpoint)
    missing = [n for n in ("config.json", "llm", "vision_tower", "mm_projector") if not (root / n).exists()]
    if missing:
        raise FileNotFoundError(f"{root} is not a NaVILA-layout checkpoint: no {', '.join(missing)}")
    files = [root / "config.json"] + [
        f for sub in ("llm", "vision_tower", "mm_projector") for f in (root / sub).rglob("*") if f.is_file()
    ]
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f.relative_to(root).as_posix().encode() + b"\0")
        h.update(f.read_bytes())
    return h.hexdigest()


if __name__ == "__main__":
    raise SystemExit(main())
