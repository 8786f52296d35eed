"""NaVILA-format training samples: 8 frames by the sampling rule, the exact prompt, the expert's answer.

Frames are stored once as vision-tower features (the tower is frozen after its auxiliary training), fp16
[n, 729, d_vis] in a FeatureStore; index 0 is the black padding frame. A sample is (8 store indices in prompt order,
instruction, answer); the prompt is engines.vlm.prompts.navila_prompt tokenised by
engines.vlm.models.tokenize_with_images (double BOS included) and the answer is the expert's sentence followed by
<|eot_id|>.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch

from engines.vlm.generator import IMAGE_TOKEN_INDEX
from engines.vlm.models import VlmFrame, navila_sample, tokenize_with_images
from engines.vlm.prompts import navila_prompt
from engines.vlm.vision import preprocess_frames

BLACK = 0
_DUMMY = np.zeros((1, 1, 3), np.uint8)
TOKENS_PER_FRAME = 196
ANSWERS = (
    [f"The next action is move forward {d} cm." for d in (25, 50, 75)]
    + [f"The next action is turn {s} {a} degrees." for s in ("left", "right") for a in (15, 30, 45)]
    + ["The next action is stop."]
)


def sample_slots(observations: list[int], current: int) -> list[int]:
    """Store indices of the 8 frames the model sees at the query whose current observation is `current`
    (`observations[k]` = store index of observation k), by engines.vlm.navila_sample itself."""
    hist = [VlmFrame(observations[k], _DUMMY) for k in range(current)]
    picked = navila_sample(hist, VlmFrame(observations[current], _DUMMY))
    return [BLACK if f.frame_id == -1 else f.frame_id for f in picked]


def used_observations(queries: list[int]) -> list[int]:
    """Observation indices that any of these queries (given by their current observation index) shows the model —
    the only frames worth rendering."""
    used: set[int] = set()
    for c in queries:
        used.update(s - 1 for s in sample_slots([k + 1 for k in range(c + 1)], c) if s != BLACK)
    return sorted(used)


class FeatureStore:
    """Append-only fp16 tower features; `tensor()` concatenates (cached until the next append)."""

    def __init__(self, black: torch.Tensor):
        self.chunks: list[torch.Tensor] = [black.to(torch.float16).reshape(1, *black.shape[-2:])]
        self.n = 1
        self._cat: torch.Tensor | None = None

    def add(self, feats: torch.Tensor) -> list[int]:
        idx = list(range(self.n, self.n + len(feats)))
        self.chunks.append(feats.to(torch.float16))
        self.n += len(feats)
        self._cat = None
        return idx

    def tensor(self) -> torch.Tensor:
        if self._cat is None:
            self._cat = torch.cat(self.chunks)
            self.chunks = [self._cat]
        return self._cat


@dataclass
class SampleSet:
    slots: list[list[int]] = field(default_factory=list)
    instructions: list[str] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)  # index into ANSWERS
    aux: list[dict[str, int]] = field(default_factory=list)  # training-only truth (aux_truth)

    def add(self, slots: list[int], instruction: str, answer_text: str, aux: dict[str, int] | None = None) -> None:
        self.slots.append(slots)
        self.instructions.append(instruction)
        self.answers.append(ANSWERS.index(answer_text))
        self.aux.append(aux or {})

    def __len__(self) -> int:
        return len(self.answers)

    def digest(self) -> str:
        h = hashlib.sha256()
        for s, i, a in zip(self.slots, self.instructions, self.answers):
            h.update(f"{s}|{i}|{a}\n".encode())
        return h.hexdigest()


class PromptCodec:
    """Token ids of prompts (with IMAGE_TOKEN_INDEX placeholders) and answers, cached per string."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.eot = tokenizer.convert_tokens_to_ids("<|eot_id|>")
        self._prompts: dict[tuple[str, int], list[int]] = {}
        self.answer_ids = [tokenizer(a, add_special_tokens=False).input_ids + [self.eot] for a in ANSWERS]

    def prompt(self, instruction: str, n_history: int = 7) -> list[int]:
        key = (instruction, n_history)
        ids = self._prompts.get(key)
        if ids is None:
            ids = self._prompts[key] = tokenize_with_images(self.tok, navila_prompt(instruction, n_history))
        return ids


