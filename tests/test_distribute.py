"""tf.distribute.MirroredStrategy over two logical CPUs gives the masks of one device."""

import functools

import keras
import numpy as np
import pytest

if keras.backend.backend() != "tensorflow":
    pytest.skip("MirroredStrategy is TensorFlow-only", allow_module_level=True)

import tensorflow as tf  # noqa: E402

import keras_prune  # noqa: E402
from keras_prune.schedules import PolynomialDecay  # noqa: E402


def _two_cpus():
    # tests/conftest.py splits the CPU into two logical devices before TF starts.
    return [d.name for d in tf.config.list_logical_devices("CPU")][:2]


@functools.cache
def _strategy():
    """One MirroredStrategy for the whole module: two strategies in one process issue
    all-reduces with clashing collective keys ("Shape mismatch in the collective")."""
    return tf.distribute.MirroredStrategy(_two_cpus())


def _train(x, y, initial, helpers, strategy=None):
    scope = strategy.scope() if strategy else tf.device("/CPU:0")
    with scope:
        model = keras_prune.prune_low_magnitude(
            helpers.small_cnn(), PolynomialDecay(0.0, 0.8, 0, 12, frequency=4)
        )
        model.set_weights(initial + [w for w in model.get_weights()[len(initial):]])
        helpers.compile_model(model, optimizer=keras.optimizers.SGD(0.05))
    helpers.tiny_fit(model, x, y, epochs=2)
    return model


def test_mirrored_strategy_gives_the_same_masks_as_one_device(digits, helpers):
    devices = _two_cpus()
    assert len(devices) == 2
    x, y = digits
    base = helpers.small_cnn()
    initial = keras_prune.prune_low_magnitude(base).get_weights()
    single = _train(x, y, initial, helpers)
    mirrored = _train(x, y, initial, helpers, _strategy())
    for (_, a), (_, b) in zip(helpers.stored_and_masks(single), helpers.stored_and_masks(mirrored)):
        assert a.mean() == pytest.approx(0.2, abs=0.01)
        np.testing.assert_array_equal(a, b)


def test_structured_pruning_of_a_model_trained_under_a_strategy(digits, helpers):
    # Build and train under the strategy, prune inside its scope (the smaller model's
    # variables are mirrored too), fine-tune under it; and the callback variant.
    x, y = digits
    strategy = _strategy()
    with strategy.scope():
        model = helpers.compile_model(helpers.small_cnn())
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    with strategy.scope():
        smaller, report = keras_prune.structured.prune_structured(model, 0.5, verbose=0)
        helpers.compile_model(smaller)
    plain, _ = keras_prune.structured.prune_structured(model, 0.5, verbose=0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(smaller(x[:8])),
                               keras.ops.convert_to_numpy(plain(x[:8])), atol=1e-5)
    assert report.params_after < report.params_before
    assert "Mirrored" in type(smaller.trainable_weights[0].value).__name__
    history = smaller.fit(x, y, epochs=1, batch_size=64, verbose=0)
    assert np.isfinite(history.history["loss"][-1])

    with strategy.scope():
        model = helpers.compile_model(helpers.small_cnn())
    callback = keras_prune.structured.StructuredPruneCallback({1: 0.5})
    model.fit(x, y, epochs=2, batch_size=64, verbose=0, callbacks=[callback])
    assert callback.pruned_model.count_params() < model.count_params()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(callback.pruned_model(x[:8])),
                               keras.ops.convert_to_numpy(model(x[:8])), atol=1e-4)
