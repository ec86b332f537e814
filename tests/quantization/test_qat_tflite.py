"""QAT models to int8 LiteRT: no representative data, int8 I/O, zeros kept, tight check."""

import os
import warnings

import keras
import numpy as np
import pytest

import keras_prune
from keras_prune import quantization
from keras_prune.quantization import ranges
from keras_prune.tflite import VerificationError
from keras_prune.tflite.verification import verify_against_keras
from tests.quantization.test_qat import cnn, fit, wrapper, zero_out

pytest.importorskip("tensorflow")

# Under JAX and torch every conversion is a TensorFlow subprocess (seconds each): there,
# the first test covers that path, and the rest run on the TF backend only.
tf_only = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                             reason="conversion runs in-process on TF; the first test "
                                    "covers the subprocess")


@pytest.fixture
def trained_qat(digits):
    x, y = digits
    model = fit(cnn(), x, y, steps=16, optimizer=keras.optimizers.Adam(0.01))
    qat = quantization.quantize_model(zero_out(model))
    return fit(qat, x, y, steps=8), x


def test_qat_model_converts_to_full_int8_without_representative_data(tmp_path, trained_qat):
    qat, x = trained_qat
    path = os.path.join(tmp_path, "qat.tflite")
    result = keras_prune.tflite.convert(qat, path, quantize="int8", verify_data=x[:64],
                                        verbose=0)
    assert result.verification.passed
    assert "output quantization steps" in result.verification.tolerance
    info = keras_prune.tflite.inspect(path)
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"} <= set(info.ops)
    kernels = [t for t in info.tensors if t.op in ("CONV_2D", "DEPTHWISE_CONV_2D",
                                                    "FULLY_CONNECTED") and len(t.shape) > 1]
    assert kernels and all(t.dtype == "int8" for t in kernels)
    # Zeros preserved exactly: every int8 kernel is at least as sparse as in Keras.
    for kernel in kernels:
        assert kernel.zero_fraction >= 0.75 - 1e-6, kernel
    # Keras and LiteRT agree on the classes of real inputs.
    lite = keras_prune.tflite.evaluate(path, x[:128])["predictions"]
    keras_classes = np.argmax(qat.predict(x[:128], verbose=0), -1)
    assert np.mean(np.argmax(lite, -1) == keras_classes) >= 0.97


@tf_only
def test_int8_inputs_and_outputs(trained_qat):
    qat, x = trained_qat
    result = keras_prune.tflite.convert(qat, None, quantize="int8", int8_io=True,
                                        verify_data=x[:32], verbose=0)
    from keras_prune.tflite import _runtime

    interpreter = _runtime.load_interpreter(result.content)
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    scale, _ = interpreter.get_input_details()[0]["quantization"]
    inputs = wrapper(qat, "conv")._input_quantizers[0][1]
    learned = (float(inputs["max"]) - float(inputs["min"])) / 255
    np.testing.assert_allclose(scale, learned, rtol=1e-2)  # the learned input range
    assert result.verification.passed


@tf_only
def test_tight_check_fails_a_file_off_by_whole_output_steps(trained_qat):
    """What a tensor the Keras model did not fake-quantize looks like: the file's
    outputs move by whole quantization steps. Here the Keras model moves instead."""
    qat, x = trained_qat
    result = keras_prune.tflite.convert(qat, None, quantize="int8", verify_data=x[:64],
                                        verbose=0)
    (step,) = ranges.output_steps(qat)
    samples = [[x[i : i + 1]] for i in range(32)]
    bias = wrapper(qat, "logits").layer.bias
    original = keras.ops.convert_to_numpy(bias)
    for shift, passes in [(0.4, True), (3.0, False)]:
        bias.assign(original + shift * step)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "warn" mode reports the failure as a warning
            check = verify_against_keras(result.content, qat, samples, "int8", "warn",
                                         output_steps=[step])
        assert check.passed is passes, (shift, check.max_abs_diff / step)
    bias.assign(original)
    with pytest.raises(VerificationError, match="output quantization steps"):
        bias.assign(original + 3.0 * step)
        verify_against_keras(result.content, qat, samples, "int8", output_steps=[step])


