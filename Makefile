# Two entry points for a fresh machine (Python 3.11+ and git): `make run` and `make test`.
# Both create .venv from the hashed lock file when it is missing or the lock changed.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.synced
UV_VERSION := 0.13.8
export PATH := $(CURDIR)/$(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: run test test-fast lint tools bench lock clean

# --compile-bytecode: uv does not write .pyc at install (pip does); where PYTHONDONTWRITEBYTECODE is set, every
# process would otherwise compile deepchecks, scipy and sklearn from source (seconds on each import).
$(STAMP): requirements/dev.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	@$(BIN)/uv pip sync --quiet --python $(BIN)/python --require-hashes --compile-bytecode requirements/dev.lock
	@$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	@touch $(STAMP)

## make run: the main job on the embedded defaults (reproduce the pipeline, summarise).
run: $(STAMP)
	$(BIN)/mlops run

## make test: linters, type checks, layer contracts, then the whole test suite.
test: $(STAMP) lint tools
	$(BIN)/python -m pytest -n 2 --dist loadscope --timeout 900 --durations=15

## make test-fast: the unit tests only (no training, no workflows).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadscope -m "not slow and not e2e"

# promtool (Debian's `prometheus` package; no PyPI wheel ships it) runs the alerting rules' tests. As root (CI) it
# is installed when missing; anyone else is told the line to run.
tools:
	@command -v promtool >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	  else echo "make: promtool is missing: sudo apt-get install prometheus (the alerting rules' tests need it)" >&2; exit 1; fi; }

lint: $(STAMP)
	$(BIN)/ruff check mlops tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python bench/pipeline.py
	$(BIN)/mlops run
	$(BIN)/python bench/report.py
	$(BIN)/python bench/registry.py
	$(BIN)/python bench/serving.py
	$(BIN)/python bench/monitor.py
	$(BIN)/python bench/pr_cycle.py

lock:
	$(BIN)/uv pip compile -q --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	  --excludes requirements/excludes.txt requirements/runtime.in -o requirements/runtime.lock
	$(BIN)/uv pip compile -q --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	  --excludes requirements/excludes.txt requirements/dev.in -o requirements/dev.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
