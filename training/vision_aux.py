"""Auxiliary training of the vision tower from simulator truth: per-patch class (none / floor / wall / door frame /
landmark colour) and log depth, from segmentation and depth renders of the same camera.

Targets live on the tower's 27×27 patch grid of the 384×384 squashed frame: the W×H render is resized
(nearest) to 384×384 like the frame, and each 14×14 patch (the first 378 px; SigLIP's stride-14 patch conv ignores
the rest) gets its class histogram and mean log depth. The head (Linear on the tower output) is training-only and
not part of the checkpoint.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from engines.vlm.vision import preprocess_frames
from training.model import VISION, tower_features
from training.render import N_CLASSES

GRID, PATCH, SIZE = 27, 14, 384


def patch_targets(cls: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(class histogram [27, 27, N_CLASSES] float32, mean log depth [27, 27] float32) of one frame."""
    h, w = cls.shape
    ys = np.arange(GRID * PATCH) * h // SIZE
    xs = np.arange(GRID * PATCH) * w // SIZE
    c = cls[np.ix_(ys, xs)].reshape(GRID, PATCH, GRID, PATCH)
    hist = np.zeros((GRID, GRID, N_CLASSES), np.float32)
    for k in range(N_CLASSES):
        hist[..., k] = (c == k).mean(axis=(1, 3))
    d = np.log(np.clip(depth[np.ix_(ys, xs)], 0.05, 30.0)).reshape(GRID, PATCH, GRID, PATCH).mean(axis=(1, 3))
    return hist, d.astype(np.float32)


def train_tower(
    tower: nn.Module,
    rgbs: list[np.ndarray],
    hists: np.ndarray,
    depths: np.ndarray,
    steps: int,
    batch: int,
    rng: np.random.Generator,
    lr: float = 2e-3,
    log=print,
) -> list[tuple[int, float]]:
    """Train `tower` (+ a throwaway linear head) on soft class cross-entropy (landmark classes weighted ×10: they
    cover few pixels) + 0.5 · L1 log depth. Returns the loss curve [(step, loss)]."""
    head = nn.Linear(VISION["hidden_size"], N_CLASSES + 1)
    params = [p for p in tower.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    weight = torch.ones(N_CLASSES)
    weight[4:] = 10.0
    curve, acc, t0 = [], [], time.perf_counter()
    tower.train()
    for step in range(steps):
        idx = rng.choice(len(rgbs), batch, replace=False)
        x = torch.from_numpy(preprocess_frames([rgbs[i] for i in idx]))
        y = head(tower_features(tower, x))  # [B, 729, C+1]
        target = torch.from_numpy(hists[idx]).reshape(batch, -1, N_CLASSES)
        logp = torch.log_softmax(y[..., :N_CLASSES], -1)
        ce = -(target * logp * weight).sum(-1).mean()
        dl = (y[..., N_CLASSES] - torch.from_numpy(depths[idx]).reshape(batch, -1)).abs().mean()
        loss = ce + 0.5 * dl
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        acc.append(float(loss.detach()))
        if (step + 1) % 25 == 0 or step + 1 == steps:
            curve.append((step + 1, float(np.mean(acc))))
            log(
                f"  tower step {step + 1}/{steps} loss {np.mean(acc):.4f} (ce {float(ce.detach()):.3f} "
                f"depth {float(dl.detach()):.3f}) {time.perf_counter() - t0:.0f} s"
            )
            acc = []
    tower.eval()
    return curve
