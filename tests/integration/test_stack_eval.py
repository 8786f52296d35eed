"""One val-unseen episode of `make eval` on the whole stack: the layout in the simulator and the camera, the trained
model in vlmd (ONNX vision, `history: primitive`), scored from simulator truth by training.rollout.score, with
episode.json and the report written. ≈ 2 min on the loaded 2-core machine: runs with EDGE_STACK_EVAL=1."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edge.common.yaml_config import REPO_ROOT

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (REPO_ROOT / "models" / "nav10" / "config.json").is_file(), reason="no models/nav10"),
    pytest.mark.skipif(os.environ.get("EDGE_STACK_EVAL") != "1", reason="slow (≈ 2 min): EDGE_STACK_EVAL=1"),
]


def test_one_episode_through_the_stack(tmp_path):
    from drivers.sim.nav_world import generate_layout
    from training.stack_eval import evaluate_stack, stack_episodes

    ep = stack_episodes(2)[1]  # val_unseen-1000-1, "Go to the yellow ball and stop." (1.9 m)
    out = evaluate_stack([ep], tmp_path)
    row = out["episodes"][0]
    run_dir = Path(row["run_dir"])  # <id>, or <id>-retry1 after a run again
    written = json.loads((run_dir / "episode.json").read_text())
    goal = generate_layout(ep.layout_seed).landmark(ep.goal)
    assert written["goal"] == {
        "colour": goal.colour,
        "shape": goal.shape,
        "x": goal.x,
        "y": goal.y,
        "radius_m": goal.radius,
    }
    assert written["start"] == list(ep.start) and written["success"] == row["success"]
    assert written["stop_reason"] != "fell" and not written["stop_reason"].startswith("damped")
    assert row["steps"] >= 1 and row["path_m"] > 0.3  # the model's answers moved the robot
    assert (run_dir / "report.png").is_file()