@tf_only
def test_qat_model_needs_int8_and_training():
    qat = quantization.quantize_model(cnn())
    with pytest.raises(ValueError, match="quantize='int8'"):
        keras_prune.tflite.convert(qat, None, quantize="dynamic", verbose=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        keras_prune.tflite.convert(qat, None, quantize="int8", verify=False, verbose=0)
    assert any("never saw a training batch" in str(w.message) for w in caught)


@tf_only
def test_large_sparse_dense_kernels_convert_with_their_zeros():
    """A 40x256 kernel: the converter does not fold a mask product that large, so the
    graph it sees must read the kernel itself (whose zeros training kept)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 40)).astype("float32")
    y = rng.integers(0, 10, 256)
    inputs = keras.Input((40,))
    h = keras.layers.Dense(256, activation="relu", name="wide")(inputs)
    model = zero_out(keras.Model(inputs, keras.layers.Dense(10, name="logits")(h)))
    qat = fit(quantization.quantize_model(model), x, y, steps=4,
              optimizer=keras.optimizers.SGD(0.1))
    result = keras_prune.tflite.convert(qat, None, quantize="int8", verify_data=x[:32],
                                        verbose=0)
    assert result.verification.passed
    kernels = [t for t in keras_prune.tflite.inspect(result.content).tensors
               if t.op == "FULLY_CONNECTED" and len(t.shape) == 2]
    assert sorted(t.shape for t in kernels) == [(10, 256), (256, 40)]
    assert all(t.dtype == "int8" and t.zero_fraction >= 0.75 - 1e-6 for t in kernels)


@tf_only
def test_nested_model_file_matches_keras_to_the_output_step():
    from tests.quantization.test_qat import nested_model

    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 16)).astype("float32")
    qat = quantization.quantize_model(nested_model())
    qat.compile("adam", "mse")
    qat.fit(x, rng.normal(size=(128, 4)), batch_size=32, verbose=0)
    result = keras_prune.tflite.convert(qat, None, quantize="int8", verify_data=x[:32],
                                        verbose=0)
    assert result.verification.passed
    assert result.verification.max_abs_diff <= 2 * ranges.output_steps(qat)[0]


@tf_only
def test_per_tensor_kernels_for_targets_without_per_channel_weights(digits):
    x, y = digits
    qat = fit(quantization.quantize_model(cnn(), per_channel=False), x, y, steps=4)
    assert dict(qat.quantization_report.quantized)["depthwise"].startswith("kernel (per tensor)")
    result = keras_prune.tflite.convert(qat, None, quantize="int8", verify_data=x[:32],
                                        verbose=0)
    assert result.verification.passed
    from keras_prune.tflite import _runtime

    interpreter = _runtime.load_interpreter(result.content)
    scales = [detail["quantization_parameters"]["scales"] for detail
              in interpreter.get_tensor_details() if len(detail["shape"]) == 4
              and detail["dtype"] == np.int8 and "FakeQuantWithMinMaxVars" in detail["name"]]
    assert scales and all(len(s) == 1 for s in scales)  # one scale per kernel


@tf_only
def test_layer_kinds_convert_and_pass_the_step_check():
    """Concatenate, average pooling, transposed and 1D convolutions, Dense -> BN -> ReLU,
    Add -> ReLU, Multiply, Rescaling, LeakyReLU: each file matches its Keras QAT model."""
    layers, rng = keras.layers, np.random.default_rng(0)
    image = keras.Input((16, 16, 3))
    a = layers.Conv2D(8, 3, padding="same", activation="relu")(layers.Rescaling(0.5)(image))
    h = layers.Concatenate()([a, layers.Conv2D(8, 1, activation="relu")(image)])
    h = layers.AveragePooling2D(2)(h)
    h = layers.Conv2DTranspose(4, 3, strides=2, padding="same")(h)
    h = layers.LeakyReLU(0.1)(h)
    sequence = keras.Input((32, 4))
    s = layers.Conv1D(8, 3, activation="relu")(sequence)
    s = layers.DepthwiseConv1D(3)(s)
    s = layers.GlobalAveragePooling1D()(s)
    s = layers.ReLU()(layers.BatchNormalization()(layers.Dense(16)(s)))
    s = layers.ReLU()(layers.Add()([s, layers.Dense(16)(s)]))
    s = layers.Multiply()([s, s])
    outputs = [layers.Flatten()(h), layers.Dense(3)(s)]
    model = keras.Model([image, sequence], outputs)
    x = [rng.random((64, 16, 16, 3), dtype="float32"), rng.random((64, 32, 4), dtype="float32")]
    qat = quantization.quantize_model(model)
    assert qat.quantization_report.float_layers == []
    qat.compile("adam", ["mse", "mse"])
    qat.fit(x, model.predict(x, verbose=0), batch_size=32, epochs=2, verbose=0)
    result = keras_prune.tflite.convert(qat, None, quantize="int8", verify_data=x,
                                        verify_samples=32, verbose=0)
    assert result.verification.passed, result.verification
    assert {"CONCATENATION", "AVERAGE_POOL_2D", "TRANSPOSE_CONV", "CONV_2D",
            "DEPTHWISE_CONV_2D", "MUL"} <= set(keras_prune.tflite.inspect(result.content).ops)


@tf_only
def test_a_pruned_away_channel_with_a_bias_converts_exactly():
    """An all-zero output channel quantizes to zeros at any scale; a tiny scale would
    make TFLite's int32 bias (input scale x weight scale) overflow: 31 steps off."""
    layers, rng = keras.layers, np.random.default_rng(0)
    inputs = keras.Input((8, 8, 2))
    h = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    h = layers.GlobalAveragePooling2D()(layers.Conv2D(4, 1, name="pointwise")(h))
    model = keras.Model(inputs, layers.Dense(3)(h))
    for name, bias in (("conv", 0.5), ("pointwise", -0.3)):
        kernel, biases = model.get_layer(name).get_weights()
        kernel[..., 0], biases[0] = 0.0, bias
        model.get_layer(name).set_weights([kernel, biases])
    x = rng.random((64, 8, 8, 2), dtype="float32")
    qat = quantization.quantize_model(model)
    qat.compile(keras.optimizers.SGD(0.0), "mse")  # ranges only
    qat.fit(x, model.predict(x, verbose=0), verbose=0)
    result = keras_prune.tflite.convert(qat, None, quantize="int8", verify_data=x, verbose=0)
    assert result.verification.passed
    (step,) = ranges.output_steps(qat)
    assert result.verification.max_abs_diff <= step


@tf_only
def test_a_softmax_head_is_int8_and_float_ops_are_named(digits):
    x, y = digits

    def head_model(layernorm):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((8, 8, 1))
        h = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
        h = keras.layers.GlobalAveragePooling2D()(h)
        if layernorm:  # no int8 rule: stays float, and the file says which ops
            h = keras.layers.LayerNormalization(name="norm")(h)
        return keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="head")(h))

    qat = quantization.quantize_model(head_model(False))
    qat.compile("adam", "sparse_categorical_crossentropy")
    qat.fit(x[:256], y[:256], batch_size=32, verbose=0)
    result = keras_prune.tflite.convert(qat, None, quantize="int8", verify_data=x[:32],
                                        verbose=0)
    assert result.float_ops == []
    info = keras_prune.tflite.inspect(result.content)
    head = [t for t in info.tensors if t.op == "FULLY_CONNECTED" and len(t.shape) > 1]
    assert head and all(t.dtype == "int8" for t in head)
    assert "SOFTMAX" in info.ops

    qat = quantization.quantize_model(head_model(True))
    qat.compile("adam", "sparse_categorical_crossentropy")
    qat.fit(x[:256], y[:256], batch_size=32, verbose=0)
    with pytest.warns(UserWarning, match=r"runs \d+ op\(s\) in float32: "):
        result = keras_prune.tflite.convert(qat, None, quantize="int8", verify_data=x[:32],
                                            verbose=0)
    assert result.float_ops and "stay float32" in str(result)


