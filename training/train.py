"""Train the navigation VLM end to end, one command:

    python -m training.train [--out models/nav10] [--seed 0] [--quick]

1. episodes on the train layouts (training.episodes), tokenizer trained on the prompt/instruction/answer language;
2. expert rollouts with execution noise and DART-style random actions (labels stay the expert's);
3. vision tower: auxiliary per-patch class + depth training on rendered frames, then frozen;
4. every observation the samples use is rendered (training.render) and encoded once (tower features, fp16);
5. projector + LLM trained on NaVILA samples (8 frames by the sampling rule, exact prompt, expert answer);
6. DAgger: the checkpoint so far drives episodes through engines.vlm.models.NavilaVlm (the real inference path),
   the expert labels every state it visits, the samples are aggregated and training continues;
7. the checkpoint is written in NaVILA's layout with a training record (seed, data hashes, loss curves, timings).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("MUJOCO_GL", "egl")

from engines.vlm.prompts import navila_prompt  # noqa: E402
from engines.vlm.vision import preprocess_frames  # noqa: E402
from training.dataset import (
    ANSWERS,
    AUX_SIZES,
    FeatureStore,
    PromptCodec,  # noqa: E402
    SampleSet,
    aux_truth,
    build_batch,
    encode_rgb,
    sample_slots,
    used_observations,
)
from training.episodes import TEMPLATES, World, make_episodes, save_episodes  # noqa: E402
from training.model import (
    VISION,
    make_llm,
    make_projector,
    make_tower,
    save_checkpoint,  # noqa: E402
    tower_features,
    train_tokenizer,
)
from training.rollout import Renderers, Trajectory, expert_policy, render_obs, rollout  # noqa: E402
from training.vision_aux import patch_targets, train_tower  # noqa: E402


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    bc_layouts: int = 60
    bc_per_layout: int = 6
    explore: float = 0.2  # DART: chance per step of executing a random action instead
    overshoot: float = 0.5  # chance at a stop label of a small move instead (training.rollout), ≤ 2 per episode
    aux_frames: int = 1600
    aux_steps: int = 300
    aux_batch: int = 16
    batch: int = 16
    lr: float = 1e-3  # stage 1: warmup + cosine over short_steps
    short_steps: int = 3000  # curriculum: current frame only (short prompt), cheap
    short_batch: int = 32
    bc_lr: float = 3e-4  # stage 2 (+ DAgger): a fresh AdamW, warmup + cosine over bc_steps + DAgger steps
    bc_steps: int = 400
    dagger_rounds: int = 0  # DAgger rounds after BC (implemented; not used by the committed model)
    dagger_layouts: int = 60
    dagger_per_layout: int = 3
    dagger_steps: int = 350
    threads: int = 2


QUICK = TrainConfig(
    bc_layouts=8,
    bc_per_layout=3,
    aux_frames=96,
    aux_steps=20,
    short_steps=10,
    bc_steps=20,
    dagger_rounds=1,
    dagger_layouts=3,
    dagger_per_layout=1,
    dagger_steps=10,
)


class Log:
    def __init__(self, path: Path):
        self.t0 = time.perf_counter()
        self.f = open(path, "a")

    def __call__(self, msg: str) -> None:
        line = f"[{time.perf_counter() - self.t0:7.1f} s] {msg}"
        print(line, flush=True)
        self.f.write(line + "\n")
        self.f.flush()


def tokenizer_corpus() -> list[str]:
    from drivers.sim.nav_world import LANDMARK_COLOURS, LANDMARK_SHAPES

    goals = [f"{c} {s}" for c in LANDMARK_COLOURS for s in LANDMARK_SHAPES]
    texts = []
    for forms in TEMPLATES.values():
        for t in forms:
            for g in goals:
                for d in ("left", "right", "around"):
                    texts.append(t.format(g=g, d=d))
    texts = sorted(set(texts))
    return [navila_prompt(t) for t in texts[::7]] + texts + ANSWERS * 20


# ---------------------------------------------------------------------------------------------------- rendering
def add_trajectory(
    traj: Trajectory,
    world: World,
    rend: Renderers,
    tower,
    store: FeatureStore,
    samples: SampleSet,
    rgb_cache: dict[int, np.ndarray] | None = None,
) -> int:
    """Render + encode the observations the trajectory's queries use; add one sample per query. Returns frames."""
    queries = [q.current for q in traj.queries]
    used = used_observations(queries)
    r = rend.get(world)
    rgbs = [rgb_cache[k] if rgb_cache and k in rgb_cache else render_obs(r, traj, k) for k in used]
    idx = store.add(encode_rgb(tower, rgbs))
    where = {k: i for k, i in zip(used, idx)}
    obs = [where.get(k, -1) for k in range(len(traj.states))]
    goal = world.layout.landmark(traj.episode.goal)
    for q in traj.queries:
        samples.add(
            sample_slots(obs, q.current),
            traj.episode.instruction,
            q.expert.text(),
            aux_truth(world.layout, traj.states[q.current], goal, traj.episode.instruction),
        )
    return len(used)


