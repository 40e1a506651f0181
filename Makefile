# The two commands a newcomer needs: `make demo` and `make test`.
# Both install what is missing (system packages, the venv, the Asterisk root
# filesystem) before they run.
PYTHON ?= python3
VENV   := .venv
STACK  := $(VENV)/bin/python asterisk-docker/stack.py

.PHONY: demo up test bench setup clean-cache

demo: setup          ## bring up Asterisk, PostgreSQL and fairline, place sample calls, print rated CDRs
	$(STACK) demo

up: setup            ## the same stack in the foreground until Ctrl-C, ready for a softphone
	$(STACK) up

test: setup          ## the whole suite: unit tests and end-to-end tests with real SIP calls
	$(VENV)/bin/python -m pytest

bench: setup         ## issue 8's benchmarks: call path against a plain dialplan, CDR rating and writing, settlement, config load
	$(VENV)/bin/python bench/call_path.py
	$(VENV)/bin/python bench/cdr_writing.py
	$(VENV)/bin/python bench/settlement.py
	$(VENV)/bin/python bench/config_load.py

setup: $(VENV)/.installed
	$(STACK) prerequisites

$(VENV)/.installed: pyproject.toml
	@echo "setup: creating $(VENV) and installing fairline with its test tools (about 30 s the first time)"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

clean-cache:         ## forget the cached Asterisk root filesystem and PostgreSQL clusters
	rm -rf "$${FAIRLINE_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/fairline}"
