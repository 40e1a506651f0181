# The two commands a newcomer needs: `make demo` and `make test`.
# Both install what is missing (system packages, the venv, the Asterisk root
# filesystem) before they run.
PYTHON ?= python3
VENV   := .venv
STACK  := $(VENV)/bin/python asterisk-docker/stack.py
# Every Python package the venv holds, pinned with hashes: holidays and phonenumbers decide
# prices and which targets are valid, so they change only when someone runs `make lock` on purpose.
LOCK   := requirements.lock
UV     := .venv-lock/bin/uv
UV_VERSION := 0.13.8

.PHONY: demo up cluster cluster-down test test-faults test-cluster bench setup lock clean-cache

demo: setup          ## bring up Asterisk, PostgreSQL and fairline, place sample calls, print rated CDRs
	$(STACK) demo

up: setup            ## the same stack in the foreground until Ctrl-C, ready for a softphone
	$(STACK) up

cluster: setup       ## Kamailio in front of two Asterisk + fairline nodes and one PostgreSQL, each in its own network namespace (root), until Ctrl-C
	$(VENV)/bin/python cluster/cluster.py up

cluster-down:        ## stop what a `make cluster` that died left behind (processes, network namespaces)
	$(VENV)/bin/python cluster/cluster.py down

# Three steps: the unit tests (bound by CPU) on two workers; the end-to-end tests (bound by waiting for
# calls) on two workers, each with a stack of its own (tests/conftest.py); then those marked `alone`, which
# load the machine, one at a time.
test: setup          ## the whole suite: unit tests and end-to-end tests with real SIP calls
	$(VENV)/bin/python -m pytest -n 2 tests/unit
	$(VENV)/bin/python -m pytest -n 2 --dist loadfile -m 'not alone and not long and not cluster' tests/e2e
	$(VENV)/bin/python -m pytest -m 'alone and not long and not cluster' tests/e2e

test-faults: setup   ## the long fault tests (a ten-minute PostgreSQL outage under 35 calls/s; about 13 min), not in make test
	$(VENV)/bin/python -m pytest -m long -s tests/e2e/test_long_outage.py

test-cluster: setup  ## the cluster's end-to-end tests (tests/cluster: real SIP through Kamailio into two nodes; root), not in make test
	$(VENV)/bin/python -m pytest -m cluster -s tests/cluster

bench: setup         ## issue 8's benchmarks (call path, CDR rating and writing, settlement, config load); applying config versions live; start-up and memory at rest (BASELINE=REV alternates with REV); the cluster's clean rate with one and two nodes (root); the console's pages on a big month
	$(VENV)/bin/python bench/call_path.py $(if $(BASELINE),--baseline $(BASELINE))
	$(VENV)/bin/python bench/cdr_writing.py
	$(VENV)/bin/python bench/settlement.py
	$(VENV)/bin/python bench/config_load.py
	$(VENV)/bin/python bench/config_apply.py
	$(VENV)/bin/python bench/startup.py $(if $(BASELINE),--baseline $(BASELINE))
	$(VENV)/bin/python bench/cluster_rate.py
	$(VENV)/bin/python bench/console_pages.py --reuse

setup: $(VENV)/.installed
	$(STACK) prerequisites

# A new lock makes a new venv (--clear): it then holds exactly the pinned packages.
$(VENV)/.installed: pyproject.toml $(LOCK)
	@echo "setup: creating $(VENV) and installing fairline with its test tools from $(LOCK) (about 30 s the first time)"
	$(PYTHON) -m venv --clear $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check --require-hashes -r $(LOCK)
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

# `make lock` after changing pyproject.toml's dependencies: adds and removes what changed, keeps every
# other pin. `make lock UPGRADE=holidays` (or UPGRADE="holidays phonenumbers") moves those to their newest
# release; `make lock UPGRADE=all` every package. Then `make test`, and commit requirements.lock.
lock: $(UV)          ## pin pyproject.toml's dependencies and the test extra in requirements.lock
	$(UV) pip compile pyproject.toml --extra test --generate-hashes --python-version 3.11 --quiet \
	    --custom-compile-command 'make lock' -o $(LOCK) \
	    $(if $(filter all,$(UPGRADE)),--upgrade,$(foreach p,$(UPGRADE),--upgrade-package $(p)))

$(UV):
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install -q --disable-pip-version-check uv==$(UV_VERSION)

clean-cache:         ## forget the cached Asterisk root filesystem and PostgreSQL clusters
	rm -rf "$${FAIRLINE_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/fairline}"
