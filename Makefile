# flow_jupyter — the two commands: `make demo` and `make test`. Every step installs only what is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)
DEMO_PORT ?= 8888
DEMO_ROOT ?= $(HOME)/flow-demo
PYTEST_ARGS ?=

.PHONY: demo test install system venv toolchain tools services-start services-stop lint clean

demo: install
	@scripts/slurm.sh start
	@scripts/demo.sh "$(DEMO_ROOT)" "$(DEMO_PORT)"

test: install
	@scripts/slurm.sh start
	@export FLOW_TEST_DATABASE_URL=$$(scripts/postgres.sh start); \
	  $(BIN)/python -m pytest -v $(PYTEST_ARGS); rc=$$?; \
	  scripts/postgres.sh stop; scripts/slurm.sh stop; exit $$rc

install: system venv toolchain tools

system:
	@scripts/install-system.sh

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Reinstall only when the package metadata changed.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[dev,tools]"
	@touch $(STAMP)

venv: $(STAMP)

toolchain: venv
	@$(BIN)/flow-jupyter toolchain install

tools: venv
	@scripts/install-tools.sh $(abspath $(BIN))

services-start:
	@scripts/slurm.sh start
	@scripts/postgres.sh start

services-stop:
	@scripts/postgres.sh stop
	@scripts/slurm.sh stop

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
