"""Findings from running models nobody here wrote (keras_hub Tasks, shared layers, RNNs)."""

import keras
import numpy as np

import keras_prune
from keras_prune.layers import collect_wrappers
from keras_prune.schedules import ConstantSparsity


def test_structured_pruning_of_a_task_that_reuses_its_backbone_inputs_terminates():
    # How keras_hub builds a Task: the nested model is called on its own input tensor.
    inputs = keras.Input((8,))
    backbone = keras.Model(inputs, keras.layers.Dense(16, activation="relu")(inputs))
    task = keras.Model(backbone.input, keras.layers.Dense(2)(backbone(backbone.input)))
    smaller, report = keras_prune.structured.prune_structured(task, 0.5)
    assert smaller.count_params() < task.count_params()
    x = np.ones((2, 8), "float32")
    assert keras.ops.convert_to_numpy(smaller(x)).shape == (2, 2)


def test_a_layer_shared_by_a_nested_model_and_the_outer_graph_stays_one_layer():
    embedding = keras.layers.Embedding(50, 16)
    inner_input = keras.Input((4,), dtype="int32")
    inner = keras.Model(inner_input, embedding(inner_input))
    tokens = keras.Input((4,), dtype="int32")
    outputs = keras.layers.Dense(3)(inner(tokens) + embedding(tokens))
    model = keras.Model(tokens, outputs)
    pruned = keras_prune.prune_low_magnitude(model)
    wrappers = collect_wrappers(pruned)
    assert len(wrappers) == 2  # one for the shared embedding, one for the Dense
    stripped = keras_prune.strip_pruning(pruned)
    assert stripped.count_params() == model.count_params()


def test_training_mode_calls_work_after_fit_for_batchnorm_re_estimation():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
                              keras.layers.BatchNormalization(), keras.layers.Dense(2)])
    pruned = keras_prune.prune_low_magnitude(model, ConstantSparsity(0.5, 0, frequency=1))
    pruned.compile("sgd", "mse")
    x = np.random.default_rng(0).random((8, 4), dtype="float32")
    pruned.fit(x, np.zeros((8, 2)), verbose=0, callbacks=[keras_prune.callbacks.PruneCallback()])
    before = keras.ops.convert_to_numpy(pruned.layers[1].moving_mean).copy()
    pruned(x * 5.0, training=True)
    after = keras.ops.convert_to_numpy(pruned.layers[1].moving_mean)
    assert not np.allclose(before, after)


def test_flops_count_recurrent_layers():
    inputs = keras.Input((10, 6))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.LSTM(8)(inputs)))
    flops = keras_prune.structured.count_flops(model)
    lstm = 10 * 2 * 4 * 8 * (6 + 8)
    assert flops == lstm + 2 * 8 * 2


@keras.saving.register_keras_serializable("keras_prune_tests")
class TinyClassifier(keras.Model):
    """A Functional subclass built the keras_hub way: the constructor makes its layers."""

    def __init__(self, units=8, **kwargs):
        inputs = keras.Input((6,))
        hidden = keras.layers.Dense(units, activation="relu")
        outputs = keras.layers.Dense(3)(hidden(inputs))
        super().__init__(inputs, outputs, **kwargs)
        self.hidden = hidden
        self.units = units

    def features(self, x):
        return self.hidden(x)

    def get_config(self):
        return {"units": self.units, "name": self.name}


def test_strip_pruning_gives_a_functional_subclass_its_class_back():
    model = TinyClassifier()
    pruned = keras_prune.prune_low_magnitude(model, ConstantSparsity(0.5, 0, frequency=1))
    pruned.compile("sgd", "mse")
    x = np.random.default_rng(0).random((8, 6), dtype="float32")
    pruned.fit(x, np.zeros((8, 3)), verbose=0,
               callbacks=[keras_prune.callbacks.PruneCallback()])
    stripped = keras_prune.strip_pruning(pruned)
    assert type(stripped) is TinyClassifier
    assert stripped.features(x).shape == (8, 8)  # its own methods work
    np.testing.assert_allclose(keras.ops.convert_to_numpy(stripped(x)),
                               keras.ops.convert_to_numpy(pruned(x)), atol=1e-6)
    kernel = keras.ops.convert_to_numpy(stripped.hidden.kernel)
    assert np.mean(kernel == 0) == 0.5


