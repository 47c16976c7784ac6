# edgeaudit — `make help` lists the targets.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= out/demo
DEMO_DB ?= out/demo/history.sqlite3

.PHONY: help setup sysdeps labdeps benchdeps test lint demo lab-up lab-down lab-status bench bench-lab clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml lab/pyproject.toml
	@if ! $(PY) -m venv --help >/dev/null 2>&1 || ! $(PY) -c 'import ensurepip' 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv python3-pip; \
	  else echo "need python3-venv (apt-get install python3-venv)"; exit 2; fi; fi
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]' -e ./lab
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install edgeaudit with its dev tools and the lab (from this checkout)

# System packages: Chromium for the report and hand-off sheet tests, the lab's daemons for the lab tests and the demo.
# Installed only as root (CI is root); lab/apt-packages.txt is the one list. A temporary
# policy-rc.d keeps apt from starting the packages' own host services (sshd, chronyd's
# public NTP pool, ...): the lab starts its daemons itself, inside its namespaces.
LAB_PKGS := $(shell grep -v '^\#' lab/apt-packages.txt)
# A Japanese font (IPA Gothic) for the hand-off sheet's PDF: without one, Chromium prints boxes.
sysdeps:
	@if [ "$$(id -u)" = 0 ] && { ! command -v chromium >/dev/null || ! dpkg-query -W fonts-ipafont-gothic >/dev/null 2>&1; }; then \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-ipafont-gothic >/dev/null; fi