def image_rows(prompt_ids: list[int]) -> list[int]:
    """Sequence positions of the image rows once each placeholder is expanded to TOKENS_PER_FRAME rows."""
    rows, pos = [], 0
    for t in prompt_ids:
        if t == IMAGE_TOKEN_INDEX:
            rows.extend(range(pos, pos + TOKENS_PER_FRAME))
            pos += TOKENS_PER_FRAME
        else:
            pos += 1
    return rows


def build_batch(codec: PromptCodec, samples: SampleSet, idx: list[int], n_history: int = 7):
    """(text ids [B, T] with 0 at image rows, image row positions [(n_history + 1)·196], label positions list, label
    ids) for a right-padded batch. The image rows sit at the same positions in every prompt (only text after the last
    image varies), which is checked. n_history < 7: the curriculum's short prompt (navila_prompt with fewer history
    frames; the samples' last n_history + 1 slots)."""
    seqs, label_pos, label_ids, rows = [], [], [], None
    for i in idx:
        p = codec.prompt(samples.instructions[i], n_history)
        r = image_rows(p)
        if rows is None:
            rows = r
        elif r != rows:
            raise ValueError("image rows differ between prompts")
        text = []
        for t in p:
            text.extend([0] * TOKENS_PER_FRAME if t == IMAGE_TOKEN_INDEX else [t])
        a = codec.answer_ids[samples.answers[i]]
        label_pos.append(list(range(len(text) - 1, len(text) - 1 + len(a))))  # logits at t predict token t+1
        label_ids.append(a)
        seqs.append(text + a)
    t_max = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), t_max), codec.eot, dtype=torch.long)
    for b, s in enumerate(seqs):
        ids[b, : len(s)] = torch.tensor(s)
    return ids, torch.tensor(rows), label_pos, label_ids


def encode_rgb(tower, rgbs: list[np.ndarray], batch: int = 16) -> torch.Tensor:
    """RGB frames (any size) → fp16 tower features [n, 729, d_vis] through the exact preprocessing."""
    from training.model import tower_features

    out = []
    with torch.inference_mode():
        for i in range(0, len(rgbs), batch):
            x = torch.from_numpy(preprocess_frames(rgbs[i : i + batch]))
            out.append(tower_features(tower, x).to(torch.float16))
    return torch.cat(out) if out else torch.zeros(0)


# ---------------------------------------------------------------------------------------------------- auxiliary truth
BEARING_BINS = 9  # 10° bins over the camera's ±45°; class 0 = goal not in view
DIST_EDGES = (0.9, 1.25, 2.0, 3.0, 4.5)
AUX_SIZES = {"colour": 6, "bearing": BEARING_BINS + 1, "dist": len(DIST_EDGES) + 1, "room": 2, "turn": 2}


def aux_truth(layout, state, goal, instruction: str) -> dict[str, int]:
    """Training-only targets at a query: from simulator truth the goal colour, goal bearing bin in the current view
    (0 = not visible), distance bin, same room; from the instruction its turn direction (turn_target). Used by
    auxiliary heads that are not part of the checkpoint."""
    import math

    from training.geometry import line_of_sight, wrap

    rel = wrap(math.atan2(goal.y - state.y, goal.x - state.x) - state.yaw)
    d = math.hypot(goal.x - state.x, goal.y - state.y)
    vis = abs(rel) <= math.radians(45) and line_of_sight(layout, state.x, state.y, goal.x, goal.y, goal.radius)
    bearing = 0 if not vis else 1 + min(BEARING_BINS - 1, int((math.degrees(rel) + 45) // 10))
    return {
        "colour": goal.colour_index,
        "bearing": bearing,
        "dist": int(np.searchsorted(DIST_EDGES, d)),
        "room": int(layout.room_of(state.x, state.y) == layout.room_of(goal.x, goal.y)),
        "turn": turn_target(instruction),
    }


def turn_target(instruction: str) -> int:
    """Auxiliary target read from the instruction alone: 1 if it begins "Turn right" (training.episodes' turn
    templates), else 0. Without this head the models did not learn to tell "Turn left" from "Turn right"
    (docs/navigation.md §6)."""
    return int(instruction.startswith("Turn right"))