def test_a_structurally_pruned_functional_subclass_stays_a_plain_model():
    # Its constructor cannot build the narrower layers, so the class cannot come back.
    model = TinyClassifier(units=8)
    smaller, _ = keras_prune.structured.prune_structured(model, 0.5)
    assert smaller.count_params() < model.count_params()
    assert type(keras_prune.strip_pruning(smaller)) is not TinyClassifier


def test_a_pruned_keras_hub_causal_lm_generates_after_stripping(tmp_path):
    import keras_hub

    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32,
        max_sequence_length=16,
    )
    causal_lm = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
    pruned = keras_prune.prune_low_magnitude(causal_lm, ConstantSparsity(0.5, 0, frequency=1))
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = {"token_ids": rng.integers(1, 50, (4, 16)), "padding_mask": np.ones((4, 16), "int32")}
    pruned.fit(x, rng.integers(1, 50, (4, 16)), verbose=0,
               callbacks=[keras_prune.callbacks.PruneCallback()])
    stripped = keras_prune.strip_pruning(pruned)
    assert isinstance(stripped, keras_hub.models.GPT2CausalLM)
    assert isinstance(stripped.backbone, keras_hub.models.GPT2Backbone)
    assert stripped.count_params() == causal_lm.count_params()  # the tied head stays tied
    np.testing.assert_allclose(keras.ops.convert_to_numpy(stripped(x)),
                               keras.ops.convert_to_numpy(pruned(x)), atol=1e-5)
    prompt = {"token_ids": x["token_ids"][:1], "padding_mask": np.zeros((1, 16), "int32")}
    prompt["padding_mask"][:, :4] = 1
    generated = stripped.generate(prompt, stop_token_ids=None)  # fills the 16 positions
    np.testing.assert_array_equal(generated["token_ids"][:, :4], prompt["token_ids"][:, :4])
    assert np.asarray(generated["padding_mask"]).all()
    stripped.save(tmp_path / "lm.keras")
    loaded = keras.saving.load_model(tmp_path / "lm.keras")
    assert isinstance(loaded, keras_hub.models.GPT2CausalLM)


def test_layers_a_block_builds_but_never_calls_do_not_stop_pruning_or_strip(tmp_path):
    # keras_hub's fused EfficientNet blocks create squeeze-excite layers they do not
    # call when their ratio is 0: those wrappers are never built. They kept every
    # other wrapper from being pruned, and strip_pruning crashed on them.
    import pytest

    keras_hub = pytest.importorskip("keras_hub")
    model = keras_hub.models.EfficientNetBackbone(
        stackwise_kernel_sizes=[3, 3], stackwise_num_repeats=[1, 1],
        stackwise_input_filters=[16, 16], stackwise_output_filters=[16, 24],
        stackwise_expansion_ratios=[1, 4], stackwise_strides=[1, 2],
        stackwise_squeeze_and_excite_ratios=[0.0, 0.25],
        stackwise_block_types=["fused", "unfused"], stackwise_force_input_filters=[0, 0],
        stackwise_nores_option=[False, False], width_coefficient=1.0, depth_coefficient=1.0,
        input_shape=(32, 32, 3))
    x = np.random.default_rng(0).uniform(size=(6, 32, 32, 3)).astype("float32")
    pruned = keras_prune.prune_low_magnitude(model, ConstantSparsity(0.5, 0, frequency=1))
    pruned.compile("sgd", "mse")
    pruned.fit(x, np.zeros(model(x).shape, "float32"), batch_size=2, verbose=0,
               callbacks=[keras_prune.callbacks.PruneCallback()])
    wrappers = collect_wrappers(pruned)
    uncalled = [w for w in wrappers if not w.built]
    assert len(uncalled) == 2
    for wrapper in wrappers:
        if wrapper.built and wrapper.prunable_weights:
            assert int(keras.ops.convert_to_numpy(wrapper.pruning_step)) == 3
            mask = keras.ops.convert_to_numpy(wrapper.masks[0])
            assert abs(1 - mask.mean() - 0.5) < 0.05, wrapper.name
    with pytest.warns(UserWarning, match="2 wrapped layer.* never called"):
        stripped = keras_prune.strip_pruning(pruned)
    assert type(stripped) is type(model)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(stripped(x)),
                               keras.ops.convert_to_numpy(pruned(x)), rtol=1e-5, atol=1e-5)


