# One-command entry points. Each target installs what it needs first (idempotent),
# so on a fresh machine `make sweep` and `make test` work as they are.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
ARGS   ?=

.PHONY: setup data sweep test test-fast lint format clean

setup: $(STAMP) data

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# torch is pinned here, not in pyproject: 2.14.1 is the build this project is tested on.
	$(BIN)/pip install torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -e '.[dev]'
	touch $(STAMP)

# FashionMNIST: Debian's package where apt exists; otherwise the first run downloads it.
data:
	@bash scripts/install_data.sh

# The main job on local defaults: the autoencoder sweep over the report's search space.
sweep: setup
	$(BIN)/python sweeps/ae_sweep.py $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports  # the layer contracts in pyproject.toml

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The test command (CI runs exactly this).
test: setup lint
	WANDB_MODE=offline $(BIN)/python -m pytest -q $(ARGS)

test-fast: $(STAMP)
	WANDB_MODE=offline $(BIN)/python -m pytest -q -m "not slow" $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
