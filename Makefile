# The two commands of the README.  Each bootstraps what it needs: a private
# virtual environment with tox (requirements/tox.txt); tox then builds every
# other environment from the project's own files.

PYTHON ?= python3
VENV := .venv
TOX := $(VENV)/bin/tox

# tools/which_envs.py lists every environment that can run here: it drops
# those whose interpreter or toolchain is missing (printing how to get it)
# and adds `patched`, `py314`/`py315` and the free-threaded `py313t` and
# `patched-ft` when their build is cached or COEXTRA_PATCHED=1, COEXTRA_SID=1
# or COEXTRA_FT=1 asks; `py313t-tsan` and `patched-ft-tsan` only when
# COEXTRA_FT_TSAN=1 asks.
export COEXTRA_PATCHED COEXTRA_SID COEXTRA_FT COEXTRA_FT_TSAN

.PHONY: conformance test clean

## conformance: suite vs the reference implementation, JSON report, docs site
conformance: $(TOX)
	$(TOX) run -e reference,docs
	@echo
	@echo "Per-requirement verdicts are above; JSON report: build/results/reference.json"
	@echo "Docs site: open docs/_build/html/index.html"

## test: every test of the project that can run on this machine
test: $(TOX)
	$(TOX) run -e $$($(VENV)/bin/python tools/which_envs.py)

$(TOX): requirements/tox.txt
	@$(PYTHON) tools/check_toolchain.py python
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check \
		-r requirements/tox.txt
	@touch $(TOX)

clean:
	rm -rf $(VENV) .tox build docs/_build
