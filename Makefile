# patchbook: `make book` builds the HTML book, `make test` runs the tests.
# Both create (or reuse) .venv and install the pinned dependencies first.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= laptop
# The data root. Defaults to the offline copy beside the checkout when there
# is one; set PATCHBOOK_DATA to use another (or leave it empty to download).
PATCHBOOK_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
# Relative paths are made absolute here, against the checkout: notebook
# kernels run in notebooks/ (paths starting with ~ are left to the library).
absolute = $(if $(filter ~%,$(1)),$(1),$(abspath $(1)))
override PATCHBOOK_DATA := $(if $(strip $(PATCHBOOK_DATA)),$(call absolute,$(PATCHBOOK_DATA)),)
export PATCHBOOK_DATA
ifneq ($(strip $(PATCHBOOK_CACHE)),)
override PATCHBOOK_CACHE := $(call absolute,$(PATCHBOOK_CACHE))
export PATCHBOOK_CACHE
endif
ifneq ($(strip $(PATCHBOOK_RESULTS)),)
override PATCHBOOK_RESULTS := $(call absolute,$(PATCHBOOK_RESULTS))
export PATCHBOOK_RESULTS
endif
export PATH := $(abspath $(BIN)):$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# torch's OpenMP threads sleep when idle instead of spinning: on a 2-core CPU spinning
# threads of one job slow every other one (measured 2-5x on the CIFAR-10 page).
OMP_WAIT_POLICY ?= PASSIVE
export OMP_WAIT_POLICY

DEPS_HASH := $(shell cat pyproject.toml environment.yml | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(DEPS_HASH)

.PHONY: book test unit notebooks book-smoke setup clean bench

setup: $(STAMP)

$(STAMP): pyproject.toml environment.yml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	set -o pipefail; $(BIN)/python -m pip install -q -e '.[dev]' 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(BIN)/python -c "import patchbook, torch, torchvision, kymatio, jupyter_book, papermill"
	@rm -f $(VENV)/.installed-*
	@touch $@

book: $(STAMP)
	$(BIN)/python -m patchbook book --profile $(PROFILE)

test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15

unit: $(STAMP)
	$(BIN)/python -m pytest -q -m "not notebook and not book"

bench: $(STAMP)
	$(BIN)/python benchmarks/encoding.py

clean:
	rm -rf _build results/smoke results/laptop results/overrides