@tf_only
def test_a_qat_file_names_its_weights_after_the_keras_layers(trained_qat):
    qat, x = trained_qat
    result = keras_prune.tflite.convert(qat, None, quantize="int8", verify=False, verbose=0)
    labels = {t.label for t in keras_prune.tflite.inspect(result.content).tensors}
    # was quant_pointwise_1/pointwise_1, ...; `conv` has its BatchNorm folded in (other values)
    assert {"depthwise", "pointwise", "logits"} <= labels, labels


@tf_only
def test_a_batchnorm_after_an_activation_runs_in_int8(tmp_path, digits):
    # Without a convolution before it, the converter cannot fold a BatchNormalization
    # and runs it as float MUL and ADD: QAT freezes it into a per-channel scale.
    x, y = digits
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    h = keras.layers.BatchNormalization(name="after_relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = fit(keras.Model(inputs, keras.layers.Dense(10)(h)), x, y, steps=8)
    qat = quantization.quantize_model(model)
    assert qat.quantization_report.folded == ["after_relu"]
    assert "frozen into a per-channel scale" in str(qat.quantization_report)
    frozen = wrapper(qat, "after_relu").layer
    assert isinstance(frozen, keras.layers.DepthwiseConv2D)
    bn = model.get_layer("after_relu")
    h_in = keras.Model(model.input, bn.input)(x[:8])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(frozen(h_in)),
                               keras.ops.convert_to_numpy(bn(h_in, training=False)),
                               rtol=1e-4, atol=1e-4)
    qat = fit(qat, x, y, steps=4)
    path = str(tmp_path / "qat.keras")
    qat.save(path)
    assert isinstance(keras.saving.load_model(path).get_layer("quant_after_relu").layer,
                      keras.layers.DepthwiseConv2D)
    result = keras_prune.tflite.convert(qat, None, quantize="int8", verify_data=x[:32],
                                        verbose=0)
    assert result.verification.passed
    assert result.float_ops == []
