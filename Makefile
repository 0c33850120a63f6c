# `make run`: the default experiment on the embedded synthetic grammar (CPU, offline).
# `make test`: the full test suite. Both create .venv and install on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Extra pip arguments, e.g. PIP_ARGS="--index-url <a CPU-only PyTorch index>"
PIP_ARGS ?=
STAMP := $(VENV)/.installed

.PHONY: run test install clean

# setuptools announces every editable install with a warning (its "InformationOnly"
# category: "Editable installation ... be careful with folders ..."), which pip
# prints; -W drops that one message and keeps every other warning.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -W "ignore:Editable installation:UserWarning" -m pip install -q $(PIP_ARGS) -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m experiments.lm_perplexity --config=configs/demo.py --workdir=runs/demo

test: $(STAMP)
	MPLCONFIGDIR=$${MPLCONFIGDIR:-$$(mktemp -d)} $(PY) -m pytest -q --durations=15

clean:
	rm -rf $(VENV) runs
