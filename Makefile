# Two commands do everything:  `make fit` (set up + train the quickstart)  and  `make test`.
# Both create .venv on first use and reinstall only when pyproject.toml or constraints.txt change.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= experiments/quickstart.yaml
export NO_ALBUMENTATIONS_UPDATE := 1
export MPLBACKEND := agg

.PHONY: install fit test test-all lint notebooks notebooks-run clean docs-figures

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

fit: $(STAMP)
	$(BIN)/lightning-seg fit --config $(CONFIG)

# The default run skips tests marked slow (export of every network, DDP, compile, every signal, ...).
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check lightning_seg tests benchmarks

notebooks: $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,notebooks]"
	$(BIN)/jupyter lab notebooks/

notebooks-run: $(STAMP)
	$(BIN)/python -m lightning_seg.notebooks notebooks/*.ipynb

# The README's diagnostics pictures, from a real, short quickstart run (DOCS_EPOCHS epochs of
# DOCS_BATCHES training batches; `make docs-figures DOCS_EPOCHS=8 DOCS_BATCHES=40` for the full quickstart).
DOCS_EPOCHS ?= 2
DOCS_BATCHES ?= 5
docs-figures: $(STAMP)
	$(BIN)/python docs/diagnostics/make_figures.py --epochs $(DOCS_EPOCHS) --limit-train-batches $(DOCS_BATCHES)

clean:
	rm -rf runs .pytest_cache
