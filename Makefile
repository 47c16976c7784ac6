# edgeaudit — `make help` lists the targets.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= out/demo
DEMO_DB ?= out/demo/history.sqlite3
RUN := .lab-run

.PHONY: help setup test lint demo lab-up lab-down bench clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@if ! $(PY) -m venv --help >/dev/null 2>&1 || ! $(PY) -c 'import ensurepip' 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv python3-pip; \
	  else echo "need python3-venv (apt-get install python3-venv)"; exit 2; fi; fi
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install edgeaudit with its dev tools

# System packages the tests need; installed only as root (CI is root).
sysdeps:
	@if [ "$$(id -u)" = 0 ] && ! command -v chromium >/dev/null; then \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; fi

lint: setup ## ruff and mypy --strict
	$(BIN)/ruff check scanner probes reports lab tests
	$(BIN)/mypy

test: setup sysdeps lint ## set up, lint, and run the tests (root-only tests run when root)
	$(BIN)/pytest -q

lab-up: setup ## start the loopback lab twin (emulated devices on 127.0.10.x; root)
	@mkdir -p $(RUN)
	@if [ -f $(RUN)/emulator.pid ] && kill -0 $$(cat $(RUN)/emulator.pid) 2>/dev/null; then echo "lab already up"; exit 0; fi
	@$(BIN)/python -m lab.emulator lab/demo-loopback.yaml --pidfile $(RUN)/emulator.pid 2>$(RUN)/emulator.log & \
	  for i in $$(seq 50); do [ -f $(RUN)/emulator.pid ] && break; sleep 0.1; done; \
	  if [ ! -f $(RUN)/emulator.pid ]; then cat $(RUN)/emulator.log; exit 1; fi; cat $(RUN)/emulator.log

lab-down: ## stop the lab twin (idempotent)
	@if [ -f $(RUN)/emulator.pid ]; then kill $$(cat $(RUN)/emulator.pid) 2>/dev/null || true; \
	  for i in $$(seq 50); do [ -f $(RUN)/emulator.pid ] || break; sleep 0.1; done; rm -f $(RUN)/emulator.pid; fi
	@echo "lab down"

demo: setup ## set up, bring up the lab, sweep it, write out/demo/report.html, bring the lab down
	@$(MAKE) --no-print-directory lab-up
	@mkdir -p $(OUT); rc=0; \
	  $(BIN)/edgeaudit scan 127.0.10.1-4 --out $(OUT) --db $(DEMO_DB) --lang $${LANG_REPORT:-ja} || rc=$$?; \
	  $(MAKE) --no-print-directory lab-down; \
	  if [ $$rc -gt 1 ]; then exit $$rc; fi; \
	  echo "report: $(OUT)/report.html (exit code $$rc: 1 means findings at or above --fail-on)"

bench: setup ## measure sweep speed and memory against the emulated fleet
	$(BIN)/python -m lab.bench

clean: ## remove build and run artefacts (keeps .venv)
	rm -rf out build *.egg-info $(RUN) .pytest_cache .mypy_cache .ruff_cache
