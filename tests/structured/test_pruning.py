"""prune_structured on every layer kind: the model shrinks and computes what a masked copy computes."""

import keras
import numpy as np
import pytest

import keras_prune
from keras_prune.structured import DependencyGraph, StructuredPruner, prune_structured
from tests.structured import models

ARCHITECTURES = {
    "residual_cnn": (models.residual_cnn, None),
    "assorted_cnn": (models.assorted_cnn, None),
    "conv1d": (models.conv1d_model, None),
    "transformer": (models.transformer, {"ffn1": 0.5, "mha": 0.5}),
    "grouped_attention": (models.grouped_attention,
                          {"gqa": 0.5, "mha_out": 0.5, "ffn": 0.5, "mqa": 0.5}),
    "sequential_mlp": (models.sequential_mlp, None),
    "nested": (models.nested, None),
    "shared_dense": (models.shared_dense, None),
}


def sample(model, n=4, seed=0):
    rng = np.random.default_rng(seed)
    arrays = []
    for tensor in model.inputs:
        shape = (n, *tensor.shape[1:])
        if "int" in str(tensor.dtype):
            arrays.append(rng.integers(0, 20, size=shape).astype("int32"))
        else:
            arrays.append(rng.normal(size=shape).astype("float32"))
    return arrays[0] if len(arrays) == 1 else arrays


def predict(model, x):
    return np.asarray(model.predict(x, verbose=0))


def randomize_batchnorm(model):
    """Non-trivial BatchNorm statistics, so a wrong slice would show."""
    rng = np.random.default_rng(7)
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32")
                               for w in layer.get_weights()])


def masked_copy(model, masks):
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    by_path = {v.path: mask for v, mask in masks}
    originals = {v.path for v in model.weights}
    assert set(by_path) <= originals
    for original, variable in zip(model.weights, copy.weights):
        if original.path in by_path:
            variable.assign(keras.ops.convert_to_numpy(variable) * by_path[original.path])
    return copy


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_pruned_model_is_smaller_and_matches_masked_original(name):
    build, ratio = ARCHITECTURES[name]
    model = build()
    randomize_batchnorm(model)
    x = sample(model)
    before = predict(model, x)
    weights_before = [w.copy() for w in model.get_weights()]

    pruner = StructuredPruner(model, ratio=ratio or 0.5, importance="random")
    new_model, report = pruner.apply()

    assert new_model.count_params() < model.count_params()
    assert report.params_after == new_model.count_params()
    assert any(row.after < row.before for row in report.layers)
    np.testing.assert_allclose(
        predict(new_model, x), predict(masked_copy(model, pruner.masks()), x),
        rtol=1e-4, atol=1e-5,
    )
    # The input model is untouched.
    np.testing.assert_array_equal(predict(model, x), before)
    for old, now in zip(weights_before, model.get_weights()):
        np.testing.assert_array_equal(old, now)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_ratio_zero_gives_identical_predictions(name):
    model = ARCHITECTURES[name][0]()
    randomize_batchnorm(model)
    x = sample(model)
    new_model, report = prune_structured(model, ratio=0.0)
    assert new_model is not model
    assert new_model.count_params() == model.count_params()
    np.testing.assert_allclose(predict(new_model, x), predict(model, x), rtol=1e-6, atol=1e-6)


def test_dead_filters_are_the_ones_removed_and_predictions_stay_identical():
    model = models.residual_cnn()
    x = sample(model)
    dead = [1, 4, 6]
    for name in ("c1", "c2"):  # both branches of the residual sum write these channels
        layer = model.get_layer(name)
        kernel, bias = layer.get_weights()
        kernel[..., dead] = 0.0
        bias[dead] = 0.0
        layer.set_weights([kernel, bias])
    new_model, report = prune_structured(model, ratio={"c1": 3 / 8}, importance="l1")
    widths = {row.layer: (row.before, row.after) for row in report.layers}
    assert widths["c1"] == (8, 5) and widths["c2"] == (8, 5)
    assert widths["c3"] == (4, 4)
    survivors = [c for c in range(8) if c not in dead]
    np.testing.assert_array_equal(
        new_model.get_layer("c1").get_weights()[0],
        model.get_layer("c1").get_weights()[0][..., survivors],
    )
    np.testing.assert_allclose(predict(new_model, x), predict(model, x), rtol=1e-5, atol=1e-6)


