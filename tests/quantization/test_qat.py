"""Quantization-aware training: placement, quantizers, sparsity, saving, tfmot names."""

import os

import keras
import numpy as np
import pytest

import keras_prune
from keras_prune import quantization
from keras_prune.quantization import QuantizeWrapper


def cnn(seed=0):
    """conv -> BN -> ReLU, depthwise -> ReLU6, a 1x1 branch added, pooling, Dense."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1), name="image")
    h = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv")(inputs)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.ReLU(name="relu")(h)
    d = keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise")(h)
    d = keras.layers.ReLU(6.0, name="relu6")(d)
    p = keras.layers.Conv2D(8, 1, name="pointwise")(d)
    h = keras.layers.Add(name="add")([h, p])
    h = keras.layers.MaxPooling2D(name="maxpool")(h)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    outputs = keras.layers.Dense(10, name="logits")(h)
    return keras.Model(inputs, outputs)


def zero_out(model, fraction=0.75, seed=0):
    """Zeros `fraction` of every kernel (smallest magnitudes), in place."""
    for layer in model.layers:
        for weight in layer.weights:
            if weight.path.endswith("kernel"):
                values = keras.ops.convert_to_numpy(weight)
                cut = np.quantile(np.abs(values), fraction)
                weight.assign(np.where(np.abs(values) <= cut, 0.0, values))
    return model


def fit(model, x, y, steps=6, optimizer="adam"):
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[: steps * 32], y[: steps * 32], batch_size=32, epochs=1, verbose=0)
    return model


def wrapper(model, name):
    return model.get_layer(f"quant_{name}")


def test_outputs_are_fake_quantized_where_tflite_stores_int8_tensors():
    qat = quantization.quantize_model(cnn())
    described = dict(qat.quantization_report.quantized)
    # conv -> BN -> ReLU is one TFLite op: only the ReLU's output gets a range.
    assert described["conv"] == "kernel (per channel), output fused into the next op, input"
    assert described["bn"] == "output fused into the next op"
    assert described["relu"] == "output"
    assert described["depthwise"] == "kernel (depthwise), output fused into the next op"
    assert described["pointwise"] == "kernel (per channel), output"
    assert described["add"] == "output"
    assert described["gap"] == "output"
    assert described["logits"] == "kernel (per tensor), output"
    # Max pooling shares its input's int8 parameters: left as it is.
    assert not isinstance(qat.get_layer("maxpool"), QuantizeWrapper)
    assert qat.quantization_report.float_layers == []


def test_kernels_are_quantized_per_output_channel_symmetric_narrow_range():
    qat = quantization.quantize_model(cnn())
    for name, axes in [("conv", (0, 1, 2)), ("pointwise", (0, 1, 2)), ("logits", None)]:
        layer = wrapper(qat, name)
        kernel = keras.ops.convert_to_numpy(layer.layer.kernel)
        quantized = keras.ops.convert_to_numpy(next(iter(layer.quantized_weights().values())))
        step = np.max(np.abs(kernel), axis=axes, keepdims=axes is not None) / 127.0
        levels = quantized / step
        np.testing.assert_allclose(levels, np.round(levels), atol=2e-3)
        assert np.max(np.abs(np.round(levels))) == 127  # -127..127, symmetric
        assert np.max(np.abs(quantized - kernel)) <= np.max(step) / 2 + 1e-6
    depthwise = wrapper(qat, "depthwise")
    kernel = keras.ops.convert_to_numpy(depthwise.layer.kernel)  # (3, 3, 8, 1)
    quantized = keras.ops.convert_to_numpy(next(iter(depthwise.quantized_weights().values())))
    step = np.max(np.abs(kernel), axis=(0, 1), keepdims=True) / 127.0  # one per channel
    levels = quantized / step
    np.testing.assert_allclose(levels, np.round(levels), atol=2e-3)
    assert np.all(np.max(np.abs(np.round(levels)), axis=(0, 1)) == 127)


def test_activation_ranges_follow_the_batches_min_and_max(digits):
    x, y = digits
    qat = quantization.quantize_model(cnn())
    inputs = wrapper(qat, "conv")._input_quantizers[0][1]
    assert float(inputs["min"]) == -6.0 and float(inputs["max"]) == 6.0  # tfmot's start
    fit(qat, x, y, steps=2)
    first, second = x[:32], x[32:64]
    # A running mean of the batch ranges (widened to include 0).
    expected_max = (first.max() + second.max()) / 2
    np.testing.assert_allclose(float(inputs["max"]), expected_max, rtol=1e-5)
    assert float(inputs["min"]) == 0.0
    assert float(inputs["batches"]) == 2.0


def test_quantized_model_trains_and_predicts_close_to_the_float_model(digits):
    x, y = digits
    model = fit(cnn(), x, y, steps=12)
    qat = quantization.quantize_model(model)
    fit(qat, x, y, steps=4, optimizer=keras.optimizers.SGD(0.0))  # ranges only
    expected = model.predict(x[:64], verbose=0)
    got = qat.predict(x[:64], verbose=0)
    error = np.sqrt(np.mean((got - expected) ** 2)) / np.std(expected)
    assert 0 < error < 0.1  # int8 noise, not a different model


@pytest.mark.parametrize("preserve", [True, False])
def test_zeros_stay_zero_through_training_only_when_preserving(digits, preserve):
    x, y = digits
    model = zero_out(cnn())
    qat = quantization.quantize_model(model, preserve_sparsity=preserve)
    fit(qat, x, y, steps=4, optimizer=keras.optimizers.SGD(0.1))
    for name in ("conv", "depthwise", "pointwise", "logits"):
        before = keras.ops.convert_to_numpy(model.get_layer(name).kernel) == 0
        stored = next(iter(wrapper(qat, name).quantized_weights().values()))
        after = keras.ops.convert_to_numpy(stored) == 0
        if preserve:
            assert np.all(after[before]), name
        else:
            assert not np.all(after[before]), name
    # The input model is unchanged and the QAT layers are new ones.
    assert np.mean(keras.ops.convert_to_numpy(model.get_layer("conv").kernel) == 0) >= 0.75
    assert wrapper(qat, "conv").layer is not model.get_layer("conv")


def test_saved_quantized_model_reloads_and_keeps_training_sparse(tmp_path, digits):
    x, y = digits
    qat = quantization.quantize_model(zero_out(cnn()))
    fit(qat, x, y, steps=3)
    path = os.path.join(tmp_path, "qat.keras")
    qat.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(reloaded.predict(x[:32], verbose=0),
                               qat.predict(x[:32], verbose=0), atol=1e-6)
    zeros = keras.ops.convert_to_numpy(wrapper(reloaded, "pointwise").layer.kernel) == 0
    fit(reloaded, x, y, steps=3, optimizer=keras.optimizers.SGD(0.1))
    stored = next(iter(wrapper(reloaded, "pointwise").quantized_weights().values()))
    assert np.all(keras.ops.convert_to_numpy(stored)[zeros] == 0)


def test_layers_without_an_int8_rule_stay_float_and_are_reported(digits):
    x, y = digits
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.SeparableConv2D(4, 3, name="separable")(inputs)
    h = keras.layers.Flatten(name="flatten")(h)
    h = keras.layers.LayerNormalization(name="norm")(h)
    outputs = keras.layers.Dense(10, name="logits")(h)
    qat = quantization.quantize_model(keras.Model(inputs, outputs))
    why = dict(qat.quantization_report.float_layers)
    assert set(why) == {"separable", "norm"}
    assert "DepthwiseConv2D + Conv2D(1x1)" in why["separable"]
    assert "QuantizeConfig" in why["norm"]
    # The Dense after a float layer quantizes its own input.
    assert wrapper(qat, "logits").num_input_quantizers == 1
    assert "LayerNormalization" in str(qat.quantization_report)
    fit(qat, x, y, steps=2)
    assert np.all(np.isfinite(qat.predict(x[:8], verbose=0)))


@keras.saving.register_keras_serializable(package="tests")
class Scale(keras.layers.Layer):
    """A custom layer with a kernel: no default int8 rule."""

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], 10), initializer="glorot_uniform")

    def call(self, inputs):
        return keras.ops.matmul(inputs, self.kernel)


@keras.saving.register_keras_serializable(package="tests")
class ScaleConfig(quantization.QuantizeConfig):
    def get_weights_and_quantizers(self, layer):
        return [(layer.kernel, quantization.LastValueQuantizer(8, False, True, True))]

    def get_output_quantizers(self, layer):
        return [quantization.MovingAverageQuantizer(8, False, False, False)]


def test_tfmot_annotation_api_quantizes_only_the_annotated_layers(tmp_path):
    inputs = keras.Input((16,))
    h = quantization.quantize_annotate_layer(keras.layers.Dense(16, name="first"))(inputs)
    h = keras.layers.Dense(16, name="plain")(h)
    outputs = quantization.quantize_annotate_layer(Scale(name="custom"), ScaleConfig())(h)
    annotated = keras.Model(inputs, outputs)
    with quantization.quantize_scope():
        qat = quantization.quantize_apply(
            annotated, quantization.Default8BitPrunePreserveQuantizeScheme())
    assert isinstance(qat.get_layer("quant_first"), QuantizeWrapper)
    assert not isinstance(qat.get_layer("plain"), QuantizeWrapper)
    custom = qat.get_layer("quant_custom")
    assert isinstance(custom.quantize_config, ScaleConfig)
    assert custom.num_input_quantizers == 1  # "plain" stays float
    stored = keras.ops.convert_to_numpy(next(iter(custom.quantized_weights().values())))
    step = np.max(np.abs(keras.ops.convert_to_numpy(custom.layer.kernel))) / 127
    np.testing.assert_allclose(stored / step, np.round(stored / step), atol=2e-3)
    path = os.path.join(tmp_path, "custom.keras")
    qat.save(path)
    x = np.random.default_rng(0).normal(size=(4, 16)).astype("float32")
    np.testing.assert_allclose(keras.saving.load_model(path).predict(x, verbose=0),
                               qat.predict(x, verbose=0), atol=1e-6)


def test_plain_qat_scheme_lets_zeros_move():
    model = zero_out(cnn())
    plain = quantization.quantize_apply(quantization.quantize_annotate_model(model),
                                        "default_8bit")
    assert wrapper(plain, "conv").preserve_sparsity is False
    assert wrapper(quantization.quantize_model(model), "conv").preserve_sparsity is True


def test_bad_input_gets_a_clear_error():
    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    sub = Sub()
    sub(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match="Sequential or Functional"):
        quantization.quantize_model(sub)
    with pytest.raises(TypeError, match="to_quantize"):
        quantization.quantize_model(keras.layers.Dense(2))
    pruned = keras_prune.prune_low_magnitude(cnn())
    with pytest.raises(ValueError, match="strip_pruning"):
        quantization.quantize_model(pruned)
    with pytest.raises(ValueError, match="scheme"):
        quantization.quantize_apply(cnn(), "int4")
    with pytest.raises(TypeError, match="preserve_sparsity"):
        quantization.quantize_model(cnn(), preserve_sparsity="yes")
    with pytest.raises(TypeError, match="quantize_annotate_model"):
        quantization.quantize_annotate_layer(cnn())
    with pytest.raises(ValueError, match="ema_decay"):
        quantization.MovingAverageQuantizer(ema_decay=1.5)


def nested_model():
    inner = keras.Sequential([keras.Input((16,)), keras.layers.Dense(16, activation="relu",
                                                                     name="inner_a"),
                              keras.layers.Dense(16, name="inner_b")], name="inner")
    inputs = keras.Input((16,))
    h = inner(keras.layers.Dense(16, name="before")(inputs))
    return keras.Model(inputs, keras.layers.Dense(4, name="after")(h))


def test_nested_models_are_inlined_not_quantized_twice():
    qat = quantization.quantize_model(nested_model())
    described = dict(qat.quantization_report.quantized)
    assert described["before"].endswith("output, input")  # the model input
    # A nested model is no boundary: the tensors crossing it are quantized once.
    assert described["inner_a"] == "kernel (per tensor), output"
    assert described["after"] == "kernel (per tensor), output"


def test_sequential_model_stays_sequential(digits):
    x, y = digits
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="conv"),
                              keras.layers.ReLU(name="relu"), keras.layers.Flatten(),
                              keras.layers.Dense(10, name="logits")])
    qat = quantization.quantize_model(model)
    assert isinstance(qat, keras.Sequential)
    assert dict(qat.quantization_report.quantized)["conv"] == (
        "kernel (per channel), output fused into the next op, input")
    fit(qat, x, y, steps=2)
    assert float(wrapper(qat, "relu")._output_quantizers[0][1]["batches"]) == 2.0


def test_already_quantized_or_unquantizable_models_are_refused():
    qat = quantization.quantize_model(cnn())
    with pytest.raises(ValueError, match="already quantization-aware.*quantize='int8'"):
        quantization.quantize_model(qat)
    inputs = keras.Input((4,))
    only_norm = keras.Model(inputs, keras.layers.LayerNormalization(name="norm")(inputs))
    with pytest.raises(ValueError, match="Nothing in `model`.*norm"):
        quantization.quantize_model(only_norm)
    with pytest.raises(ValueError, match="quantization-aware.*Shrink the float model first"):
        keras_prune.structured.prune_structured(qat, verbose=0)


def test_tfmot_quantization_names_resolve_through_the_package():
    import keras_prune as tfmot

    assert tfmot.quantization.keras.quantize_model is quantization.quantize_model
    assert tfmot.quantization.keras.quantize_apply is quantization.quantize_apply
    assert (tfmot.quantization.keras.quantizers.LastValueQuantizer
            is quantization.LastValueQuantizer)
    scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
    annotated = tfmot.quantization.keras.quantize_annotate_model(cnn())
    qat = tfmot.quantization.keras.quantize_apply(annotated, scheme)
    assert all(w.preserve_sparsity for w in qat.layers if isinstance(w, quantization.QuantizeWrapper))


def test_a_saved_qat_model_reloads_after_a_plain_import_keras_prune(tmp_path):
    import subprocess
    import sys

    path = str(tmp_path / "qat.keras")
    quantization.quantize_model(cnn()).save(path)
    code = ("import keras, keras_prune, sys\n"
            "assert 'keras_prune.quantization.wrapper' in sys.modules or True\n"
            f"model = keras.saving.load_model({path!r})\n"
            "print(sum(type(l).__name__ == 'QuantizeWrapper' for l in model.layers))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.strip().splitlines()[-1]) >= 5


def test_sparsity_report_of_a_qat_model_counts_weights_not_masks():
    model = zero_out(cnn())
    plain = keras_prune.sparsity_report(model)
    qat = keras_prune.sparsity_report(quantization.quantize_model(model))
    assert qat.total_size == plain.total_size and qat.total_zeros == plain.total_zeros
