"""rewrite_for_xnnpack_sparse: stride-2 layers padded evenly, pooling that keeps its
dimensions; exact on odd sizes, the same shapes always, and tfmot's policy accepts it."""

import keras
import numpy as np
import pytest

import keras_prune

L = keras.layers


def mobilenet_style(size, uneven_pad=True):
    """Keras MobileNet's stride-2 idioms: a "same" stem, a `correct_pad` ZeroPadding2D
    before a "valid" depthwise layer, a "same" 5x5 depthwise layer, plain pooling."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 3))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(8, 3, strides=2, padding="same",
                                                 name="stem")(inputs)))
    pad = ((0, 1), (0, 1)) if uneven_pad and x.shape[1] % 2 == 0 else ((1, 1), (1, 1))
    x = L.DepthwiseConv2D(3, strides=2, name="dw3")(L.ZeroPadding2D(pad, name="pad")(x))
    x = L.Conv2D(16, 1, activation="relu", name="pw1")(x)
    x = L.DepthwiseConv2D(5, strides=2, padding="same", name="dw5")(x)
    x = L.Conv2D(16, 1, activation="relu", name="pw2")(x)
    return keras.Model(inputs, L.Dense(4, name="head")(L.GlobalAveragePooling2D(name="pool")(x)))


def _images(size):
    return np.random.default_rng(1).normal(size=(2, size, size, 3)).astype("float32")


def test_even_sizes_move_the_grid_and_the_policy_then_accepts_the_model(tmp_path):
    model = mobilenet_style(32)
    before = [w.copy() for w in model.get_weights()]
    new, report = keras_prune.rewrite_for_xnnpack_sparse(model)
    changed = {c.layer: c.exact for c in report.changes}
    assert changed == {"stem": False, "pad": False, "dw5": False,
                       "pool": True}
    assert not report.exact and "Rewrite before training" in str(report)
    x = _images(32)
    old_out, new_out = (keras.ops.convert_to_numpy(m(x)) for m in (model, new))
    assert old_out.shape == new_out.shape and np.max(np.abs(old_out - new_out)) > 1e-4
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    policy = keras_prune.PruneForLatencyOnXNNPack()
    with pytest.raises(ValueError, match="Could not find `Conv2D 3x3`"):
        keras_prune.prune_low_magnitude(model, pruning_policy=policy)
    pruned = keras_prune.prune_low_magnitude(new, pruning_policy=policy)
    assert len(pruned.layers) == len(new.layers)
    path = str(tmp_path / "rewritten.keras")
    new.save(path)
    again = keras.saving.load_model(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(again(x)), new_out, atol=1e-6)


def test_odd_sizes_are_exact_and_a_sequential_model_is_rewritten_too():
    model = mobilenet_style(33)  # TF "same" at stride 2 pads 33 evenly
    new, report = keras_prune.rewrite_for_xnnpack_sparse(model)
    assert report.exact and "pad" not in {c.layer for c in report.changes}
    x = _images(33)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(new(x)),
                               keras.ops.convert_to_numpy(model(x)), rtol=1e-5, atol=1e-5)
    sequential = keras.Sequential([keras.Input((9, 9, 3)),
                                   L.Conv2D(4, 3, strides=2, padding="same", name="stem"),
                                   L.GlobalAveragePooling2D(), L.Dense(2)])
    new, report = keras_prune.rewrite_for_xnnpack_sparse(sequential)
    assert [type(layer).__name__ for layer in new.layers] == [
        "ZeroPadding2D", "Conv2D", "GlobalAveragePooling2D", "Flatten", "Dense"]
    x = _images(9)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(new(x)),
                               keras.ops.convert_to_numpy(sequential(x)), rtol=1e-5, atol=1e-5)


def test_a_fixed_uneven_padding_that_would_change_a_size_is_left_alone():
    inputs = keras.Input((15, 15, 3))  # (0, 1) then 3x3 "valid" stride 2: 8 -> 7; (1, 1): 8
    x = L.DepthwiseConv2D(3, strides=2)(L.ZeroPadding2D(((0, 1), (0, 1)), name="pad")(
        L.Conv2D(3, 1)(inputs)))
    _, report = keras_prune.rewrite_for_xnnpack_sparse(keras.Model(inputs, x))
    assert "pad" not in {c.layer for c in report.changes}


def test_a_subclassed_model_is_refused_by_name():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = L.Conv2D(4, 3, strides=2, padding="same")

        def call(self, x):
            return self.conv(x)

    net = Net()
    net(np.zeros((1, 8, 8, 3), "float32"))
    with pytest.raises(ValueError, match="`model` must be a Functional or Sequential"):
        keras_prune.rewrite_for_xnnpack_sparse(net)