def test_dead_dense_units_are_removed_with_their_consumer_rows():
    model = models.sequential_mlp()
    x = sample(model)
    kernel, bias = model.get_layer("h2").get_weights()
    kernel[:, [0, 5]] = 0.0
    bias[[0, 5]] = 0.0
    model.get_layer("h2").set_weights([kernel, bias])
    new_model, report = prune_structured(model, ratio={"h2": 0.25}, importance="l2")
    assert isinstance(new_model, keras.Sequential)
    assert new_model.get_layer("h2").units == 6
    assert new_model.get_layer("out").get_weights()[0].shape == (6, 2)
    np.testing.assert_allclose(predict(new_model, x), predict(model, x), rtol=1e-5, atol=1e-6)


def test_groups_couple_residual_branches_and_freeze_outputs():
    graph = DependencyGraph(models.residual_cnn())
    by_source = {tuple(sorted(layer.name for layer in g.sources)): g for g in graph.groups}
    residual = by_source[("c1", "c2")]
    assert residual.size == 8 and not residual.frozen
    assert {"bn1", "bn2", "dw", "c3"} <= {layer.name for layer in residual.layers}
    assert by_source[("out",)].frozen == ["reaches a model output"]


def test_concatenate_and_flatten_map_channels_to_dense_rows():
    model = models.residual_cnn()
    pruner = StructuredPruner(model, ratio={"c3": 0.5}, importance="l1")
    new_model, _ = pruner.apply()
    (group,) = [g for g in pruner.groups if len(g.remove)]
    removed = group.remove
    # concat = [dw: 16 channels, c3: 4 channels]; pooled 4x4 positions flattened.
    kernel = model.get_layer("d1").get_weights()[0].reshape(16, 20, 16)
    kept = [16 + c for c in range(4) if c not in removed]
    expected = kernel[:, list(range(16)) + kept].reshape(-1, 16)
    np.testing.assert_array_equal(new_model.get_layer("d1").get_weights()[0], expected)


def test_attention_heads_and_feed_forward_shrink():
    model = models.transformer(heads=4)
    new_model, report = prune_structured(model, ratio={"mha": 0.5, "ffn1": 0.25})
    attention = new_model.get_layer("mha")
    assert attention.num_heads == 2
    assert new_model.get_layer("ffn1").units == 24
    widths = {(r.layer, r.kind): (r.before, r.after) for r in report.layers}
    assert widths[("mha", "heads")] == (4, 2)


def test_grouped_query_attention_loses_whole_key_value_groups():
    model = models.grouped_attention()
    new_model, _ = prune_structured(model, ratio=0.5, verbose=0)
    gqa, mqa = new_model.get_layer("gqa"), new_model.get_layer("mqa")
    assert (gqa.num_query_heads, gqa.num_key_value_heads) == (2, 1)
    assert (mqa.num_query_heads, mqa.num_key_value_heads) == (2, 1)  # one shared k/v head
    assert new_model.get_layer("mha_out").get_config()["output_shape"] == (6,)
    assert new_model.count_params() < 0.6 * model.count_params()


def test_embedding_width_is_pruned_with_the_residual_stream():
    model = models.transformer()
    new_model, report = prune_structured(model, ratio={"embed": 0.25})
    assert new_model.get_layer("embed").output_dim == 12
    assert new_model.get_layer("ln1").get_weights()[0].shape == (12,)
    assert new_model.get_layer("mha").get_weights()[0].shape[0] == 12
    assert predict(new_model, sample(model)).shape == (4, 3)


def test_shared_layer_keeps_one_width_for_every_call():
    model = models.shared_dense()
    pruner = StructuredPruner(model, ratio=0.5)
    new_model, report = pruner.apply()
    assert new_model.get_layer("shared").units == 3
    assert new_model.get_layer("out").get_weights()[0].shape == (6, 2)


