"""Shared helpers: tiny data and models, config and .keras round trips, a tiny fit."""

import os

import keras
import numpy as np
import pytest

if keras.backend.backend() == "tensorflow":
    # Two logical CPUs for the MirroredStrategy test: must be set before TF initializes.
    import tensorflow as tf

    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )

import keras_prune  # noqa: E402


def pytest_report_header(config):
    return f"keras backend: {keras.backend.backend()}"


@pytest.fixture(autouse=True)
def _seed_and_reset():
    keras.utils.set_random_seed(1)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def digits():
    from keras_prune.demo import load_digits_arrays

    x, y = load_digits_arrays()
    return x[:512], y[:512]


def small_cnn(num_classes=10):
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(8, 3, activation="relu", name="conv2d"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(16, activation="relu", name="dense"),
            keras.layers.Dense(num_classes, name="dense_1"),
        ]
    )


def compile_model(model, optimizer="adam", **kwargs):
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        **kwargs,
    )
    return model


def tiny_fit(model, x, y, epochs=2, batch_size=64, callbacks=(), **kwargs):
    return model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        shuffle=False,
        verbose=0,
        callbacks=[keras_prune.callbacks.PruneCallback(), *callbacks],
        **kwargs,
    )


def config_round_trip(obj):
    """from_config(get_config()) gives an equal config."""
    config = obj.get_config()
    restored = type(obj).from_config(config)
    assert restored.get_config() == config
    return restored


def keras_round_trip(model, tmp_path, name="model.keras"):
    path = os.path.join(tmp_path, name)
    model.save(path)
    return keras.saving.load_model(path)


def effective_kernels(model):
    """weight * mask for every pruned weight, as numpy arrays."""
    out = []
    for wrapper in keras_prune.layers.collect_wrappers(model):
        for weight, mask in zip(wrapper.prunable_weights, wrapper.masks):
            out.append(keras.ops.convert_to_numpy(weight) * keras.ops.convert_to_numpy(mask))
    return out


def masks_of(model):
    return [
        keras.ops.convert_to_numpy(mask)
        for wrapper in keras_prune.layers.collect_wrappers(model)
        for mask in wrapper.masks
    ]


def stored_and_masks(model):
    return [
        (keras.ops.convert_to_numpy(w), keras.ops.convert_to_numpy(m))
        for wrapper in keras_prune.layers.collect_wrappers(model)
        for w, m in zip(wrapper.prunable_weights, wrapper.masks)
    ]


@pytest.fixture
def helpers():
    import types

    return types.SimpleNamespace(
        small_cnn=small_cnn,
        compile_model=compile_model,
        tiny_fit=tiny_fit,
        config_round_trip=config_round_trip,
        keras_round_trip=keras_round_trip,
        effective_kernels=effective_kernels,
        masks_of=masks_of,
        stored_and_masks=stored_and_masks,
    )


np.set_printoptions(precision=4)
