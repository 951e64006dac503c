# keyturn's developer commands. Each target installs what it needs into .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: help demo test unit integration e2e lint typecheck docs docs-config bench mutation soak clean package template

help:
	@echo "make demo   - run keyturn end to end against local AWS (moto) and OpenBao servers"
	@echo "make test   - lint, type-check, build the docs strictly, run every test (unit, integration, e2e)"
	@echo "make lint   - ruff and mypy only"
	@echo "make docs   - check the generated config reference, build the docs site strictly"
	@echo "make docs-config - regenerate docs/reference/configuration.md from the settings model"
	@echo "make bench  - benchmarks against a local moto_server (not part of make test)"
	@echo "make mutation - mutmut over the pure core, kill rate per module (not part of make test)"
	@echo "make package  - build/keyturn-lambda.zip for the SAM template (reproducible)"
	@echo "make template - regenerate deploy/template.yaml and deploy/member-role.yaml"
	@echo "make soak   - enforce, rotate, leases at volume, throttling injected (SOAK_USERS, SOAK_ROTATIONS, SOAK_LEASES)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# One stamp per extra, rebuilt when pyproject.toml changes.
$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[$*]"
	@touch $@

demo: $(VENV)/.installed-servers
	$(BIN)/python -m demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench demo mutation
	$(BIN)/ruff format --check src tests bench demo mutation
	$(BIN)/mypy

typecheck: lint

# The suite runs in parallel (pytest-xdist): one worker per logical CPU, 2 on CI
# (`PYTEST_WORKERS=0 make test` runs it serially, `PYTEST_WORKERS=4` sets the number). Each
# worker starts its own moto and OpenBao servers on free ports (tests/conftest.py).
# `loadgroup`: a test goes to whichever worker is free, except tests marked
# `@pytest.mark.xdist_group("name")`, which all run on one worker, one after another.
PYTEST_WORKERS ?= logical
PYTEST_PARALLEL := -n $(PYTEST_WORKERS) --dist loadgroup

test: lint docs
	$(BIN)/python -m pytest tests $(PYTEST_PARALLEL)

# The site is built into a throw-away directory: the point is that it builds. `--strict`
# turns every warning (a broken link or anchor, a page missing from the nav) into a failure;
# never add `-q`, which hides the warnings and lets a strict build pass.
docs: $(VENV)/.installed-dev
	$(BIN)/python -m keyturn.docs_config --check
	@site=$$(mktemp -d) && trap 'rm -rf "$$site"' EXIT && \
		$(BIN)/mkdocs build --strict --site-dir "$$site"

docs-config: $(VENV)/.installed-dev
	$(BIN)/python -m keyturn.docs_config

unit: $(VENV)/.installed-dev
	$(BIN)/python -m pytest tests/unit $(PYTEST_PARALLEL)

integration: $(VENV)/.installed-dev
	$(BIN)/python -m pytest tests/integration $(PYTEST_PARALLEL)

e2e: $(VENV)/.installed-dev
	$(BIN)/python -m pytest tests/e2e $(PYTEST_PARALLEL)

bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench

# mutmut over the pure core (settings: [tool.mutmut] in pyproject.toml), 2 workers; prints
# the kill rate per module and writes it to mutation/results.md. A few minutes on 2 cores.
mutation: $(VENV)/.installed-mutation
	$(BIN)/python -m mutation

package: $(VENV)/.installed-dev
	$(BIN)/python -m keyturn.deploy.package

template: $(VENV)/.installed-dev
	$(BIN)/python -m keyturn.deploy.render

SOAK_USERS     ?= 10000
SOAK_ROTATIONS ?= 1000
SOAK_LEASES    ?= 100
soak: $(VENV)/.installed-dev
	$(BIN)/python -m bench.soak $(SOAK_USERS) $(SOAK_ROTATIONS) $(SOAK_LEASES)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build dist mutants
