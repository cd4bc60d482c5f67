# One-command entry points. Each target installs what it needs first (idempotent),
# so on a fresh machine `make sweep` and `make test` work as they are.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
ARGS   ?=

.PHONY: setup data services sweep dashboard test test-fast lint format clean

setup: $(STAMP) data

$(STAMP): pyproject.toml
	@# torch's CUDA build makes the venv about 6.6 GB: say so in one line, not in pip's OSError.
	@test -x $(BIN)/python || [ $$(df -Pk . | awk 'NR==2 {print $$4}') -ge 8388608 ] || \
	  { echo "error: under 8 GiB free on $$(df -P . | awk 'NR==2 {print $$6}') for .venv (torch's CUDA build); free some disk and run again"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# torch is pinned here, not in pyproject: 2.14.1 is the build this project is tested on.
	$(BIN)/pip install torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -e '.[dev,bench]'
	touch $(STAMP)

# FashionMNIST: found already, else Debian's package where apt can install it, else torchvision's
# download; exits 1 with one line if none works.
data:
	@bash scripts/install_data.sh

# The servers the tests start themselves on 127.0.0.1 (PostgreSQL, a one-node Slurm with munge),
# from Debian's packages.
services:
	@bash scripts/install_services.sh

# The main job on local defaults: the autoencoder sweep over the report's search space.
sweep: setup
	$(BIN)/python sweeps/ae_sweep.py $(ARGS)

# The Optuna study of a sweep in a browser, on 127.0.0.1 only: make dashboard DIR=runs/ae_sweep
DIR  ?= runs/ae_sweep
PORT ?= 8080
# The study is $(DIR)/optuna.journal (Optuna's journal file, which optuna-dashboard opens by its
# path), or optuna.db (SQLite) in a folder written before the journal.
dashboard: $(STAMP)
	@test -f "$(DIR)/optuna.journal" || test -f "$(DIR)/optuna.db" || { echo "error: no $(DIR)/optuna.journal (nor optuna.db); pass DIR=<a sweep's experiment folder>"; exit 2; }
	$(BIN)/pip install -q -e '.[dashboard]'
	if [ -f "$(DIR)/optuna.journal" ]; then \
	  $(BIN)/optuna-dashboard --host 127.0.0.1 --port $(PORT) "$(abspath $(DIR))/optuna.journal"; \
	else \
	  $(BIN)/optuna-dashboard --host 127.0.0.1 --port $(PORT) "sqlite:///$(abspath $(DIR))/optuna.db"; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports  # the layer contracts in pyproject.toml

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The test command (CI runs exactly this).
test: setup services lint
	WANDB_MODE=offline $(BIN)/python -m pytest -q $(ARGS)

test-fast: $(STAMP)
	WANDB_MODE=offline $(BIN)/python -m pytest -q -m "not slow" $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
