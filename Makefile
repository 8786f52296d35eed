# Two entry points: `make demo` (simulated Go2 driven through the whole stack) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-done

.PHONY: setup demo test lint bench units clean

$(STAMP): pyproject.toml scripts/setup.sh
	scripts/setup.sh $(VENV)
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) -m edge.tools.cli demo --out runs

test: lint
	$(PY) -m pytest -q --benchmark-disable

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