# ---------------------------------------------------------------------------------------------------- training
class NavModel(torch.nn.Module):
    """Projector + LLM (what the checkpoint keeps) and training-only auxiliary heads on the final hidden state of the
    position that predicts the decision token (move / turn / stop): goal colour, goal bearing bin / not in view,
    distance bin, same room — simulator truth the answer depends on (dataset.aux_truth), and the instruction's turn
    direction (dataset.turn_target). The heads are dropped when the checkpoint is written. The answer loss is summed
    over the answer's tokens (mean over the batch)."""

    def __init__(self, vocab: int, bos: int, eot: int, aux_weight: float = 0.3):
        super().__init__()
        self.projector = make_projector()
        self.llm = make_llm(vocab, bos, eot)
        d = self.llm.config.hidden_size
        self.aux_heads = torch.nn.ModuleDict({k: torch.nn.Linear(d, n) for k, n in AUX_SIZES.items()})
        self.aux_weight = aux_weight

    def loss(self, feats: torch.Tensor, ids: torch.Tensor, rows: torch.Tensor, label_pos, label_ids, aux=None):
        ce = torch.nn.functional.cross_entropy
        b = ids.shape[0]
        img = self.projector(feats.reshape(-1, *feats.shape[-2:]))  # [B·frames, 196, d]
        emb = self.llm.model.embed_tokens(ids)
        emb[:, rows] = img.reshape(b, -1, img.shape[-1])
        h = self.llm.model(inputs_embeds=emb).last_hidden_state
        bi = torch.tensor([i for i, p in enumerate(label_pos) for _ in p])
        pi = torch.tensor([t for p in label_pos for t in p])
        logits = self.llm.lm_head(h[bi, pi])
        target = torch.tensor([t for a in label_ids for t in a])
        loss = ce(logits, target, reduction="sum") / b  # per answer, so decision tokens are not diluted
        parts = {"answer": float(loss.detach())}
        if aux and self.aux_weight > 0:
            last = h[torch.arange(b), torch.tensor([p[DECISION_TOKEN] for p in label_pos])]
            for k, head in self.aux_heads.items():
                lk = ce(head(last), torch.tensor([a[k] for a in aux]))
                loss = loss + self.aux_weight * lk
                parts[k] = float(lk.detach())
        return loss, parts


DECISION_TOKEN = 4  # "The next action is| move …": label index of move / turn / stop


