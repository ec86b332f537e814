import keras
import numpy as np
import pytest

import keras_prune
from keras_prune import PruneLowMagnitude
from keras_prune.layers import collect_wrappers
from keras_prune.schedules import ConstantSparsity


def _layer_cases():
    L = keras.layers
    return {
        "dense": (L.Dense(6), (5,)),
        "einsum_dense": (L.EinsumDense("ab,bc->ac", output_shape=6, bias_axes="c"), (5,)),
        "conv1d": (L.Conv1D(4, 3), (8, 3)),
        "conv2d": (L.Conv2D(4, 3), (8, 8, 3)),
        "conv3d": (L.Conv3D(4, 2), (4, 4, 4, 2)),
        "conv1d_transpose": (L.Conv1DTranspose(4, 3), (8, 3)),
        "conv2d_transpose": (L.Conv2DTranspose(4, 3), (6, 6, 3)),
        "conv3d_transpose": (L.Conv3DTranspose(4, 2), (3, 3, 3, 2)),
        "depthwise_conv1d": (L.DepthwiseConv1D(3), (8, 4)),
        "depthwise_conv2d": (L.DepthwiseConv2D(3), (6, 6, 4)),
        "separable_conv1d": (L.SeparableConv1D(4, 3), (8, 3)),
        "separable_conv2d": (L.SeparableConv2D(4, 3), (6, 6, 3)),
        "embedding": (L.Embedding(20, 6), (7,)),
        "simple_rnn": (L.SimpleRNN(5), (6, 3)),
        "lstm": (L.LSTM(5, return_sequences=True), (6, 3)),
        "gru": (L.GRU(5), (6, 3)),
        "bidirectional": (L.Bidirectional(L.LSTM(4)), (6, 3)),
        "time_distributed": (L.TimeDistributed(L.Dense(4)), (6, 3)),
    }


def _expected_weight_count(name):
    return {
        "separable_conv1d": 2,
        "separable_conv2d": 2,
        "simple_rnn": 2,
        "lstm": 2,
        "gru": 2,
        "bidirectional": 4,
    }.get(name, 1)


