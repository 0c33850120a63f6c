# `make run`: the default experiment on the embedded synthetic grammar (CPU, offline).
# `make test`: the full test suite. Both create .venv and install on first use.
# `make data NAME=ptb`: fetch a corpus into data/NAME (docs/data.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Extra pip arguments, e.g. PIP_ARGS="--index-url <a CPU-only PyTorch index>"
PIP_ARGS ?=
STAMP := $(VENV)/.installed

.PHONY: run test install clean data

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(PIP_ARGS) -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m experiments.lm_perplexity --config=configs/demo.py --workdir=runs/demo

test: $(STAMP)
	MPLCONFIGDIR=$${MPLCONFIGDIR:-$$(mktemp -d)} $(PY) -m pytest -q --durations=15

data: $(if $(NAME),$(STAMP))
	@test -n "$(NAME)" || { echo "usage: make data NAME=<ptb|wikitext2|ud_en_ewt|sst|tinyshakespeare|linzen2016|ud:UD_Lang-Treebank>"; exit 2; }
	$(PY) -m experiments.get_data '$(NAME)' $(if $(DIR),--dir='$(DIR)') $(if $(FORCE),--force)

clean:
	rm -rf $(VENV) runs
