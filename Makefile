# Two commands set everything up on a fresh machine:
#   make demo   creates .venv, installs keras-prune with its extras, runs the main job
#   make test   creates .venv if missing, installs, runs every test (TF, JAX and torch backends)

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST := $(PY) -m pytest -q -p no:cacheprovider
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: install demo test test-tensorflow test-jax test-torch benchmark clean

install: $(STAMP)

$(STAMP): setup.py pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[tensorflow,litert,plot,tensorboard,dev]"
	touch $(STAMP)

demo: $(STAMP)
	KERAS_BACKEND=tensorflow $(VENV)/bin/keras-prune demo --output artifacts/demo

# Core tests run under every backend; TensorFlow-only tests (distribution, CLI) once.
test: $(STAMP) test-tensorflow test-jax test-torch

test-tensorflow: $(STAMP)
	KERAS_BACKEND=tensorflow $(PYTEST) tests

test-jax: $(STAMP)
	KERAS_BACKEND=jax $(PYTEST) tests/core

test-torch: $(STAMP)
	KERAS_BACKEND=torch $(PYTEST) tests/core

benchmark: $(STAMP)
	$(PY) benchmarks/train_overhead.py

clean:
	rm -rf $(VENV) artifacts *.egg-info