labdeps:
	@if [ "$$(id -u)" = 0 ]; then \
	  missing=$$(for p in $(LAB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	  if [ -n "$$missing" ]; then echo "installing lab packages: $$missing"; \
	    guard=; if [ ! -e /usr/sbin/policy-rc.d ]; then guard=1; printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; \
	      chmod 755 /usr/sbin/policy-rc.d; fi; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	    rc=$$?; if [ -n "$$guard" ]; then rm -f /usr/sbin/policy-rc.d; fi; exit $$rc; fi; fi

lint: setup ## ruff and mypy --strict
	$(BIN)/ruff check scanner probes reports profiles lab tests
	$(BIN)/mypy
	$(BIN)/python -m lab.clab --check

test: setup sysdeps labdeps lint ## set up, lint, run the tests (the namespace-lab tests run when root)
	$(BIN)/pytest -q -rs

lab-up: setup labdeps ## build the namespace lab and start its daemons (root)
	$(BIN)/edgeaudit lab up $(if $(FLEET),--fleet $(FLEET))

lab-down: setup ## stop every lab daemon and delete every lab namespace (idempotent)
	$(BIN)/edgeaudit lab down

lab-status: setup ## what the lab runs, and whether it is healthy
	$(BIN)/edgeaudit lab status

# The demo's lab is rebuilt each time, so its devices remember no failed login: the shared
# attempt ledger next to the demo's history database is cleared with it. The lab's feed
# fixtures (lab/feeds, fictional EdgeLab CVEs) are frozen files, hence --max-feed-age 3650.
# www.bank.example really is 198.19.0.80 (the lab ISP's DNS); router-weak answers otherwise.
# The LAN sweeps come from a site file (lab/demo-site.toml: targets, auth file, syslog listener,
# DHCP, DNS expectation, and a webhook on 127.0.0.1 where lab/webhook.py listens and prints what
# arrives). The demo's history starts empty (the lab is new): a baseline (the site in safe mode,
# and the Yamaha-like router's authenticated read), then an intruder changes that router's DNS
# server (`lab tamper`), which the site's LAN sweep reports as CIAJ-3.4-CONFIG-DRIFT; that
# sweep's changes since the baseline arrive at the webhook. Both LAN sweeps ask the routers' DHCP
# servers which resolvers they hand out (--dhcp: DISCOVER/INFORM, never a lease).
# Two vantages: the LAN from the host leg, then the WAN legs from the lab's `outside` node
# (--safe: only what answers matters there), merged into one report; the hardened router and
# PBX show no key outside to join them by, so they are paired with --same.
WAN_LEGS := 198.19.0.1 198.19.0.2 198.19.0.10 198.19.0.11
DEMO_SITE := lab/demo-site.toml
DEMO_HOOK_PORT := 18765
demo: setup ## set up, bring up the lab, sweep it from a site file (LAN) and the WAN, write out/demo/report.html, show the alert, bring the lab down (root)
	@$(MAKE) --no-print-directory lab-up
	@mkdir -p $(OUT); rc=0; \
	  rm -f $(OUT)/login-attempts.json $(OUT)/login-attempts.sqlite3 $(OUT)/webhook.jsonl; \
	  chmod 600 lab/auth.toml; \
	  rm -f $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm; \
	  $(BIN)/python -m lab.webhook --port $(DEMO_HOOK_PORT) --log $(OUT)/webhook.jsonl & hook=$$!; \
	  $(BIN)/edgeaudit feeds import lab/feeds/kev-edgelab.json lab/feeds/nvd-edgelab.json --db $(DEMO_DB) >/dev/null; \
	  $(BIN)/edgeaudit scan --site $(DEMO_SITE) --safe -q --out $(OUT)/baseline-lan --db $(DEMO_DB) >/dev/null 2>&1; \
	  $(BIN)/edgeaudit scan 198.18.0.3 -q --auth-file lab/auth.toml --out $(OUT)/baseline-yamaha --db $(DEMO_DB) >/dev/null 2>&1; \
	  $(BIN)/edgeaudit lab tamper router-yamaha-cli 'dns_servers=[198.19.0.66]'; \
	  $(BIN)/edgeaudit scan --site $(DEMO_SITE) --out $(OUT)/lan --db $(DEMO_DB) --lang $${LANG_REPORT:-ja} \
	    --metrics-file $(OUT)/edgeaudit.prom || rc=$$?; \
	  kill $$hook 2>/dev/null; wait $$hook 2>/dev/null; \
	  if [ $$rc -le 1 ]; then \
	    $(BIN)/edgeaudit lab exec outside -- $(BIN)/edgeaudit scan $(WAN_LEGS) --vantage wan --safe \
	      --dns-expect www.bank.example=198.19.0.80 \
	      --out $(OUT)/wan --db $(DEMO_DB) --lang $${LANG_REPORT:-ja} || rc=$$?; fi; \
	  if [ $$rc -le 1 ]; then \
	    $(BIN)/edgeaudit merge -2 -1 --same 198.19.0.2=198.18.0.2 --same 198.19.0.11=198.18.0.11 --out $(OUT) --db $(DEMO_DB) \
	      --lang $${LANG_REPORT:-ja} || rc=$$?; fi; \
	  $(MAKE) --no-print-directory lab-down; \
	  if [ $$rc -gt 1 ]; then exit $$rc; fi; \
	  echo "alert: $$(wc -l < $(OUT)/webhook.jsonl 2>/dev/null || echo 0) webhook message(s) received, in $(OUT)/webhook.jsonl"; \
	  echo "report: $(OUT)/report.html (LAN and WAN merged; exit code $$rc: 1 means findings at or above --fail-on)"

bench: setup ## measure sweep speed and memory against an emulated fleet on loopback
	$(BIN)/python -m lab.bench

# The peer tools of `make bench-lab`, for the benchmark only (never a dependency of edgeaudit):
# nmap and onesixtyone from Debian, nftables for its silent-UDP case, sipvicious's svmap from PyPI
# into a venv of its own. Installed only as root and only when missing; a tool that does not
# install is reported missing by the benchmark, which measures the rest.
BENCH_VENV := .venv-bench
BENCH_PKGS := nmap onesixtyone nftables
benchdeps:
	@if [ "$$(id -u)" = 0 ]; then \
	  missing=$$(for p in $(BENCH_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	  if [ -n "$$missing" ]; then echo "installing benchmark peers: $$missing"; \
	    guard=; if [ ! -e /usr/sbin/policy-rc.d ]; then guard=1; printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; \
	      chmod 755 /usr/sbin/policy-rc.d; fi; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; } \
	      || echo "could not install $$missing: the benchmark goes on without them"; \
	    if [ -n "$$guard" ]; then rm -f /usr/sbin/policy-rc.d; fi; fi; \
	  if [ ! -x $(BENCH_VENV)/bin/sipvicious_svmap ]; then echo "installing sipvicious into $(BENCH_VENV)"; \
	    { $(PY) -m venv $(BENCH_VENV) && $(BENCH_VENV)/bin/pip install -q sipvicious; } \
	      || echo "could not install sipvicious: the benchmark goes on without svmap"; fi; fi

bench-lab: setup labdeps benchdeps ## each stage next to nmap, svmap, onesixtyone on the lab's 254-device fleet (root)
	$(BIN)/python -m lab.peers --fleet $${FLEET:-254} --svmap $(BENCH_VENV)/bin/sipvicious_svmap

clean: ## remove build and run artefacts (keeps .venv)
	rm -rf out build *.egg-info lab/*.egg-info .pytest_cache .mypy_cache .ruff_cache
