"""Conversion and verification of models with several inputs and outputs, fixed batch
sizes and feature-map outputs, and the int8 verification measure."""

import keras
import numpy as np
import pytest

from keras_prune import tflite
from keras_prune.tflite import _runtime

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="TFLite conversion runs in-process on TF"
)


def _dict_model():
    keras.utils.set_random_seed(0)
    b = keras.Input((2,), name="b")
    a = keras.Input((3,), name="a")
    joined = keras.layers.Concatenate()([a, b * 3.0])
    return keras.Model(
        {"b": b, "a": a},
        [keras.layers.Dense(4, name="zz")(joined), keras.layers.Dense(1, name="aa")(b)],
    )


def test_dict_input_multi_output_model_converts_and_matches_by_name():
    model = _dict_model()
    result = tflite.convert(model)
    assert result.verification.passed and result.verification.max_abs_diff < 1e-5
    rng = np.random.default_rng(0)
    feed = {"a": rng.random((5, 3), dtype="float32"), "b": rng.random((5, 2), dtype="float32")}
    lite = tflite.predict(tflite.load_interpreter(result.content), feed)
    expected = model.predict(feed, verbose=0)
    assert [o.shape for o in lite] == [(5, 4), (5, 1)]
    for got, want in zip(lite, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_predict_rejects_wrong_input_names_with_the_expected_ones():
    result = tflite.convert(_dict_model(), verify=False)
    interpreter = tflite.load_interpreter(result.content)
    with pytest.raises(ValueError, match=r"inputs are \['a', 'b'\]"):
        tflite.predict(interpreter, {"a": np.zeros((1, 3), "float32")})


def test_fixed_batch_size_model_converts_and_verifies():
    inputs = keras.Input((16, 16, 3), batch_size=1)
    hidden = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3)(hidden))
    result = tflite.convert(model, verify_samples=5)
    assert result.verification.passed and result.verification.samples == 5
    lite = tflite.predict(tflite.load_interpreter(result.content),
                          np.ones((3, 16, 16, 3), "float32"))
    assert lite.shape == (3, 3)


def test_int8_feature_map_output_is_verified_by_snr_not_argmax():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3, padding="same")(inputs))
    data = np.random.default_rng(1).random((32, 8, 8, 3), dtype="float32")
    result = tflite.convert(model, quantize="int8", representative_data=data)
    assert result.verification.passed
    assert result.verification.agreement is None  # a feature map has no classes
    assert result.verification.snr_db > 20


def test_nearly_tied_logits_only_count_decisive_samples():
    from keras_prune.tflite.verification import _decisive_agreement

    expected = np.array([[1.0, 1.001], [0.0, 5.0], [5.0, 0.0]], "float32")
    got = np.array([[1.001, 1.0], [0.1, 5.0], [5.0, 0.1]], "float32")
    assert _decisive_agreement(expected, got, error=0.01) == 1.0  # the tie is not counted
    assert _decisive_agreement(expected, got, error=10.0) is None


def test_verify_warn_writes_a_file_that_fails_verification(tmp_path):
    keras.utils.set_random_seed(2)
    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Dense(8)(inputs)))
    calibration = np.random.default_rng(2).random((32, 6), dtype="float32") * 1e-3
    far = np.random.default_rng(3).random((32, 6), dtype="float32") * 1e3
    with pytest.raises(tflite.VerificationError, match="SNR"):
        tflite.convert(model, tmp_path / "a.tflite", quantize="int8",
                       representative_data=calibration, verify_data=far)
    assert not (tmp_path / "a.tflite").exists()
    with pytest.warns(UserWarning, match="SNR"):
        result = tflite.convert(model, tmp_path / "b.tflite", quantize="int8",
                                representative_data=calibration, verify_data=far, verify="warn")
    assert (tmp_path / "b.tflite").is_file() and not result.verification.passed


def test_outputs_come_back_in_the_keras_order():
    result = tflite.convert(_dict_model(), verify=False)
    interpreter = tflite.load_interpreter(result.content)
    _, outputs = _runtime.io_details(interpreter)
    assert [tuple(d["shape"][1:]) for d in outputs] == [(4,), (1,)]



def test_lstm_text_classifier_converts_to_builtin_ops_and_verifies():
    tokens = keras.Input((12,), dtype="int32")
    hidden = keras.layers.LSTM(8)(keras.layers.Embedding(30, 8)(tokens))
    model = keras.Model(tokens, keras.layers.Dense(2)(hidden))
    result = tflite.convert(model, sparse=False, verify_samples=6)
    assert result.verification.passed and result.verification.samples == 6
    report = tflite.inspect(result.content)
    assert not any(op.startswith("FlexTensorList") for op in report.ops)
