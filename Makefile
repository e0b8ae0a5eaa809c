# The two commands of the README.  Each bootstraps what it needs: a private
# virtual environment with tox (requirements/tox.txt); tox then builds every
# other environment from the project's own files.

PYTHON ?= python3
VENV := .venv
TOX := $(VENV)/bin/tox

# Stock CPython environments; tools/which_envs.py drops the ones whose
# interpreter is missing (printing how to get it) so that the rest still run.
CPYTHON_ENVS := py36,py37,py38,py39,py310,py311,py312,py313

.PHONY: conformance test clean

## conformance: suite vs the reference implementation, JSON report, docs site
conformance: $(TOX)
	$(TOX) run -e reference,docs
	@echo
	@echo "Per-requirement verdicts are above; JSON report: results/reference.json"
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
