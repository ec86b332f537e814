"""Trained, 80%-pruned digits models shared by the TFLite tests (trained once per module)."""

import keras
import numpy as np
import pytest

import keras_prune
import keras_prune.tflite


def _digits():
    from keras_prune.demo import load_digits_arrays

    return load_digits_arrays()


def train_pruned(block_size=(1, 1), sparsity=0.8, epochs=4):
    keras.utils.set_random_seed(3)
    x, y = _digits()
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(16, 3, activation="relu", name="conv"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(64, activation="relu", name="hidden"),
            keras.layers.Dense(10, name="logits"),
        ]
    )
    schedule = keras_prune.schedules.ConstantSparsity(sparsity, begin_step=0, frequency=5)
    pruned = keras_prune.prune_low_magnitude(model, pruning_schedule=schedule, block_size=block_size)
    pruned.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    pruned.fit(x[:1400], y[:1400], epochs=epochs, batch_size=32, verbose=0,
               callbacks=[keras_prune.callbacks.PruneCallback()])
    return pruned


@pytest.fixture(scope="session")
def digits_split():
    x, y = _digits()
    return (x[:1400], y[:1400]), (x[1400:], y[1400:])


@pytest.fixture(scope="session")
def pruned_model():
    return train_pruned()


@pytest.fixture(scope="session")
def int8_block_model():
    return train_pruned(block_size=keras_prune.tflite.BLOCK_INT8)


@pytest.fixture(scope="session")
def float_block_model():
    return train_pruned(block_size=keras_prune.tflite.BLOCK_FLOAT)


def keras_accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0), -1) == y))
