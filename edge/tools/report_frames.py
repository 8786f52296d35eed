"""report.png's strip of the camera frames each VLM query used (drawn by edge/tools/report_plots.py)."""

from __future__ import annotations

import math

import numpy as np

from edge.msg.recording import decode_image
from edge.tools.report_common import short_sentence

STRIP_COLS, STRIP_ROWS = 3, 4  # at most 12 queries' frames per run (evenly chosen, the last always)
THUMB_H = 96  # pixels of one frame in the strip
IMAGE_CHANNEL = "cameraFrame/image"


def strip_rows(log_: dict, run: dict) -> int:
    n = len(log_.get("vlmOutput", []))
    if not n or not run.get("_images", {}).get(IMAGE_CHANNEL):
        return 0
    return min(STRIP_ROWS, math.ceil(n / STRIP_COLS))


def query_frames(query: dict, headers: dict[int, int], images: list[dict]) -> list[tuple[int, bool]]:
    """The recorded images a VLM query used, as (index into images, exact) in the query's frame order, repeats
    dropped. The VLM's sampled frames (vlmOutput.frame_ids; -1 pads) are used where the recorder kept their pixels
    (exact: the image stamped with that frame's header time); the recorder keeps camera images at
    Topic.record_payload_hz only, so a sampled frame it did not keep is stood in for by the recorded image nearest
    in time to that frame's header (not exact); a frame whose header is not in the recording, and a query with no
    frame ids, by the image nearest the query's launch."""
    stamps = np.array([im["mono_ns"] for im in images], dtype=np.int64)
    by_stamp = {int(s): i for i, s in enumerate(stamps)}
    ids = [f for f in query["msg"]["frame_ids"] if f >= 0] or [None]
    out: list[tuple[int, bool]] = []
    for fid in ids:
        t = headers.get(fid) if fid is not None else None
        if t is not None and t in by_stamp:
            pick = (by_stamp[t], True)
        else:
            target = t if t is not None else query["msg"]["launched_mono_ns"]
            pick = (int(np.argmin(np.abs(stamps - target))), False)
        if all(pick[0] != p[0] for p in out):
            out.append(pick)
    return out


def _thumb(image: dict, cache: dict[int, np.ndarray], index: int, exact: bool) -> np.ndarray:
    from PIL import Image

    if index not in cache:
        px = decode_image(image)
        if px.ndim == 2:  # depth: scale to grey for a look
            px = np.repeat((255.0 * px / max(1, int(px.max()))).astype(np.uint8)[..., None], 3, axis=2)
        w = max(1, round(px.shape[1] * THUMB_H / px.shape[0]))
        cache[index] = np.asarray(Image.fromarray(px).resize((w, THUMB_H)))
    t = cache[index].copy()
    border = (49, 163, 84) if exact else (253, 141, 60)  # green: the sampled frame itself; orange: nearest recorded
    t[:3], t[-3:], t[:, :3], t[:, -3:] = border, border, border, border
    return t


def plot_strip(fig, spec, log_: dict, run: dict, rows: int) -> None:
    images = run["_images"][IMAGE_CHANNEL]
    headers = {r["msg"]["frame_id"]: r["mono_ns"] for r in log_.get("cameraFrame", [])}
    queries = log_["vlmOutput"]
    n_panels = min(len(queries), STRIP_COLS * STRIP_ROWS)
    chosen = sorted({round(i * (len(queries) - 1) / max(1, n_panels - 1)) for i in range(n_panels)})
    grid = spec.subgridspec(rows, STRIP_COLS, wspace=0.04, hspace=0.2)
    cache: dict[int, np.ndarray] = {}
    for k, qi in enumerate(chosen):
        q = queries[qi]
        picks = query_frames(q, headers, images)
        thumbs = [_thumb(images[i]["image"], cache, i, exact) for i, exact in picks]
        gap = np.full((THUMB_H, 4, 3), 255, np.uint8)
        mosaic = np.concatenate([x for t in thumbs for x in (t, gap)][:-1], axis=1)
        ax = fig.add_subplot(grid[k // STRIP_COLS, k % STRIP_COLS])
        ax.imshow(mosaic)
        ax.set_xticks([])
        ax.set_yticks([])
        m = q["msg"]
        exact = sum(e for _, e in picks)
        when = (q["mono_ns"] - run["t0_mono_ns"]) * 1e-9
        answer = m["error"] or short_sentence(m["text"]) or "(empty)"
        ax.set_title(
            f"q{m['query_id']} at {when:.1f} s → {answer}  [{exact}/{len(picks)} exact]", fontsize=8, loc="left"
        )
        if k == 0:
            ax.set_ylabel(
                f"{len(chosen)} of {len(queries)} VLM\nqueries' frames\n(green: sampled\nframe; orange:\n"
                "nearest recorded)",
                fontsize=7,
            )
