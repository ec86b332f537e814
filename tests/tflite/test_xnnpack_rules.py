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
