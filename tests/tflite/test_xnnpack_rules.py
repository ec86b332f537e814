"""tflite.inspect's XNNPACK sparse-inference rules read the ops, not their names."""

import keras
import pytest

from keras_prune import tflite

pytest.importorskip("tensorflow")

RULE = "ends with MEAN (global average pooling)"


def test_global_average_pooling_counts_and_layer_normalization_means_do_not():
    inputs = keras.Input((16,))
    h = keras.layers.LayerNormalization()(keras.layers.Dense(32, activation="relu")(inputs))
    mlp = keras.Model(inputs, keras.layers.Dense(4)(h))
    met, detail = tflite.inspect(tflite.convert(mlp, None, verbose=0).content).xnnpack_sparse[RULE]
    assert met is False and "LayerNormalization" in detail

    images = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(8, 1)(images)
    cnn = keras.Model(images, keras.layers.GlobalAveragePooling2D()(h))
    met, detail = tflite.inspect(tflite.convert(cnn, None, verbose=0).content).xnnpack_sparse[RULE]
    assert met is True and "height and width" in detail


def test_a_rewritten_mobilenet_style_model_pruned_by_tfmots_policy_meets_every_rule():
    import numpy as np

    import keras_prune
    from tests.core.test_xnnpack_layout import mobilenet_style

    model = mobilenet_style(32)
    stride_rule = "stride-2 convolutions padded kernel // 2 on every side"
    met, detail = tflite.inspect(tflite.convert(model, None, verbose=0).content,
                                 check_loading=False).xnnpack_sparse[stride_rule]
    assert met is False and "SAME" in detail and "rewrite_for_xnnpack_sparse" in detail
    new, _ = keras_prune.rewrite_for_xnnpack_sparse(model)
    pruned = keras_prune.prune_low_magnitude(
        new, pruning_policy=keras_prune.PruneForLatencyOnXNNPack(),
        pruning_schedule=keras_prune.schedules.ConstantSparsity(0.8, 0, frequency=1))
    pruned.compile("sgd", "mse")
    x = np.random.default_rng(0).normal(size=(8, 32, 32, 3)).astype("float32")
    pruned.fit(x, np.zeros((8, 4), "float32"), epochs=1, verbose=0,
               callbacks=[keras_prune.callbacks.UpdatePruningStep()])
    inspection = tflite.inspect(tflite.convert(keras_prune.strip_pruning(pruned), None,
                                               verbose=0).content)
    assert inspection.xnnpack_sparse[stride_rule] == (True, "3/3 padded evenly (PAD + VALID)")
    assert inspection.meets_xnnpack_sparse_rules, inspection.xnnpack_sparse
