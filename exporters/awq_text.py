"""Navigation-domain calibration text for INT4-AWQ (TensorRT-LLM `examples/quantization/quantize.py`).

Each sample = a real query prompt (engines/vlm/prompts.py, byte-exact template) for an R2R-style instruction written for
this project, followed by a plausible answer and the stop token, so calibration sees the prompt *and* the decode
distribution. `<image>` placeholders are removed (their surrounding text, e.g. the "\\n" after each frame, is kept):
quantize.py feeds text only, so the text tokens are exactly those of a real query; the ~1568 visual rows of a real
query are not represented (AWQ scales come from text activations only — a known limitation).

Format: quantize.py (0.11+, `--calib_dataset`) takes a Hugging Face dataset name or a local directory; for a directory
it calls `datasets.load_dataset(dir, split="train")` and reads the "text" column. So we write `<dir>/train.jsonl`
with one {"text": ...} per line; pass `<dir>` as `--calib_dataset`. (The path must not contain "cnn_dailymail",
"pileval" or "scienceqa", which quantize.py matches first.)

CLI: python -m exporters.awq_text --out calib.jsonl --n 32 [--family navila|streamvln]
     (writes calib.jsonl and the dataset folder calib/train.jsonl; an --out without .jsonl is the folder itself).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from engines.vlm.prompts import IMAGE, MEMORY, NAVILA_STOP, STREAMVLN_STOP, navila_prompt, streamvln_prompt

INSTRUCTIONS = (
    "Walk past the sofa and stop at the door.",
    "Turn left at the end of the hallway and wait next to the plant.",
    "Go up the stairs and stop at the top landing.",
    "Exit the bedroom, turn right, and stop in front of the bathroom sink.",
    "Walk straight through the kitchen and stop beside the refrigerator.",
    "Turn around and walk to the dining table, then stop by the chair closest to the window.",
    "Move forward until you reach the rug, then turn left and stop at the bookshelf.",
    "Leave the living room through the open doorway and wait in the hallway.",
    "Walk between the two couches and stop in front of the television.",
    "Go down the hallway, pass the framed painting, and stop at the second door on the left.",
    "Turn right and walk towards the large window. Stop before you reach the curtains.",
    "Head into the laundry room and stop next to the washing machine.",
    "Walk past the kitchen island and stop at the back door.",
    "Go through the glass door onto the patio and stop near the outdoor table.",
    "Turn left, walk down the corridor, and stop at the elevator.",
    "Walk forward past the desk and stop next to the office chair.",
    "Exit the bathroom and turn left. Stop when you reach the closet.",
    "Go around the coffee table and stop in front of the fireplace.",
    "Walk to the end of the room and turn right into the study. Stop at the lamp.",
    "Move towards the staircase but do not go up. Stop at the bottom step.",
    "Turn slightly right and walk to the potted tree in the corner.",
    "Walk along the wall with the photos and stop at the light switch.",
    "Enter the garage through the side door and stop beside the car.",
    "Go past the piano and wait at the entrance to the hallway.",
    "Walk out of the kitchen, cross the hallway, and stop inside the bedroom doorway.",
    "Turn around, walk past the bed, and stop next to the nightstand.",
    "Walk straight ahead through two doorways and stop at the bathroom mirror.",
    "Go to the front door and stop on the doormat.",
    "Walk down the stairs, turn left at the bottom, and stop by the shoe rack.",
    "Move past the white cabinet and stop in front of the microwave.",
    "Turn left into the dining room and stop at the head of the table.",
    "Walk past the armchair and the floor lamp, then stop facing the balcony door.",
    "Follow the hallway to the right and stop at the open bedroom door.",
    "Go forward a few steps and turn right. Stop next to the trash can.",
    "Walk across the lobby to the reception desk and wait there.",
    "Leave the conference room and stop next to the water cooler.",
    "Walk past the row of chairs and stop at the whiteboard.",
    "Turn right at the kitchen counter and stop beside the sink.",
    "Go through the archway and stop in the middle of the living room.",
    "Walk up to the blue couch and turn left. Stop at the side table.",
    "Head towards the stairs, go up one floor, and stop at the first door on the right.",
    "Walk past the bathtub and stop in front of the towel rack.",
    "Exit the room through the door on your left and stop in the hallway by the radiator.",
    "Move forward until the hallway ends, then turn left and stop at the window.",
    "Walk around the kitchen table and stop next to the oven.",
    "Go into the closet and stop before the shelves.",
    "Turn around and exit the office. Stop at the top of the stairs.",
    "Walk past the laundry basket and stop beside the dryer.",
    "Go straight past the couch, turn right at the plant, and stop at the sliding door.",
    "Walk towards the mirror on the wall and stop a step in front of it.",
    "Leave the kitchen through the far doorway and stop next to the coat hooks.",
    "Walk down the corridor past three doors and stop at the fourth one.",
    "Turn left, pass the dresser, and stop at the foot of the bed.",
    "Walk into the hallway and stop between the two paintings.",
    "Go past the sink and the toilet and stop at the shower.",
    "Move to the corner of the room where the guitar is and stop there.",
    "Walk forward, turn right after the column, and stop at the vending machine.",
    "Cross the room to the opposite doorway and stop just before going through it.",
    "Walk past the recliner, turn left into the kitchen, and stop at the counter.",
    "Go back the way you came and stop at the bottom of the staircase.",
    "Walk out onto the balcony and stop by the railing.",
    "Turn right and go past the bookcase. Stop when you reach the desk lamp.",
)

NAVILA_ANSWERS = (
    "The next action is move forward 75 cm.",
    "The next action is move forward 25 cm.",
    "The next action is move forward 50 cm.",
    "The next action is turn left 15 degrees.",
    "The next action is turn left 30 degrees.",
    "The next action is turn right 45 degrees.",
    "The next action is turn right 15 degrees.",
    "The next action is stop.",
)
STREAMVLN_ANSWERS = ("↑↑↑↑", "←←↑↑", "→→↑↑", "↑↑←←", "↑↑→→", "↑↑↑STOP", "←←←←", "STOP")


def calibration_texts(n: int = 32, family: str = "navila", seed: int = 0) -> list[str]:
    """`n` samples (instructions cycled in a seeded order), placeholders removed, answer + stop token appended."""
    if family not in ("navila", "streamvln"):
        raise ValueError(f"family must be navila or streamvln, got {family!r}")
    rng = random.Random(seed)
    order = list(INSTRUCTIONS)
    rng.shuffle(order)
    texts = []
    for i in range(n):
        instruction = order[i % len(order)]
        if family == "navila":
            prompt = navila_prompt(instruction)
            answer = rng.choice(NAVILA_ANSWERS) + NAVILA_STOP
        else:
            prompt = streamvln_prompt(instruction, memory=i % 2 == 1)
            # The released template renders an empty assistant turn; the answer follows it as generated ids.
            answer = rng.choice(STREAMVLN_ANSWERS) + STREAMVLN_STOP
        texts.append(prompt.replace(IMAGE, "").replace(MEMORY, "") + answer)
    return texts


def write_jsonl(path: str | Path, texts: list[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
    return path


def write_dataset_dir(directory: str | Path, texts: list[str]) -> Path:
    """A folder `datasets.load_dataset(dir, split="train")` reads: `<dir>/train.jsonl` with a "text" column."""
    directory = Path(directory)
    write_jsonl(directory / "train.jsonl", texts)
    return directory


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="x.jsonl (also writes folder x/) or a folder")
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--family", choices=("navila", "streamvln"), default="navila")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    texts = calibration_texts(a.n, a.family, a.seed)
    out = Path(a.out)
    if out.suffix == ".jsonl":
        print(f"wrote {write_jsonl(out, texts)}")
        out = out.with_suffix("")
    folder = write_dataset_dir(out, texts)
    print(f"wrote {folder / 'train.jsonl'} ({len(texts)} samples); pass --calib_dataset {folder} to quantize.py")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
