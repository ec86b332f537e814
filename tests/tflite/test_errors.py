"""Bad arguments to keras_prune.tflite get errors that name the argument and the fix."""

import keras
import numpy as np
import pytest

from keras_prune import tflite

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="TFLite conversion runs in-process on TF"
)


@pytest.fixture
def model():
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"quantize": "int4"}, ValueError, "`quantize`.*int4"),
        ({"sparse": "yes"}, ValueError, "`sparse`"),
        ({"quantize": "int8"}, ValueError, "`representative_data` is required"),
        ({"int8_io": True}, ValueError, "int8_io"),
        ({"quantize": "int8", "representative_data": np.zeros((4, 9), "float32")}, ValueError,
         r"`representative_data` has samples of shape \(4, 9\).*\(8,\)"),
        ({"quantize": "int8", "representative_data": np.array([["a"] * 8])}, TypeError,
         "`representative_data` must hold numbers"),
        ({"quantize": "int8", "representative_data": np.full((2, 8), np.nan, "float32")}, ValueError,
         "NaN"),
        ({"quantize": "int8", "representative_data": 5}, TypeError, "`representative_data` must be"),
        ({"num_calibration_samples": 0}, ValueError, "num_calibration_samples"),
    ],
)
def test_bad_arguments(model, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        tflite.convert(model, **kwargs)


def test_unbuilt_and_non_model_inputs():
    with pytest.raises(ValueError, match="not built"):
        tflite.convert(keras.Sequential([keras.layers.Dense(2)]))
    with pytest.raises(TypeError, match="keras.Model"):
        tflite.convert(keras.layers.Dense(2))


def test_inspect_and_evaluate_bad_files(tmp_path, model):
    with pytest.raises(FileNotFoundError, match="no such file"):
        tflite.inspect(tmp_path / "missing.tflite")
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="not a .tflite file"):
        tflite.inspect(corrupt)
    good = tflite.convert(model, tmp_path / "good.tflite").path
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(open(good, "rb").read()[:200])
    with pytest.raises((ValueError, tflite.InterpreterLoadError)):
        tflite.evaluate(truncated, np.zeros((2, 8), "float32"), np.zeros(2))
    with pytest.raises(ValueError, match=r"`x` has samples of shape \(9,\)"):
        tflite.evaluate(good, np.zeros((2, 9), "float32"))
    with pytest.raises(ValueError, match="same number of samples"):
        tflite.evaluate(good, np.zeros((2, 8), "float32"), np.zeros(3))
    with pytest.raises(ValueError, match="num_threads"):
        tflite.benchmark(good, num_threads=0)
