"""Under JAX and torch, `convert` runs the TFLite converter in a TensorFlow subprocess.

`make test` runs this file under KERAS_BACKEND=jax and torch (see the Makefile).
"""

import keras
import numpy as np
import pytest

import keras_prune
from keras_prune import tflite

pytestmark = pytest.mark.skipif(
    keras.backend.backend() == "tensorflow", reason="exercises the non-TF subprocess path"
)


def test_pruned_model_converts_and_verifies_against_this_backend(tmp_path):
    from tests.tflite.conftest import train_pruned

    pruned = train_pruned(epochs=1)
    x = np.random.default_rng(0).random((40, 8, 8, 1)).astype("float32")
    path = tmp_path / "model.tflite"
    result = tflite.convert(pruned, path, quantize="int8", representative_data=x)
    # Verification compares the LiteRT output with *this* backend's Keras model.
    assert result.verification.passed and result.verification.samples == 32
    assert path.stat().st_size == result.bytes
    assert keras_prune.layers.collect_wrappers(pruned)  # input unchanged
    float_result = tflite.convert(pruned, tmp_path / "float.tflite")
    assert float_result.verification.max_abs_diff < 1e-4 and float_result.sparse_tensors