def test_nested_model_stays_nested_and_shrinks():
    model = models.nested()
    new_model, report = prune_structured(model, ratio=0.5)
    backbone = new_model.get_layer("backbone")
    assert isinstance(backbone, keras.Model)
    assert backbone.get_layer("b2").filters == 3
    assert new_model.get_layer("h").get_weights()[0].shape == (3, 2)


def test_round_to_keeps_multiples():
    model = models.residual_cnn()
    _, report = prune_structured(model, ratio=0.3, round_to=4)
    for row in report.layers:
        if row.kind == "filters" and row.before % 4 == 0:
            assert row.after % 4 == 0


def test_global_ranking_removes_the_overall_fraction_and_prunes_unevenly():
    model = models.residual_cnn()
    # Three of c3's four channels are far weaker than the rest of their group.
    kernel, bias = model.get_layer("c3").get_weights()
    kernel[..., :3] *= 1e-3
    bias[:3] = 0.0
    model.get_layer("c3").set_weights([kernel, bias])
    pruner = StructuredPruner(model, ratio=0.25, global_ranking=True)
    _, report = pruner.apply()
    prunable = [g for g in pruner.groups if not g.frozen]
    total = sum(g.size for g in prunable)
    assert sum(len(g.remove) for g in prunable) == int(total * 0.25)
    widths = {row.layer: row.after for row in report.layers}
    assert widths["c3"] == 1  # its weak channels rank lowest across the model


def test_ignore_and_interactive_skip_keep_channels():
    model = models.residual_cnn()
    _, report = prune_structured(model, ratio=0.5, ignore=["c3"])
    assert {r.layer: r.after for r in report.layers}["c3"] == 4
    assert any("ignore" in reason for _, _, reasons in report.frozen for reason in reasons)

    pruner = StructuredPruner(model, ratio=0.5)
    seen = []
    for group in pruner.interactive():
        seen.append(group.name)
        assert len(group.remove) == group.size // 2 and group.scores.shape == (group.size,)
        if "c1" in group.name:
            group.skip()
    _, report = pruner.apply()
    widths = {r.layer: r.after for r in report.layers}
    assert widths["c1"] == 8 and widths["d1"] == 8 and len(seen) == 3


def test_report_counts_params_and_flops():
    model = models.sequential_mlp()
    new_model, report = prune_structured(model, ratio=0.5)
    assert report.params_before == model.count_params()
    # Dense FLOPs: 2 * (10*12 + 12*8 + 8*2) before; h1 -> 6, h2 -> 4 after.
    assert report.flops_before == 2 * (10 * 12 + 12 * 8 + 8 * 2)
    assert report.flops_after == 2 * (10 * 6 + 6 * 4 + 4 * 2)
    text = str(report)
    assert "h1" in text and "params:" in text and "frozen: out" in text
    assert report.to_dict()["params_ratio"] == pytest.approx(report.params_ratio)


def test_unknown_layer_freezes_its_channels_with_a_reason():
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return x * 2

    inputs = keras.Input((4,))
    x = keras.layers.Dense(8, name="before")(inputs)
    x = Doubler(name="custom")(x)
    x = keras.layers.Dense(6, name="after")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(x))
    _, report = prune_structured(model, ratio=0.5)
    widths = {r.layer: r.after for r in report.layers}
    assert widths["before"] == 8 and widths["after"] == 3
    reasons = [reason for _, _, rs in report.frozen for reason in rs]
    assert any("custom" in r and "register_rule" in r for r in reasons)


def test_registered_rule_makes_a_custom_layer_prunable():
    from keras_prune.structured import rules

    @keras.saving.register_keras_serializable("tests")
    class Doubler2(keras.layers.Layer):
        def call(self, x):
            return x * 2

    keras_prune.structured.register_rule(Doubler2, rules.PASS)
    inputs = keras.Input((4,))
    x = Doubler2(name="custom")(keras.layers.Dense(8, name="before")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(x))
    new_model, report = prune_structured(model, ratio=0.5)
    assert new_model.get_layer("before").units == 4
    x = sample(model)
    assert predict(new_model, x).shape == (4, 2)
