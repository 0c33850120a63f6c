# `make run`: the default experiment on the embedded synthetic grammar (CPU, offline).
# `make test`: the full test suite. Both create .venv and install on first use.
# `make data NAME=ptb`: fetch a corpus into data/NAME (docs/data.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Extra pip arguments, e.g. PIP_ARGS="--index-url <a CPU-only PyTorch index>"
PIP_ARGS ?=
STAMP := $(VENV)/.installed

.PHONY: run test install clean data gpu-bundle

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

# The suite runs in TEST_WORKERS processes (pytest-xdist; auto = one per core, at
# most 4), each test file whole in one of them, so a file's module fixtures are
# built once; files go out in collection order, the longest first (tests/conftest.py).
TEST_WORKERS ?= auto
test: $(STAMP)
	MPLCONFIGDIR=$${MPLCONFIGDIR:-$$(mktemp -d)} $(PY) -m pytest -q --durations=15 \
	  -n $(TEST_WORKERS) --maxprocesses=4 --dist loadfile --no-loadscope-reorder

data: $(if $(NAME),$(STAMP))
	@test -n "$(NAME)" || { echo "usage: make data NAME=<ptb|wikitext2|ud_en_ewt|sst|tinyshakespeare|linzen2016|ud:UD_Lang-Treebank>"; exit 2; }
	$(PY) -m experiments.get_data '$(NAME)' $(if $(DIR),--dir='$(DIR)') $(if $(FORCE),--force)

clean:
	rm -rf $(VENV) runs

# `make gpu-bundle`: what benchmarks/gpu_suite.py needs on the GPU machine, which has no
# network (BENCHMARKS.md, GPU): the Python 3.12 manylinux wheels of the packages its image
# lacks in .whl/ (needs PyPI; absl-py, PyYAML, numpy, packaging and protobuf, which these
# need, are there) and the PTB corpus in data/ptb. Both folders are git-ignored.
GPU_WHEELS ?= ml-collections==1.1.0 tensorboardX==2.6.5
PTB_SRC ?= $(or $(RNN_RESEARCH_SHARED_DATA),../shared/data)/ptb
GPU_PLATFORMS := $(foreach p,manylinux_2_28_x86_64 manylinux_2_27_x86_64 \
  manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64,--platform $(p))

gpu-bundle:
	rm -rf .whl && mkdir -p .whl data/ptb
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
	  --implementation cp $(GPU_PLATFORMS) -d .whl $(GPU_WHEELS)
	cp -f $(PTB_SRC)/ptb.train.txt $(PTB_SRC)/ptb.valid.txt $(PTB_SRC)/ptb.test.txt data/ptb/
	du -sh .whl data/ptb
