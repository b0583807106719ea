# One-command set-up: every target that needs the environment creates .venv from
# requirements.lock first (and refreshes it when the lock file changes). Packages are
# byte-compiled at install: with PYTHONDONTWRITEBYTECODE set (as on CI machines) every
# `kedro run` would otherwise recompile MLflow, Kedro and pandas (about 8 s each time).
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
STAMP := $(VENV)/.lock-sha256
export KEDRO_DISABLE_TELEMETRY := 1
export DO_NOT_TRACK := 1
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: venv run run-universe run-single test test-fast lint format bench bench-agents bench-backtest bench-live bench-api bench-startup bench-calibration bench-fanout bench-universe-features bench-portfolio bench-vectorbt bench-inference repro mlflow-ui lock clean-venv

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@set -euo pipefail; \
	py=$$(scripts/find_python312.sh); \
	if [ ! -x $(BIN)/python ] || ! $(BIN)/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))'; then \
	  echo "creating $(VENV) with $$py"; rm -rf $(VENV); "$$py" -m venv $(VENV); \
	fi; \
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"; \
	$(BIN)/uv pip install --python $(BIN)/python --compile-bytecode -r requirements.lock; \
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e .; \
	sha256sum requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1 > $(STAMP)

# `make run` trains and evaluates the bundled basket of six symbols (the universe pipeline);
# `make run PIPELINE=__default__` is the single-symbol loop (ingest ... deploy, drift) that
# the live runner's bundle comes from.
PIPELINE ?= universe

run: venv  ## the bundled basket end to end (PIPELINE=__default__: the single-symbol loop)
	$(BIN)/kedro run --pipeline=$(PIPELINE) $(ARGS)

run-universe: venv  ## many symbols: the bundled basket, pooled and per-symbol models
	$(BIN)/kedro run --pipeline=universe $(ARGS)

run-single: venv  ## one symbol: ingest, features, train, evaluate, deploy, drift
	$(BIN)/kedro run $(ARGS)

test: venv  ## lint, then the whole test suite
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest $(ARGS)

test-fast: venv  ## lint, then the suite without the end-to-end tests marked slow
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -m "not slow" $(ARGS)

lint: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: venv
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

bench: venv
	$(BIN)/python benchmarks/features_throughput.py

bench-agents: venv
	$(BIN)/python benchmarks/agents.py

bench-backtest: venv
	$(BIN)/python benchmarks/backtest_vs_backtesting_py.py

bench-live: venv  ## one symbol; SYMBOLS=10: the universe book with 10 symbols
	$(BIN)/python benchmarks/live_latency.py $(if $(SYMBOLS),--symbols $(SYMBOLS))

bench-inference: venv  ## each network on torch and on ONNX Runtime, batch 1 and 10
	$(BIN)/python benchmarks/inference.py

bench-api: venv
	$(BIN)/python benchmarks/api_load.py

bench-startup: venv
	$(BIN)/python benchmarks/startup.py

bench-calibration: venv
	$(BIN)/python benchmarks/calibration_power.py

bench-fanout: venv  ## after `make run`: the basket's train stage, sequential vs 2 Dask workers
	$(BIN)/python benchmarks/fanout.py

bench-universe-features: venv  ## 50 symbols x 100,000 one-minute bars through the universe features
	$(BIN)/python benchmarks/universe_features.py

bench-portfolio: venv  ## 50 symbols x 100,000 bars through the shared-cash book, every limit on
	$(BIN)/python benchmarks/portfolio.py

bench-vectorbt: venv  ## the book against vectorbt (its own venv in data/benchmarks), shared cash
	$(BIN)/python benchmarks/portfolio_vs_vectorbt.py

repro: venv
	$(BIN)/dvc repro

mlflow-ui: venv
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlruns/mlflow.db --host 127.0.0.1 --port 5000

lock: venv  ## re-resolve requirements.in into requirements.lock
	$(BIN)/uv pip compile requirements.in --python-version 3.12 -o requirements.lock

clean-venv:
	rm -rf $(VENV)
