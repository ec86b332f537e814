"""prune_one_shot: SparseGPT, Wanda and magnitude from calibration data, no retraining."""

import keras
import numpy as np
import pytest

import keras_prune
from keras_prune._views.kernels import view_of
from keras_prune.oneshot import solvers

L = keras.layers


def _numpy(value):
    return np.asarray(keras.ops.convert_to_numpy(value))


def unequal_scales(n=512, features=32, seed=0):
    """Inputs whose features differ in scale by orders of magnitude (LLM-like outliers)."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, features)) * np.exp(rng.normal(size=features) * 1.5)).astype(
        "float32")


def one_layer(features=32, units=16):
    return keras.Sequential([keras.Input((features,)), L.Dense(units, use_bias=False,
                                                               name="dense")])


def mlp():
    return keras.Sequential([keras.Input((32,)), L.Dense(48, activation="relu", name="d1"),
                             L.Dense(24, activation="relu", name="d2"), L.Dense(5, name="out")])


def _kernel(model, name):
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if layer.name == name and hasattr(layer, "kernel"):
            return _numpy(layer.kernel)
    raise KeyError(name)


def reconstruction_error(model, pruned, x):
    dense, sparse = _numpy(model(x)), _numpy(pruned(x))
    return float(((dense - sparse) ** 2).sum() / (dense ** 2).sum())


def test_sparsegpt_reconstructs_a_layer_better_than_magnitude():
    model, x = one_layer(), unequal_scales()
    errors = {}
    for method in ("magnitude", "wanda", "sparsegpt"):
        pruned, report = keras_prune.prune_one_shot(model, x, 0.5, method=method, verbose=0)
        errors[method] = reconstruction_error(model, pruned, x)
        assert report.layers[0].error == pytest.approx(errors[method], rel=1e-2, abs=1e-6)
        assert report.sparsity == pytest.approx(0.5)
    assert errors["sparsegpt"] < errors["magnitude"] / 3
    assert errors["wanda"] < errors["magnitude"] / 3


def test_patterns_are_exact_and_the_input_model_is_unchanged():
    model, x = mlp(), unequal_scales()
    before = [w.copy() for w in model.get_weights()]
    two_four, _ = keras_prune.prune_one_shot(model, x, method="sparsegpt",
                                             sparsity_m_by_n=(2, 4), verbose=0)
    blocks, _ = keras_prune.prune_one_shot(model, x, 0.5, method="sparsegpt",
                                           block_size=(4, 1), verbose=0)
    for name in ("d1", "d2", "out"):
        kernel = _kernel(two_four, name)  # (in, out): every 4 inputs of an output, 2 zeros
        zeros = (kernel == 0).reshape(-1, 4, kernel.shape[1]).sum(axis=1)
        assert np.all(zeros == 2)
        kernel = _kernel(blocks, name)  # runs of 4 inputs zero together
        runs = (kernel == 0).reshape(-1, 4, kernel.shape[1])
        assert np.all(runs.all(axis=1) | ~runs.any(axis=1))
        assert (kernel == 0).mean() == pytest.approx(0.5, abs=0.02)
    for old, now in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, now)


def test_layers_are_pruned_in_sequence_from_the_pruned_layers_before_them():
    model, x = mlp(), unequal_scales()
    pruned, _ = keras_prune.prune_one_shot(model, x, 0.6, method="sparsegpt", verbose=0)
    stripped = keras_prune.strip_pruning(pruned)
    first = stripped.get_layer("d1")
    hidden_pruned = _numpy(first(x))
    hidden_dense = _numpy(model.get_layer("d1")(x))
    second = model.get_layer("d2")
    kernel = _numpy(second.kernel).T

    def solve(hidden):
        rows = hidden.astype(np.float64)
        return solvers.sparsegpt(kernel, rows.T @ rows, 0.6)[0].T

    np.testing.assert_allclose(_kernel(pruned, "d2"), solve(hidden_pruned), atol=1e-5)
    assert np.abs(_kernel(pruned, "d2") - solve(hidden_dense)).max() > 1e-3


def test_sparsegpt_options_reach_the_solver():
    model, x = one_layer(), unequal_scales()
    kernel = _numpy(model.get_layer("dense").kernel).T.astype(np.float64)
    rows = x.astype(np.float64)
    for options in ({"blocksize": 8}, {"percdamp": 0.5}):
        pruned, _ = keras_prune.prune_one_shot(model, x, 0.5, verbose=0, **options)
        expected = solvers.sparsegpt(kernel, rows.T @ rows, 0.5, **options)[0].T
        np.testing.assert_allclose(_kernel(pruned, "dense"), expected, atol=1e-5)
        default = solvers.sparsegpt(kernel, rows.T @ rows, 0.5)[0].T
        assert np.abs(expected - default).max() > 1e-4  # the option changes the result
    with pytest.raises(ValueError, match="`percdamp`"):
        keras_prune.prune_one_shot(model, x, percdamp=-1.0)


def test_result_keeps_fixed_masks_through_fine_tuning():
    model, x = mlp(), unequal_scales(256)
    pruned, _ = keras_prune.prune_one_shot(model, x, 0.7, verbose=0)
    zeros = _kernel(pruned, "d1") == 0
    pruned.compile("adam", "mse")
    pruned.fit(x, np.ones((256, 5)), epochs=1, verbose=0,
               callbacks=[keras_prune.callbacks.PruneCallback()])
    np.testing.assert_array_equal(_kernel(pruned, "d1") == 0, zeros)


def test_convolution_rows_are_the_patches_it_multiplies():
    rng = np.random.default_rng(1)
    for layer, shape in ((L.Conv2D(5, 3, strides=2, padding="same", use_bias=False), (9, 9, 3)),
                         (L.Conv2D(4, (2, 3), padding="valid", use_bias=False), (6, 7, 2)),
                         (L.Conv1D(4, 3, padding="causal", use_bias=False), (10, 3))):
        x = rng.normal(size=(2, *shape)).astype("float32")
        y = _numpy(layer(x))
        view, _ = view_of(layer)
        product = view.rows(x) @ view.to_matrix(_numpy(layer.kernel)).T
        np.testing.assert_allclose(product, y.reshape(-1, y.shape[-1]), atol=1e-4)


def test_einsum_dense_rows_and_matrix_multiply_to_its_output():
    rng = np.random.default_rng(2)
    for equation, output_shape, shape in (("abc,cde->abde", (None, 4, 3), (5, 6)),
                                          ("abcd,cde->abe", (None, 6), (5, 4, 3))):
        layer = L.EinsumDense(equation, output_shape=output_shape)
        x = rng.normal(size=(2, *shape)).astype("float32")
        y = _numpy(layer(x))
        view, _ = view_of(layer)
        kernel = _numpy(layer.kernel)
        matrix = view.to_matrix(kernel)
        np.testing.assert_array_equal(view.from_matrix(matrix, kernel.shape), kernel)
        product = view.rows(x) @ matrix.T
        np.testing.assert_allclose(product.reshape(-1), y.reshape(-1), atol=1e-4)


def test_owl_spreads_layer_sparsity_around_the_target():
    model, x = mlp(), unequal_scales()
    pruned, report = keras_prune.prune_one_shot(model, x, 0.7, method="wanda",
                                                layer_sparsity="owl", verbose=0)
    sparsities = [row.sparsity for row in report.layers]  # one group per layer here
    assert 0.12 < max(sparsities) - min(sparsities) < 0.2  # 2 x lambda, per-row rounding
    assert report.sparsity == pytest.approx(0.7, abs=0.01)  # share of all pruned weights
    wide = keras.Sequential([keras.Input((32,)), L.Dense(256, activation="relu"),
                             L.Dense(256, activation="relu"), L.Dense(10)])
    _, report = keras_prune.prune_one_shot(wide, x, 0.7, method="wanda", layer_sparsity="owl",
                                           verbose=0)
    assert report.sparsity == pytest.approx(0.7, abs=0.01)  # was 0.634: a mean over layers


def test_calibration_from_a_tf_data_dataset():
    tf = pytest.importorskip("tensorflow")
    model, x = one_layer(), unequal_scales(128)
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(32)
    from_dataset, _ = keras_prune.prune_one_shot(model, dataset, 0.5, verbose=0)
    from_arrays, _ = keras_prune.prune_one_shot(model, x, 0.5, batch_size=32, verbose=0)
    np.testing.assert_allclose(_kernel(from_dataset, "dense"), _kernel(from_arrays, "dense"),
                               atol=1e-5)


def test_keras_hub_causal_lm_is_pruned_block_by_block_and_stays_its_class():
    keras_hub = pytest.importorskip("keras_hub")
    backbone = keras_hub.models.GPT2Backbone(vocabulary_size=50, num_layers=2, num_heads=2,
                                             hidden_dim=16, intermediate_dim=32,
                                             max_sequence_length=8)
    lm = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
    rng = np.random.default_rng(0)
    x = {"token_ids": rng.integers(1, 50, size=(16, 8)).astype("int32"),
         "padding_mask": np.ones((16, 8), dtype=bool)}
    pruned, report = keras_prune.prune_one_shot(lm, x, 0.5, verbose=0)
    names = {row.layer for row in report.layers}
    assert {"query", "attention_output", "feedforward_intermediate_dense"} <= names
    assert all(row.sparsity == pytest.approx(0.5, abs=0.01) for row in report.layers)
    final = keras_prune.strip_pruning(pruned)
    assert type(final) is keras_hub.models.GPT2CausalLM
    kernel = _numpy(final.backbone.transformer_layers[0]._feedforward_output_dense.kernel)
    assert (kernel == 0).mean() == pytest.approx(0.5, abs=0.01)
    generated = final.generate(x, max_length=8, stop_token_ids=None)
    assert keras.ops.convert_to_numpy(generated["token_ids"]).shape == (16, 8)


def test_bad_arguments_name_the_argument():
    model, x = one_layer(), unequal_scales(64)
    with pytest.raises(ValueError, match="`data` is required"):
        keras_prune.prune_one_shot(model, None)
    with pytest.raises(ValueError, match="sparsity"):
        keras_prune.prune_one_shot(model, x, 1.0)
    with pytest.raises(ValueError, match="m must be smaller than n"):
        keras_prune.prune_one_shot(model, x, sparsity_m_by_n=(4, 4))
    with pytest.raises(ValueError, match="`method`"):
        keras_prune.prune_one_shot(model, x, method="obs")
    pruned, report = keras_prune.prune_one_shot(model, x, block_size=5, verbose=0)
    assert report.layers == [] and "do not split into blocks of 5" in report.skipped[0][1]
    assert (_kernel(pruned, "dense") != 0).all()


def test_silent_no_ops_and_garbage_are_refused_or_reported():
    x = unequal_scales(64)
    with pytest.raises(ValueError, match="not built"):
        keras_prune.prune_one_shot(keras.Sequential([L.Dense(4)]), x)
    bad = x.copy()
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        keras_prune.prune_one_shot(mlp(), bad, verbose=0)
    with pytest.warns(UserWarning, match="reads 32 input features but the calibration data "
                                         "gave it 16 rows.*at least 32"):
        keras_prune.prune_one_shot(mlp(), x[:16], verbose=0)


def test_a_layer_the_model_never_calls_is_skipped_and_reported():
    @keras.saving.register_keras_serializable(package="tests")
    class WithSpare(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.used = L.Dense(8, name="used")
            self.spare = L.Dense(8, name="spare")

        def build(self, input_shape):
            self.used.build(input_shape)
            self.spare.build(input_shape)

        def call(self, x):
            return self.used(x)

    inputs = keras.Input((32,))
    model = keras.Model(inputs, L.Dense(4, name="out")(WithSpare(name="block")(inputs)))
    pruned, report = keras_prune.prune_one_shot(model, unequal_scales(64), verbose=0)
    assert {row.layer for row in report.layers} >= {"used", "out"}
    assert any(name == "spare" and "never called" in why for name, why in report.skipped)


def test_layers_no_solver_handles_are_not_wrapped_but_reported():
    # An embedding (a large one in a language model) gets no mask and no masked copy
    # in every calibration pass; the report still names it, with why.
    tokens = keras.Input((6,), dtype="int32")
    hidden = L.Embedding(50, 16, name="embed")(tokens)
    outputs = L.Dense(4, name="head")(L.Dense(16, name="mix")(hidden))
    model = keras.Model(tokens, outputs)
    x = np.random.default_rng(0).integers(0, 50, size=(64, 6)).astype("int32")
    pruned, report = keras_prune.prune_one_shot(model, x, 0.5, verbose=0)
    wrapped = {w.layer.name for w in keras_prune.layers.collect_wrappers(pruned)}
    assert wrapped == {"mix", "head"}
    assert ("embed", "Embedding (one-shot pruning covers Dense, EinsumDense, Conv1D/2D)") in \
        report.skipped
    with pytest.raises(ValueError):  # an explicit name of nothing prunable still errors
        keras_prune.prune_one_shot(model, x, 0.5, filters=["missing"], verbose=0)
