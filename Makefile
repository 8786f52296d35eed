# Two entry points: `make demo` (simulated Go2 driven through the whole stack) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-done

.PHONY: setup demo test lint bench units clean smoke-real wheelhouse jetson-check doctor train eval-offline test-nav eval

$(STAMP): pyproject.toml scripts/setup.sh
	scripts/setup.sh $(VENV)
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) -m edge.tools.cli demo --out runs

test: lint
	$(PY) -m pytest -q --benchmark-disable --durations=15

# Import contracts (pyproject [tool.importlinter]), ruff lint + format, mypy on the runtime packages.
lint: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m pytest -q tests/benchmarks --benchmark-enable --benchmark-only

units: $(STAMP)
	$(PY) -m edge.tools.cli units --write systemd

clean:
	rm -rf $(VENV) runs .pytest_cache .benchmarks

# Real-scale smoke run (heavy: run alone, niced): real vision sizes + a 2-layer LLM at real width, random weights;
# prints wall time and peak memory (GNU time) for docs/results.md.
smoke-real: $(STAMP)
	nice -n 19 $(PY) -m exporters.tiny --real-scale build/realscale
	nice -n 19 /usr/bin/time -v $(PY) build_engines.py --config configs/engines_realscale.yaml --force 2>&1 \
	  | tee build/realscale/build.log | grep -E "Elapsed|Maximum resident|done in|^[a-z].*(built|fallback)|SKIP|skipped"

# Offline install for a robot without internet: run on a connected machine, copy the folder, then on the robot
# EDGE_WHEELHOUSE=wheelhouse/jp6-cp310-aarch64 scripts/setup.sh (docs/deployment.md).
wheelhouse:
	scripts/wheelhouse.sh wheelhouse/jp6-cp310-aarch64

# This machine checked for the robot (pass / warn / fail with the fix); then everything on a new Orin, one report.
doctor: $(STAMP)
	$(VENV)/bin/edge doctor

jetson-check: $(STAMP)
	$(PY) -m edge.tools.jetson_check --out runs/jetson-check

# Issue 10: train the navigation VLM from scratch in one command (docs/navigation.md; 31 min on the quiet 2-core
# machine, docs/results.md) into build/nav10/model, not over the committed models/nav10; evaluate it with
# `python -m training.evaluate build/nav10/model --layouts 25 --per-layout 2`.
train: $(STAMP)
	nice -n 19 $(PY) -m training.train --out build/nav10/model --work build/nav10

# The model's evaluation record (50 val-unseen episodes, per-episode answers, tied to the checkpoint's files by
# sha256): the fast drift tests in make test replay its quickest successes
# (tests/integration/test_nav_contract_drift.py).
eval-offline: $(STAMP)
	nice -n 19 $(PY) -m training.evaluate models/nav10 --layouts 25 --per-layout 2 --drifts none \
		--json models/nav10/offline_eval.json

# Issue 10: the trained model through the whole stack (sim ⇄ DDS ⇄ control, camera → vlmd → parser → navigator), one
# fresh stack per val-unseen episode (≈ 2 min each on 2 cores): build/eval/<stamp>/eval.{json,md} + per-episode
# recordings, episode.json and reports. `make eval EPISODES=4 OVERLAP=both` for fewer episodes / the overlap runs.
EPISODES ?= 20
OVERLAP ?= off
eval: $(STAMP)
	nice -n 19 $(PY) -m training.stack_eval --episodes $(EPISODES) --overlap $(OVERLAP) --out build/eval

# The unselected offline-evaluation tests (8 episodes: real contract, drifts, ONNX vision): ≈ 12 min, not in make test.
test-nav: $(STAMP)
	EDGE_NAV_EVAL=1 nice -n 19 $(PY) -m pytest -q tests/integration/test_nav_offline_eval.py
