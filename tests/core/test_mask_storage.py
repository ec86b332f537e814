"""Boolean masks: exact zeros after every optimizer step, zero optimizer slots, small
.keras files, and older files (float masks) still load."""

from pathlib import Path

import keras
import numpy as np
import pytest

import keras_prune
from keras_prune.layers import collect_wrappers
from keras_prune.masking.groups import optimizer_slots
from keras_prune.schedules import PolynomialDecay


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _pruned(helpers, seed=4):
    keras.utils.set_random_seed(seed)
    model = keras_prune.prune_low_magnitude(
        helpers.small_cnn(), PolynomialDecay(0.0, 0.8, begin_step=0, end_step=12, frequency=3)
    )
    helpers.compile_model(model, optimizer=keras.optimizers.Adam(1e-2))
    return model


class _ZerosAfterEveryStep(keras.callbacks.Callback):
    """Records, after each batch, whether every masked-out weight is exactly zero."""

    def __init__(self):
        super().__init__()
        self.exact = []

    def on_train_batch_end(self, batch, logs=None):
        self.exact.append(all(
            not np.any(_np(weight)[~_np(mask)])
            for wrapper in collect_wrappers(self.model)
            for weight, mask in zip(wrapper.prunable_weights, wrapper.masks)
        ))


def test_masks_are_boolean_and_pruned_weights_are_zero_after_every_step(digits, helpers):
    x, y = digits
    model = _pruned(helpers)
    check = _ZerosAfterEveryStep()
    helpers.tiny_fit(model, x, y, epochs=2, callbacks=[check])
    assert len(check.exact) == 16 and all(check.exact)
    masks = helpers.masks_of(model)
    assert all(mask.dtype == np.bool_ for mask in masks)
    assert 1 - np.mean(np.concatenate([m.ravel() for m in masks])) == pytest.approx(0.8, abs=0.01)
    # Optimizer slots (Adam's moments) of pruned weights are zero after fit.
    for wrapper in collect_wrappers(model):
        for weight, mask in zip(wrapper.prunable_weights, wrapper.masks):
            slots = optimizer_slots(model.optimizer, weight)
            assert len(slots) == 2
            assert all(not np.any(_np(slot)[~_np(mask)]) for slot in slots)


def test_boolean_masks_round_trip_through_keras_files_and_keep_them_small(tmp_path):
    layer = keras.layers.Dense(256, use_bias=False)
    model = keras.Sequential([keras.Input((512,)), layer])
    pruned = keras_prune.prune_low_magnitude(model)
    mask = np.random.default_rng(0).random((512, 256)) < 0.3
    keras_prune.set_masks(pruned, {f"{layer.name}/kernel": mask})
    model.save(tmp_path / "dense.keras")
    pruned.save(tmp_path / "pruned.keras")
    loaded = keras.saving.load_model(tmp_path / "pruned.keras")
    (restored,) = keras_prune.get_masks(loaded).values()
    assert restored.dtype == np.bool_
    np.testing.assert_array_equal(restored, mask)
    ratio = (tmp_path / "pruned.keras").stat().st_size / (tmp_path / "dense.keras").stat().st_size
    assert ratio < 1.3  # a float mask made it ~2x: one byte per weight now


def test_a_wrapped_model_saved_with_float_masks_still_loads():
    # Written by keras_prune before masks were boolean: float masks, and every pruned
    # weight stored twice (also under the wrapper).
    data = Path(__file__).parents[1] / "data"
    model = keras.saving.load_model(data / "wrapped_float_masks.keras")
    wrappers = collect_wrappers(model)
    assert [w.masks[0].dtype for w in wrappers] == ["bool", "bool"]
    assert all(_np(w.masks[0]).mean() == 0.5 for w in wrappers)
    outputs = _np(model(np.ones((2, 6), "float32")))
    np.testing.assert_allclose(outputs, np.load(data / "wrapped_float_masks_output.npy"), atol=1e-6)