def lr_at(step: int, total: int, base: float, warmup: int = 60) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def train_steps(
    model: NavModel,
    opt,
    store: FeatureStore,
    samples: SampleSet,
    codec: PromptCodec,
    start: int,
    steps: int,
    total: int,
    lr: float,
    cfg: TrainConfig,
    rng: np.random.Generator,
    log: Log,
    curve: list,
    n_history: int = 7,
    batch: int | None = None,
) -> int:
    """`steps` steps from `start` of a warmup + cosine schedule over `total` peaking at `lr`; returns the next step."""
    feats_all = store.tensor()
    model.train()
    acc, part_acc, t0 = [], [], time.perf_counter()
    for k in range(steps):
        step = start + k
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total, lr, warmup=min(60, max(1, total // 10)))
        idx = rng.choice(len(samples), batch or cfg.batch, replace=False).tolist()
        ids, rows, label_pos, label_ids = build_batch(codec, samples, idx, n_history)
        slots = torch.tensor([samples.slots[i][7 - n_history :] for i in idx])
        feats = feats_all[slots.reshape(-1)].float().reshape(len(idx), n_history + 1, *feats_all.shape[-2:])
        loss, parts = model.loss(feats, ids, rows, label_pos, label_ids, [samples.aux[i] for i in idx])
        part_acc.append(parts)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        acc.append(float(loss.detach()))
        if (step + 1) % 25 == 0 or k + 1 == steps:
            parts = {p: float(np.mean([a[p] for a in part_acc])) for p in part_acc[0]}
            curve.append((step + 1, n_history, float(np.mean(acc)), parts))
            log(
                f"  step {step + 1}/{total} loss {np.mean(acc):.4f} lr {opt.param_groups[0]['lr']:.2e} "
                f"({(time.perf_counter() - t0) / (k + 1):.2f} s/step) "
                + " ".join(f"{p} {v:.3f}" for p, v in parts.items())
            )
            acc, part_acc = [], []
    model.eval()
    return start + steps


def init_from_checkpoint(model: NavModel, ckpt: Path) -> None:
    """Projector + LLM weights of a checkpoint written by `write` (float32 for training)."""
    from safetensors.torch import load_file

    llm = {k: v.float() for k, v in load_file(str(ckpt / "llm" / "model.safetensors")).items()}
    proj = load_file(str(ckpt / "mm_projector" / "model.safetensors"))
    model.llm.load_state_dict(llm, strict=True)
    model.projector.load_state_dict({k.removeprefix("layers."): v.float() for k, v in proj.items()}, strict=True)


def full_tower(trained) -> torch.nn.Module:
    """The checkpoint's tower: the trained layers + the unused last layer (seeded init), like NaVILA's layer 27."""
    tower = make_tower(VISION["num_hidden_layers"])
    own = tower.state_dict()
    own.update({k: v for k, v in trained.state_dict().items() if k in own})
    tower.load_state_dict(own)
    return tower


def write(out: Path, tok_dir: Path, tower, model: NavModel, record: dict, dtype=torch.bfloat16) -> Path:
    if out.exists():
        shutil.rmtree(out)
    save_checkpoint(out, tok_dir, full_tower(tower), model.projector, model.llm, dtype=dtype)
    (out / "training_record.json").write_text(json.dumps(record, indent=1) + "\n")
    return out


# ---------------------------------------------------------------------------------------------------- DAgger
def learner_rollouts(ckpt: Path, episodes, rend: Renderers, rng, log) -> list[tuple[Trajectory, World, dict]]:
    from training.evaluate import VlmPolicy
    from training.rollout import score, summarise

    policy = VlmPolicy(ckpt, rend)
    out, results = [], []
    worlds: dict[int, World] = {}
    for ep in episodes:
        world = worlds.setdefault(ep.layout_seed, World(ep.layout_seed))
        traj = policy.run(world, ep, rng)
        out.append((traj, world, dict(policy.rgb)))
        results.append(score(world, traj))
    log(f"  learner on {len(episodes)} train episodes: {summarise(results)}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="models/nav10")
    ap.add_argument("--work", default="build/nav10")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="a tiny smoke run (minutes)")
    ap.add_argument(
        "--reuse-data",
        action="store_true",
        help="development: reuse the work folder's BC data (tower, frame features, samples) if present",
    )
    ap.add_argument("--init", default=None, help="a stage-1 checkpoint (WORK/ckpt_stage1): start from it, skip stage 1")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override TrainConfig fields")
    args = ap.parse_args(argv)
    cfg = replace(QUICK if args.quick else TrainConfig(), seed=args.seed)
    for kv in args.set:
        k, v = kv.split("=", 1)
        cfg = replace(cfg, **{k: type(getattr(cfg, k))(v)})
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    log = Log(work / "train.log")
    t_start = time.perf_counter()
    times: dict[str, float] = {}
    log(f"config {asdict(cfg)}")

    # 1. episodes, tokenizer
    t = time.perf_counter()
    episodes = make_episodes("train", cfg.bc_layouts, cfg.bc_per_layout, seed=cfg.seed)
    ep_hash = save_episodes(episodes, work / "episodes_bc.jsonl")
    tok = train_tokenizer(tokenizer_corpus(), work / "tokenizer")
    codec = PromptCodec(tok)
    times["episodes"] = time.perf_counter() - t
    log(
        f"{len(episodes)} episodes (sha256 {ep_hash[:12]}), tokenizer {len(tok)} tokens, "
        f"prompt {len(codec.prompt(episodes[0].instruction))} ids"
    )

    cache = work / "bc_data.pt"
    if args.reuse_data and cache.is_file():
        c = torch.load(cache, weights_only=False)
        tower, store, samples, tower_curve, n_frames = c["tower"], c["store"], c["samples"], c["tower_curve"], c["n"]
        rend = Renderers()
        log(f"reused {cache}: {len(samples)} samples, {n_frames} frames")
    else:
        # 2. expert rollouts
        t = time.perf_counter()
        worlds: dict[int, World] = {}
        trajs = []
        for ep in episodes:
            world = worlds.setdefault(ep.layout_seed, World(ep.layout_seed))
            trajs.append((rollout(world, ep, expert_policy, rng, explore=cfg.explore, overshoot=cfg.overshoot), world))
        times["expert_rollouts"] = time.perf_counter() - t
        log(
            f"expert rollouts: {sum(len(tr.queries) for tr, _ in trajs)} queries, "
            f"{sum(len(tr.states) for tr, _ in trajs)} observations, {times['expert_rollouts']:.0f} s"
        )

        # 3. vision tower, auxiliary training
        t = time.perf_counter()
        rend = Renderers()
        picks = sorted(
            (
                (int(i), int(rng.integers(len(trajs[i][0].states))))
                for i in rng.choice(len(trajs), cfg.aux_frames, replace=len(trajs) < cfg.aux_frames)
            ),
            key=lambda p: trajs[p[0]][1].layout.seed,
        )
        rgbs, hists, depths = [], [], []
        for i, k in picks:
            traj, world = trajs[i]
            r = rend.get(world)
            rgbs.append(render_obs(r, traj, k))
            cls, depth = r.render_labels()
            h, d = patch_targets(cls, depth)
            hists.append(h)
            depths.append(d)
        times["aux_render"] = time.perf_counter() - t
        log(f"aux frames: {len(rgbs)} rendered with labels in {times['aux_render']:.0f} s")
        t = time.perf_counter()
        tower = make_tower(VISION["num_hidden_layers"] - 1)
        tower_curve = train_tower(
            tower, rgbs, np.stack(hists), np.stack(depths), cfg.aux_steps, cfg.aux_batch, rng, log=log
        )
        for p in tower.parameters():
            p.requires_grad_(False)
        del rgbs, hists, depths
        times["aux_train"] = time.perf_counter() - t

        # 4. BC frames → features, samples
        t = time.perf_counter()
        with torch.inference_mode():
            black = tower_features(tower, torch.from_numpy(preprocess_frames([np.zeros((384, 384, 3), np.uint8)])))[0]
        store, samples = FeatureStore(black), SampleSet()
        n_frames = 0
        for traj, world in sorted(trajs, key=lambda p: p[1].layout.seed):
            n_frames += add_trajectory(traj, world, rend, tower, store, samples)
        times["bc_frames"] = time.perf_counter() - t
        log(
            f"BC data: {n_frames} frames, {len(samples)} samples, {times['bc_frames']:.0f} s "
            f"({1000 * times['bc_frames'] / max(1, n_frames):.0f} ms/frame)"
        )

        torch.save(
            {"tower": tower, "store": store, "samples": samples, "tower_curve": tower_curve, "n": n_frames}, cache
        )

    # 5. BC training: stage 1 (current frame only), then stage 2 (8 frames) with a fresh optimiser and schedule
    t = time.perf_counter()
    model = NavModel(len(tok), tok.convert_tokens_to_ids("<|begin_of_text|>"), codec.eot)
    curve: list = []
    if args.init:  # stage 2 from a stage-1 checkpoint
        init_from_checkpoint(model, Path(args.init))
        log(f"projector + LLM from {args.init}; stage 1 skipped")
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
        short = (store, samples, codec, 0, cfg.short_steps, cfg.short_steps, cfg.lr, cfg, rng, log, curve)
        train_steps(model, opt, *short, n_history=0, batch=cfg.short_batch)
        times["stage1_train"] = time.perf_counter() - t
        write(work / "ckpt_stage1", work / "tokenizer", tower, model, {"loss": curve})
        log(f"stage-1 checkpoint {work / 'ckpt_stage1'}")
    t = time.perf_counter()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.bc_lr, weight_decay=0.01)
    total = cfg.bc_steps + cfg.dagger_rounds * cfg.dagger_steps
    step = train_steps(model, opt, store, samples, codec, 0, cfg.bc_steps, total, cfg.bc_lr, cfg, rng, log, curve)
    times["stage2_train"] = time.perf_counter() - t

    record = {
        "command": shlex.join(["python", "-m", "training.train", *(sys.argv[1:] if argv is None else argv)]),
        "seed": cfg.seed,
        "config": asdict(cfg),
        "episodes_sha256": {"bc": ep_hash},
        "init": args.init,
        "tower_loss": tower_curve,
        "loss": curve,
        "phases": [] if args.init else [{"name": "stage1", "n_history": 0, "steps": cfg.short_steps}],
    }
    record["phases"].append(
        {"name": "bc", "samples": len(samples), "frames": n_frames, "steps": step, "samples_sha256": samples.digest()}
    )  # the loss curve's steps restart at each stage (its n_history tells them apart)

    # 6. DAgger
    for rnd in range(cfg.dagger_rounds):
        t = time.perf_counter()
        ckpt = write(work / "ckpt_dagger", work / "tokenizer", tower, model, record)
        eps = make_episodes("train", cfg.dagger_layouts, cfg.dagger_per_layout, seed=cfg.seed + 100 + rnd)
        eps = [e for e in eps if e.layout_seed < cfg.bc_layouts] or eps
        record["episodes_sha256"][f"dagger{rnd}"] = save_episodes(eps, work / f"episodes_dagger{rnd}.jsonl")
        runs = learner_rollouts(ckpt, eps, rend, rng, log)
        n_before, n_frames = len(samples), 0
        for traj, world, rgb in runs:
            n_frames += add_trajectory(traj, world, rend, tower, store, samples, rgb)
        times[f"dagger{rnd}_rollouts"] = time.perf_counter() - t
        log(
            f"DAgger round {rnd}: {len(samples) - n_before} new samples ({n_frames} frames) in "
            f"{times[f'dagger{rnd}_rollouts']:.0f} s; total {len(samples)}"
        )
        t = time.perf_counter()
        step = train_steps(
            model, opt, store, samples, codec, step, cfg.dagger_steps, total, cfg.bc_lr, cfg, rng, log, curve
        )
        times[f"dagger{rnd}_train"] = time.perf_counter() - t
        record["phases"].append(
            {
                "name": f"dagger{rnd}",
                "samples": len(samples),
                "new_frames": n_frames,
                "steps": step,
                "samples_sha256": samples.digest(),
            }
        )

    rend.close()
    times["total"] = time.perf_counter() - t_start
    record.update(
        times_s={k: round(v, 1) for k, v in times.items()},
        loss=curve,
        machine={"cpu": platform.processor() or platform.machine(), "threads": cfg.threads, "torch": torch.__version__},
    )
    write(out, work / "tokenizer", tower, model, record)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    log(f"checkpoint {out} ({size / 1e6:.2f} MB), total {times['total'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
