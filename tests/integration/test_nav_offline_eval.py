"""Offline VLN evaluation of the committed navigation model (models/nav10) on val-unseen episodes through the
robot's inference path (engines.vlm.models.NavilaVlm), and the contract drifts that must break it.

A small, fixed episode set so it fits `make test`; the full table comes from `python -m training.evaluate`.
"""

from __future__ import annotations

import pytest

from edge.common.yaml_config import REPO_ROOT

CKPT = REPO_ROOT / "models" / "nav10"
N_LAYOUTS, PER_LAYOUT = 6, 2  # 12 episodes on 6 unseen layouts

pytestmark = pytest.mark.skipif(not (CKPT / "config.json").is_file(), reason="models/nav10 not trained yet")


@pytest.fixture(scope="module")
def episodes():
    from training.episodes import make_episodes

    return make_episodes("val_unseen", N_LAYOUTS, PER_LAYOUT, seed=1)


@pytest.fixture(scope="module")
def baseline(episodes):
    from training.evaluate import evaluate

    summary, _ = evaluate(CKPT, episodes, "none")
    return summary


def test_trained_model_navigates_unseen_layouts(baseline):
    assert baseline["SR"] >= 60.0, baseline  # the full val-unseen table is in docs (SR ≥ 85 % there)
    assert baseline["SPL"] > 0.0 and baseline["OS"] >= baseline["SR"]


@pytest.mark.parametrize("drift", ["bgr", "no_norm", "reversed", "fold"])
def test_contract_drift_costs_success(episodes, baseline, drift):
    from training.evaluate import evaluate

    summary, _ = evaluate(CKPT, episodes, drift)
    assert summary["SR"] <= baseline["SR"] - 30.0, (drift, summary, baseline)
