"""Fast offline VLN evaluation in `make test`: the committed navigation model (models/nav10) on a few recorded
val-unseen episodes, through the robot's inference path (engines.vlm.models.NavilaVlm, ActionParser), kinematic
execution, no physics — with the real contract, with each contract drift, and with the ONNX vision path.

The episodes are the quickest successes of the model's own offline evaluation record (models/nav10/offline_eval.json,
written by `make eval-offline` and tied to the weights by their sha256): so the real contract must solve them again
(the record's answers, reproduced), and each drift — which keeps every shape but breaks the meaning — must lose at
least 30 points of success rate on them (issue 10). The model's success rate itself is the 50-episode table in
docs/results.md, not this selection. The slower, unselected version is tests/integration/test_nav_offline_eval.py
(`make test-nav`).
"""

from __future__ import annotations

import json

import pytest

from edge.common.yaml_config import REPO_ROOT

CKPT = REPO_ROOT / "models" / "nav10"
RECORD = CKPT / "offline_eval.json"
N_EPISODES = 4
MAX_ANSWERS = 16  # the selected episodes took ≤ MAX_STEPS answers; a drifted run may wander this long at most
MAX_STEPS = 14
DRIFTS = ["bgr", "no_norm", "reversed", "fold"]

pytestmark = pytest.mark.skipif(not RECORD.is_file(), reason="models/nav10 has no offline evaluation record")


@pytest.fixture(scope="module")
def record() -> dict:
    from training.evaluate import checkpoint_digest

    rec = json.loads(RECORD.read_text())
    assert rec["checkpoint_sha256"] == checkpoint_digest(CKPT), (
        "models/nav10/offline_eval.json evaluated another checkpoint (weights, configs or tokenizer): run "
        "`make eval-offline`"
    )
    return rec


@pytest.fixture(scope="module")
def episodes(record):
    from training.episodes import layout_episodes

    solved = sorted(
        (e for e in record["runs"]["none"]["episodes"] if e["success"] and e["steps"] <= MAX_STEPS),
        key=lambda e: (e["steps"], e["episode_id"]),
    )[:N_EPISODES]
    assert len(solved) == N_EPISODES, f"the record has only {len(solved)} quick successes"
    ids = {e["episode_id"]: e for e in solved}
    layouts = sorted({int(i.split("-")[-2]) for i in ids})
    eps = [
        e
        for ls in layouts
        for e in layout_episodes(record["split"], ls, record["per_layout"], record["episode_seed"])
        if e.episode_id in ids
    ]
    assert sorted(e.episode_id for e in eps) == sorted(ids)
    return eps, ids


@pytest.fixture(scope="module")
def baseline(episodes):
    from training.evaluate import evaluate

    return evaluate(CKPT, episodes[0], "none", max_actions=MAX_ANSWERS)


def test_real_contract_reproduces_the_recorded_successes(episodes, baseline):
    summary, results = baseline
    recorded = episodes[1]
    # Greedy decoding on CPU: the same answers as the record, unless a near-tie flips on another CPU's kernels.
    same = sum(list(r.answers) == recorded[r.episode_id]["answers"] for r in results)
    assert summary["SR"] >= 75.0, (summary, [(r.episode_id, r.end_reason, r.ne) for r in results])
    assert same >= N_EPISODES - 1, [(r.episode_id, r.answers) for r in results]


@pytest.mark.parametrize("drift", DRIFTS)
def test_contract_drift_costs_30_points_of_success(episodes, baseline, drift):
    from training.evaluate import evaluate

    summary, results = evaluate(CKPT, episodes[0], drift, max_actions=MAX_ANSWERS)
    assert summary["SR"] <= baseline[0]["SR"] - 30.0, (drift, summary, [r.answers for r in results])


def test_onnx_vision_chooses_the_same_actions(episodes, baseline):
    """exporters.vision's ONNX export (parity-gated) under ONNX Runtime: every answer is the PyTorch path's."""
    from training.evaluate import evaluate

    _, results = evaluate(CKPT, episodes[0], "none", vision="onnx", max_actions=MAX_ANSWERS)
    assert [r.answers for r in results] == [r.answers for r in baseline[1]]
