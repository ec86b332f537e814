"""Iterative pruning during fit, BatchNorm re-estimation, one-shot + fine-tune."""

import keras
import numpy as np
import pytest

from keras_prune.structured import (
    StructuredPruneCallback,
    prune_and_finetune,
    update_batchnorm_statistics,
)

L = keras.layers


def cnn(compile=True):
    inputs = keras.Input((8, 8, 1))
    x = L.Conv2D(8, 3, padding="same", name="c1")(inputs)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.ReLU()(x)
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="c2")(x)
    x = L.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, L.Dense(3, name="out")(x))
    if compile:
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
    return model


def toy_data(n=96):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 8, 8, 1)).astype("float32")
    y = (x.mean(axis=(1, 2, 3)) > 0).astype("int32") + (x[:, 0, 0, 0] > 1).astype("int32")
    return x, y


def test_callback_removes_channels_at_the_chosen_epochs_and_returns_the_smaller_model():
    model = cnn()
    x, y = toy_data()
    seen = {}

    class Widths(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            kernel = keras.ops.convert_to_numpy(model.get_layer("c1").kernel)
            seen[epoch] = int((np.abs(kernel).reshape(-1, 8).sum(0) > 0).sum())

    callback = StructuredPruneCallback({1: 0.25, 2: 0.5})
    model.fit(x, y, epochs=4, batch_size=16, verbose=0, callbacks=[callback, Widths()])
    assert seen == {0: 8, 1: 6, 2: 4, 3: 4}  # silenced channels stay silenced while training
    pruned = callback.pruned_model
    assert pruned.get_layer("c1").filters == 4 and pruned.get_layer("c2").filters == 4
    np.testing.assert_allclose(pruned.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-5)
    assert callback.report.params_after == pruned.count_params()


@pytest.mark.parametrize("schedule", [{1: 0.5, 2: 0.25}, {1: 1.0}, [0.5], {-1: 0.5}])
def test_callback_rejects_bad_schedules(schedule):
    with pytest.raises((ValueError, TypeError), match="schedule"):
        StructuredPruneCallback(schedule)


def test_update_batchnorm_statistics_matches_the_data():
    model = cnn()
    x, _ = toy_data()
    x = x * 3.0 + 2.0
    assert update_batchnorm_statistics(model, x, batch_size=32) == 1
    bn = model.get_layer("bn1")
    features = keras.Model(model.input, model.get_layer("c1").output)(x)
    features = keras.ops.convert_to_numpy(features)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_mean),
                               features.mean(axis=(0, 1, 2)), rtol=1e-3, atol=1e-4)
    assert bn.momentum == 0.99  # restored


def test_prune_and_finetune_trains_the_smaller_copy_and_leaves_the_input_alone():
    model = cnn()
    x, y = toy_data()
    model.fit(x, y, epochs=1, verbose=0)
    before = [w.copy() for w in model.get_weights()]
    pruned, report, history = prune_and_finetune(model, x, y, ratio=0.5, epochs=2)
    assert pruned.get_layer("c1").filters == 4
    assert len(history.history["loss"]) == 2 and "accuracy" in history.history
    assert report.params_after < report.params_before
    for old, now in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, now)


def test_prune_and_finetune_needs_a_compiled_model():
    with pytest.raises(ValueError, match="must be compiled"):
        prune_and_finetune(cnn(compile=False), *toy_data(), ratio=0.5)
