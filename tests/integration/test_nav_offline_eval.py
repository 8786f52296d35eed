"""Offline VLN evaluation of the committed navigation model (models/nav10) on val-unseen episodes through the
robot's inference path (engines.vlm.models.NavilaVlm), the contract drifts that must break it, and the ONNX vision
path that must not change a single answer.

A small, fixed episode set; the full table comes from `make eval-offline` (docs/results.md). Still too slow for
`make test` (6 evaluations of 8 episodes: 11 min 47 s on the loaded 2-core machine, a failing drift wanders 40 answers),
so it runs with EDGE_NAV_EVAL=1 (`make test-nav`). Skipped while no model is committed.
"""

from __future__ import annotations

import os

import pytest

from edge.common.yaml_config import REPO_ROOT

CKPT = REPO_ROOT / "models" / "nav10"
N_LAYOUTS, PER_LAYOUT = 4, 2  # 8 episodes on 4 unseen layouts
# The baseline must navigate, or the drift comparison means nothing. The committed model scored 37.5 % on these 8
# episodes (3 of 8; docs/results.md has the larger table): far from the issue's 80 %, well above the drifts' 0 %.
MIN_SR = 30.0

pytestmark = [
    pytest.mark.skipif(not (CKPT / "config.json").is_file(), reason="models/nav10 not trained yet"),
    pytest.mark.skipif(os.environ.get("EDGE_NAV_EVAL") != "1", reason="slow (≈ 12 min): make test-nav"),
]


@pytest.fixture(scope="module")
def episodes():
    from training.episodes import make_episodes

    return make_episodes("val_unseen", N_LAYOUTS, PER_LAYOUT, seed=1)


@pytest.fixture(scope="module")
def baseline(episodes):
    from training.evaluate import evaluate

    return evaluate(CKPT, episodes, "none")


def test_trained_model_navigates_unseen_layouts(baseline):
    summary, _ = baseline
    assert summary["SR"] >= MIN_SR, summary
    assert summary["SPL"] > 0.0 and summary["OS"] >= summary["SR"]


@pytest.mark.parametrize("drift", ["bgr", "no_norm", "reversed", "fold"])
def test_contract_drift_costs_success(episodes, baseline, drift):
    from training.evaluate import evaluate

    summary, _ = evaluate(CKPT, episodes, drift)
    assert summary["SR"] <= baseline[0]["SR"] - 30.0, (drift, summary, baseline[0])


def test_onnx_vision_path_chooses_the_same_actions(episodes, baseline):
    """The vision tower + projector exported by exporters.vision (parity-gated) and run by ONNX Runtime: every answer
    of every episode is the PyTorch path's."""
    from training.evaluate import evaluate

    _, results = evaluate(CKPT, episodes, "none", vision="onnx")
    assert [r.answers for r in results] == [r.answers for r in baseline[1]]
    assert sum(len(r.answers) for r in results) >= len(episodes)