@keras.saving.register_keras_serializable("keras_prune_tests")
class _Held(keras.layers.Layer):
    """Sub-layers in a dict (RetinaNet's pyramid) and in a held Sequential (ViTDet's MLP)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.by_level = {"p3": keras.layers.Dense(8), "p4": keras.layers.Dense(8)}
        self.mlp = keras.Sequential([keras.layers.Dense(8, name="held_dense")])

    def build(self, input_shape):
        for layer in self.by_level.values():
            layer.build(input_shape)
        self.mlp.build(input_shape[:-1] + (8,))

    def call(self, x):
        return self.mlp(self.by_level["p3"](x) + self.by_level["p4"](x))


def test_layers_in_a_dict_are_pruned_and_layers_in_a_held_model_are_reported():
    inputs = keras.Input((8,))
    model = keras.Model(inputs, _Held(name="held")(inputs))
    pruned = keras_prune.prune_low_magnitude(model)
    assert len([n for n in pruned.pruning_report.pruned if n.startswith("held/")]) == 2
    wrapped = {w.layer.name for w in collect_wrappers(pruned)}
    held = pruned.get_layer("held")
    assert {layer.name for layer in held.by_level.values()} <= wrapped | {
        w.name for w in held.by_level.values()}
    assert all(type(layer).__name__ == "PruneLowMagnitude" for layer in held.by_level.values())
    left = dict(pruned.pruning_report.skipped)
    assert "held/held_dense" in left
    assert "Sequential that the custom layer _Held holds" in left["held/held_dense"]
    assert "held/held_dense" in str(pruned.pruning_report)


def test_every_kernel_of_an_attention_subclass_is_masked():
    class WithEncoding(keras.layers.MultiHeadAttention):  # as XLNet's relative attention
        def build(self, query_shape, value_shape, key_shape=None):
            super().build(query_shape, value_shape, key_shape)
            self._encoding_dense = keras.layers.EinsumDense("abc,cd->abd", output_shape=(None, 8))
            self._encoding_dense.build(query_shape)

    layer = WithEncoding(num_heads=2, key_dim=4)
    layer.build((None, 3, 8), (None, 3, 8))
    from keras_prune.layers import registry

    kernels = registry.get_prunable_weights(layer)
    assert len(kernels) == 5
    assert any(k is layer._encoding_dense.kernel for k in kernels)


def test_a_copy_trains_without_touching_the_model_it_was_copied_from():
    # Copies take their weights variable to variable (TF: copy on write; torch: a copy),
    # with no host copy of each layer: training one must not move the other.
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dense(4)])
    before = [keras.ops.convert_to_numpy(w).copy() for w in model.weights]
    pruned = keras_prune.prune_low_magnitude(model, ConstantSparsity(0.5, 0, frequency=1))
    pruned.compile("adam", "mse")
    rng = np.random.default_rng(0)
    pruned.fit(rng.random((64, 8)), rng.random((64, 4)), epochs=2, verbose=0,
               callbacks=[keras_prune.callbacks.PruneCallback()])
    for value, weight in zip(before, model.weights):
        np.testing.assert_array_equal(value, keras.ops.convert_to_numpy(weight))
    stripped = keras_prune.strip_pruning(pruned)
    assert not np.array_equal(before[0], keras.ops.convert_to_numpy(stripped.weights[0]))