@pytest.mark.parametrize("name", list(_layer_cases()))
def test_every_supported_layer_kind_prunes_and_strips_exactly(name):
    layer, shape = _layer_cases()[name]
    inputs = keras.Input(shape, dtype="int32" if name == "embedding" else "float32")
    model = keras.Model(inputs, layer(inputs))
    rng = np.random.default_rng(0)
    if name == "embedding":
        x = rng.integers(0, 20, size=(4, *shape))
    else:
        x = rng.normal(size=(4, *shape)).astype("float32")

    pruned = keras_prune.prune_low_magnitude(model, ConstantSparsity(0.75, 0, frequency=1))
    wrapper = collect_wrappers(pruned)[0]
    assert len(wrapper.masks) == _expected_weight_count(name)
    # Pruning the masks by hand (as the callback does) changes the output, and the
    # stripped model reproduces the masked one exactly.
    callback = keras_prune.callbacks.PruneCallback()
    callback.set_model(pruned)
    callback.on_train_begin()
    callback.on_train_batch_begin(0)
    for weight, mask in zip(wrapper.prunable_weights, wrapper.masks):
        kept = keras.ops.convert_to_numpy(mask).mean()
        assert kept == pytest.approx(0.25, abs=0.1)
        assert np.all(keras.ops.convert_to_numpy(weight)[keras.ops.convert_to_numpy(mask) == 0] == 0)
    callback.on_train_end()
    stripped = keras_prune.strip_pruning(pruned)
    assert not collect_wrappers(stripped)
    np.testing.assert_allclose(
        stripped.predict(x, verbose=0), pruned.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    assert not np.allclose(model.predict(x, verbose=0), pruned.predict(x, verbose=0))


def test_multi_head_attention_kernels_are_pruned():
    inputs = keras.Input((5, 8))
    outputs = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)(inputs, inputs)
    model = keras.Model(inputs, outputs)
    pruned = keras_prune.prune_low_magnitude(model, ConstantSparsity(0.5, 0))
    wrapper = collect_wrappers(pruned)[0]
    assert len(wrapper.masks) == 4
    x = np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")
    np.testing.assert_allclose(pruned.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_prune_returns_new_model_and_leaves_input_unchanged(helpers):
    model = helpers.small_cnn()
    before = [w.copy() for w in model.get_weights()]
    pruned = keras_prune.prune_low_magnitude(model)
    assert pruned is not model
    assert not collect_wrappers(model)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).normal(size=(3, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(pruned.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_report_lists_pruned_and_skipped_layers_with_reasons(helpers):
    pruned = keras_prune.prune_low_magnitude(helpers.small_cnn(), filters=r"^dense")
    report = pruned.pruning_report
    assert sorted(report.pruned) == ["dense", "dense_1"]
    reasons = dict(report.skipped)
    assert reasons["conv2d"] == "not selected by `filters`"
    assert "flatten" in reasons


def test_filters_accept_names_and_callables(helpers):
    model = helpers.small_cnn()
    by_name = keras_prune.prune_low_magnitude(model, filters=["dense_1"])
    assert by_name.pruning_report.pruned == ["dense_1"]
    by_type = keras_prune.prune_low_magnitude(
        model, filters=lambda layer: isinstance(layer, keras.layers.Conv2D)
    )
    assert by_type.pruning_report.pruned == ["conv2d"]


def test_default_schedule_is_a_fresh_constant_sparsity_each_call(helpers):
    a = collect_wrappers(keras_prune.prune_low_magnitude(helpers.small_cnn()))[0]
    b = collect_wrappers(keras_prune.prune_low_magnitude(helpers.small_cnn()))[0]
    assert a.pruning_schedule == ConstantSparsity(0.5, begin_step=0)
    assert a.pruning_schedule is not b.pruning_schedule


def test_functional_model_with_nested_model_prunes_inner_layers():
    inner_in = keras.Input((6,))
    inner = keras.Model(inner_in, keras.layers.Dense(4, name="inner_dense")(inner_in), name="inner")
    inputs = keras.Input((6,))
    x = inner(inputs)
    outputs = keras.layers.Dense(2, name="head")(keras.layers.Activation("relu")(x))
    model = keras.Model(inputs, outputs)
    pruned = keras_prune.prune_low_magnitude(model)
    names = sorted(w.layer.name for w in collect_wrappers(pruned))
    assert names == ["head", "inner_dense"]
    x_data = np.random.default_rng(0).normal(size=(3, 6)).astype("float32")
    np.testing.assert_allclose(pruned.predict(x_data, verbose=0), model.predict(x_data, verbose=0), atol=1e-6)


class TwoLayerNet(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(16, activation="relu")
        self.blocks = [keras.layers.Dense(8, activation="relu")]
        self.norm = keras.layers.LayerNormalization()
        self.out = keras.layers.Dense(3)

    def call(self, x):
        x = self.hidden(x)
        for block in self.blocks:
            x = block(x)
        return self.out(self.norm(x))


def test_subclassed_model_is_pruned_without_touching_the_original(helpers, tmp_path):
    model = TwoLayerNet()
    x = np.random.default_rng(0).normal(size=(64, 10)).astype("float32")
    y = np.random.default_rng(1).integers(0, 3, size=64)
    model(x[:1])
    pruned = keras_prune.prune_low_magnitude(model, ConstantSparsity(0.7, 0, frequency=1))
    assert len(collect_wrappers(pruned)) == 3
    assert not collect_wrappers(model)
    np.testing.assert_allclose(pruned.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    helpers.compile_model(pruned)
    helpers.tiny_fit(pruned, x, y, epochs=1, batch_size=16)
    report = keras_prune.sparsity_report(pruned)
    assert report.sparsity == pytest.approx(0.7, abs=0.01)
    stripped = keras_prune.strip_pruning(pruned)
    np.testing.assert_allclose(
        stripped.predict(x, verbose=0), pruned.predict(x, verbose=0), atol=1e-6
    )


def test_list_of_layers_and_single_layer_get_wrapped():
    layers = keras_prune.prune_low_magnitude([keras.layers.Dense(3), keras.layers.Conv1D(2, 2)])
    assert all(isinstance(layer, PruneLowMagnitude) for layer in layers)
    single = keras_prune.prune_low_magnitude(keras.layers.Dense(3))
    assert isinstance(single, PruneLowMagnitude)


def test_clone_model_with_clone_function_as_in_tfmot_guide(helpers, digits):
    model = helpers.small_cnn()

    def apply_pruning_to_dense(layer):
        if isinstance(layer, keras.layers.Dense):
            return keras_prune.prune_low_magnitude(layer, ConstantSparsity(0.5, 0, frequency=5))
        return layer

    pruned = keras.models.clone_model(model, clone_function=apply_pruning_to_dense)
    assert sorted(type(w.layer).__name__ for w in collect_wrappers(pruned)) == ["Dense", "Dense"]
    helpers.compile_model(pruned)
    helpers.tiny_fit(pruned, *digits, epochs=1)
    for kernel in helpers.effective_kernels(pruned):
        assert (kernel == 0).mean() == pytest.approx(0.5, abs=0.01)


def test_sparsity_report_returns_plain_data_and_prints_a_table(helpers):
    pruned = keras_prune.prune_low_magnitude(helpers.small_cnn())
    lines = []
    report = keras_prune.sparsity_report(pruned, print_fn=lines.append)
    data = report.to_dict()
    assert [row["weight"] for row in data["weights"]] == ["kernel"] * 3
    assert data["total_size"] == 3 * 3 * 8 + 288 * 16 + 160
    assert "total" in lines[0] and "sparsity" in lines[0]
