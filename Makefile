# Two commands set everything up on a fresh machine:
#   make demo   creates .venv, installs keras-prune with what the demo needs, runs the main job
#   make test   creates .venv if missing, installs, runs every test (TF, JAX and torch backends)

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
PYTEST := $(PY) -m pytest -q -p no:cacheprovider
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: install demo test test-tensorflow test-jax test-torch benchmark clean

install: $(STAMP)

# The demo needs TensorFlow, LiteRT, matplotlib and scikit-learn only; the tests add JAX,
# torch, keras-hub and the notebook runner (the `dev` extra).
$(DEMO_STAMP): setup.py pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[tensorflow,litert,plot,demo]"
	touch $(DEMO_STAMP)

$(STAMP): $(DEMO_STAMP)
	$(PY) -m pip install --quiet -e ".[tensorflow,litert,plot,demo,tensorboard,dev]"
	touch $(STAMP)

demo: $(DEMO_STAMP)
	KERAS_BACKEND=tensorflow $(VENV)/bin/keras-prune demo --output artifacts/demo

# Core tests run under every backend; TensorFlow-only tests (distribution, CLI) once.
test: $(STAMP) test-tensorflow test-jax test-torch

test-tensorflow: $(STAMP)
	KERAS_BACKEND=tensorflow $(PYTEST) tests

test-jax: $(STAMP)
	KERAS_BACKEND=jax $(PYTEST) tests/core tests/methods tests/structured tests/quantization tests/tflite/test_other_backends.py

test-torch: $(STAMP)
	KERAS_BACKEND=torch $(PYTEST) tests/core tests/methods tests/structured tests/quantization tests/tflite/test_other_backends.py

# tfmot needs tf_keras (Keras 2), which replaces tensorflow-cpu: it gets its own venv.
TFMOT_VENV := .venv-tfmot
$(TFMOT_VENV)/.installed:
	test -x $(TFMOT_VENV)/bin/python || $(PYTHON) -m venv $(TFMOT_VENV)
	$(TFMOT_VENV)/bin/pip install --quiet "tensorflow-cpu==2.21.0" "tf-keras==2.21.0" \
		"tensorflow-model-optimization==0.8.1" scikit-learn mnist1d
	touch $@

benchmark: $(STAMP) $(TFMOT_VENV)/.installed
	$(PY) benchmarks/train_overhead.py --tfmot-python $(TFMOT_VENV)/bin/python
	$(PY) benchmarks/tflite_export.py --tfmot-python $(TFMOT_VENV)/bin/python
	$(PY) benchmarks/structured.py
	$(PY) benchmarks/methods.py
	$(PY) benchmarks/methods.py --sweep
	$(PY) benchmarks/egp.py
	$(PY) benchmarks/memory.py
	$(PY) benchmarks/mask_update.py
	$(PY) benchmarks/structured_transformers.py
	$(PY) benchmarks/budget.py met
	$(PY) benchmarks/budget.py accuracy
	$(PY) benchmarks/zoo_sweep.py
	$(PY) benchmarks/oneshot.py
	$(PY) benchmarks/oneshot_scale.py
	KERAS_BACKEND=jax $(PY) benchmarks/transformer_lm.py teacher
	KERAS_BACKEND=jax $(PY) benchmarks/transformer_lm.py compare
	KERAS_BACKEND=jax $(PY) benchmarks/transformer_lm.py depth
	KERAS_BACKEND=jax $(PY) benchmarks/transformer_lm.py reconstruct
	KERAS_BACKEND=jax $(PY) benchmarks/transformer_lm.py oneshot
	$(PY) benchmarks/train_overhead.py --speed-only --models cnn_digits,mobilenet_v2 --tfmot-python $(TFMOT_VENV)/bin/python

clean:
	rm -rf $(VENV) artifacts *.egg-info
