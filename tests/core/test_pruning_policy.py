"""tfmot's PruneForLatencyOnXNNPack: only 1x1 convolutions are pruned, and the model's
structure is checked with tfmot's errors."""

import keras
import pytest

import keras_prune
from keras_prune.layers import collect_wrappers

L = keras.layers


def xnnpack_model(stem_padding="valid", keepdims=True, middle=None):
    inputs = keras.Input((16, 16, 3))
    x = L.ZeroPadding2D(((1, 1), (1, 1)))(inputs) if stem_padding == "valid" else inputs
    x = L.Conv2D(8, 3, strides=2, padding=stem_padding, name="stem")(x)
    x = L.ReLU()(L.BatchNormalization()(x))
    y = L.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    y = L.Conv2D(8, 1, name="pointwise")(L.ReLU(6.0)(y))
    x = L.Add()([x, y])
    if middle is not None:
        x = middle(x)
    x = L.Conv2D(16, 1, name="expand")(x)
    x = L.GlobalAveragePooling2D(keepdims=keepdims)(x)
    outputs = L.Dense(4, name="head")(L.Flatten()(x) if keepdims else x)
    return keras.Model(inputs, outputs)


def test_only_1x1_convolutions_are_wrapped():
    policy = keras_prune.PruneForLatencyOnXNNPack()
    pruned = keras_prune.prune_low_magnitude(xnnpack_model(), pruning_policy=policy)
    assert sorted(w.layer.name for w in collect_wrappers(pruned)) == ["expand", "pointwise"]
    tfmot_name = keras_prune.sparsity.keras.PruneForLatencyOnXNNPack
    assert tfmot_name is keras_prune.PruneForLatencyOnXNNPack


@pytest.mark.parametrize("model, message", [
    (lambda: xnnpack_model(stem_padding="same"), "Could not find `Conv2D 3x3` layer with stride"),
    (lambda: xnnpack_model(keepdims=False), "Could not find a `GlobalAveragePooling2D` layer"),
    (lambda: xnnpack_model(middle=L.MaxPooling2D(1)),
     "Layer MaxPooling2D is not supported for the PruneForLatencyOnXNNPack pruning policy"),
])
def test_unsupported_structures_raise_tfmots_errors(model, message):
    with pytest.raises(ValueError, match=message):
        keras_prune.prune_low_magnitude(model(),
                                        pruning_policy=keras_prune.PruneForLatencyOnXNNPack())


def test_a_policy_must_be_a_pruning_policy():
    with pytest.raises(TypeError, match="`pruning_policy` must be a keras_prune.PruningPolicy"):
        keras_prune.prune_low_magnitude(xnnpack_model(), pruning_policy="xnnpack")
