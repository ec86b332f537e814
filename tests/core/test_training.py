import keras
import numpy as np
import pytest

import keras_prune
from keras_prune.callbacks import PruneCallback
from keras_prune.masking.magnitude import num_kept
from keras_prune.schedules import ConstantSparsity, PolynomialDecay


def _schedule(end_step=16, final=0.8):
    return PolynomialDecay(0.0, final, begin_step=0, end_step=end_step, frequency=4)


def _assert_scheduled_sparsity(model, sparsity, helpers):
    for weight, mask in helpers.stored_and_masks(model):
        assert int(mask.sum()) == num_kept(mask.size, sparsity)
        assert np.all(weight[mask == 0] == 0.0)


def test_fit_reaches_scheduled_sparsity_and_pruned_weights_stay_zero(digits, helpers):
    x, y = digits
    model = keras_prune.prune_low_magnitude(helpers.small_cnn(), _schedule())
    helpers.compile_model(model, optimizer=keras.optimizers.Adam(0.01))
    history = helpers.tiny_fit(model, x, y, epochs=3)  # 8 steps per epoch, end_step 16
    assert history.history["sparsity"][-1] == pytest.approx(0.8, abs=0.01)
    _assert_scheduled_sparsity(model, 0.8, helpers)
    masks_before = helpers.masks_of(model)
    helpers.tiny_fit(model, x, y, epochs=2)  # past end_step: masks frozen, zeros stay zero
    for before, after in zip(masks_before, helpers.masks_of(model)):
        np.testing.assert_array_equal(before, after)
    _assert_scheduled_sparsity(model, 0.8, helpers)
    stripped = keras_prune.strip_pruning(model)
    np.testing.assert_array_equal(stripped.predict(x, verbose=0), model.predict(x, verbose=0))


def test_momentum_cannot_revive_pruned_weights(digits, helpers):
    x, y = digits
    model = keras_prune.prune_low_magnitude(helpers.small_cnn(), ConstantSparsity(0.9, 8, frequency=1000))
    helpers.compile_model(model, optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    helpers.tiny_fit(model, x, y, epochs=3)
    _assert_scheduled_sparsity(model, 0.9, helpers)


@pytest.mark.parametrize("steps_per_execution", [1, 3])
def test_steps_per_execution_counts_every_step(digits, helpers, steps_per_execution):
    if keras.backend.backend() == "torch" and steps_per_execution > 1:
        pytest.skip("Keras itself requires steps_per_execution=1 with the torch backend")
    x, y = digits
    model = keras_prune.prune_low_magnitude(helpers.small_cnn(), _schedule())
    helpers.compile_model(model, steps_per_execution=steps_per_execution)
    callback = PruneCallback()
    model.fit(x, y, epochs=3, batch_size=64, verbose=0, shuffle=False, callbacks=[callback])
    assert callback.step == 24
    _assert_scheduled_sparsity(model, 0.8, helpers)
    wrapper = keras_prune.layers.collect_wrappers(model)[0]
    assert int(keras.ops.convert_to_numpy(wrapper.pruning_step)) == 24


@pytest.mark.parametrize("jit_compile", [True, False])
def test_jit_compile_on_and_off(digits, helpers, jit_compile):
    if jit_compile and keras.backend.backend() == "torch":
        pytest.skip("jit_compile=True means torch.compile on the torch backend (not supported)")
    x, y = digits
    model = keras_prune.prune_low_magnitude(helpers.small_cnn(), _schedule())
    helpers.compile_model(model, jit_compile=jit_compile)
    helpers.tiny_fit(model, x, y, epochs=3)
    _assert_scheduled_sparsity(model, 0.8, helpers)


def test_mixed_float16_policy(digits, helpers):
    x, y = digits
    keras.config.set_dtype_policy("mixed_float16")
    model = keras_prune.prune_low_magnitude(helpers.small_cnn(), _schedule())
    helpers.compile_model(model)
    history = helpers.tiny_fit(model, x, y, epochs=3)
    assert np.isfinite(history.history["loss"][-1])
    _assert_scheduled_sparsity(model, 0.8, helpers)
    wrapper = keras_prune.layers.collect_wrappers(model)[0]
    assert wrapper.masks[0].dtype == "bool"  # masks are one byte per weight under any policy


def test_custom_training_loop_with_callback_hooks(digits, helpers):
    x, y = digits
    model = keras_prune.prune_low_magnitude(helpers.small_cnn(), _schedule(end_step=12))
    helpers.compile_model(model)
    callback = PruneCallback()
    callback.set_model(model)
    callback.on_train_begin()
    for step in range(16):
        batch = slice((step % 8) * 64, (step % 8 + 1) * 64)
        callback.on_train_batch_begin(step)
        model.train_on_batch(x[batch], y[batch])
        callback.on_train_batch_end(step)
    callback.on_train_end()
    assert callback.step == 16
    _assert_scheduled_sparsity(model, 0.8, helpers)


def test_training_without_the_callback_says_to_add_it(digits, helpers):
    x, y = digits
    model = keras_prune.prune_low_magnitude(helpers.small_cnn())
    helpers.compile_model(model)
    with pytest.raises(ValueError, match="PruneCallback"):
        model.fit(x, y, epochs=1, verbose=0)


def test_callback_on_an_unpruned_model_says_to_prune_first(digits, helpers):
    x, y = digits
    model = helpers.compile_model(helpers.small_cnn())
    with pytest.raises(ValueError, match="prune_low_magnitude"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[PruneCallback()])


def test_global_pruning_uses_one_threshold_across_layers(digits, helpers):
    x, y = digits
    model = keras_prune.prune_low_magnitude(
        helpers.small_cnn(), ConstantSparsity(0.7, 0, frequency=4), global_pruning=True
    )
    helpers.compile_model(model)
    helpers.tiny_fit(model, x, y, epochs=1)
    pairs = helpers.stored_and_masks(model)
    total = sum(m.size for _, m in pairs)
    assert sum(int(m.sum()) for _, m in pairs) == num_kept(total, 0.7)
    per_layer = [1 - m.mean() for _, m in pairs]
    assert max(per_layer) - min(per_layer) > 0.05
    thresholds = [
        float(keras.ops.convert_to_numpy(t))
        for w in keras_prune.layers.collect_wrappers(model)
        for t in w.thresholds
    ]
    assert len(set(thresholds)) == 1


def test_block_and_m_by_n_pruning_through_fit(digits, helpers):
    x, y = digits
    block = keras_prune.prune_low_magnitude(
        helpers.small_cnn(), ConstantSparsity(0.5, 0, frequency=1), block_size=(4, 4), filters=["dense"]
    )
    helpers.compile_model(block)
    helpers.tiny_fit(block, x, y, epochs=1)
    (_, mask), = helpers.stored_and_masks(block)
    tiles = mask.reshape(72, 4, 4, 4).transpose(0, 2, 1, 3).reshape(-1, 16).sum(axis=1)
    assert set(np.unique(tiles)) == {0.0, 16.0}

    two_four = keras_prune.prune_low_magnitude(
        helpers.small_cnn(), ConstantSparsity(0.5, 0, frequency=1), sparsity_m_by_n=(2, 4),
        filters=["dense"],
    )
    helpers.compile_model(two_four)
    helpers.tiny_fit(two_four, x, y, epochs=1)
    (_, mask), = helpers.stored_and_masks(two_four)
    assert np.all(mask.T.reshape(-1, 4).sum(axis=1) == 2)


def test_tensorboard_log_dir_gets_event_files(digits, helpers, tmp_path):
    x, y = digits
    model = keras_prune.prune_low_magnitude(helpers.small_cnn(), _schedule())
    helpers.compile_model(model)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[PruneCallback(log_dir=str(tmp_path))])
    events = list(tmp_path.rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 100


def test_masks_changing_at_the_end_warn_that_batchnorm_statistics_are_stale(digits):
    x, y = digits

    def run(end_step):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([
            keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3), keras.layers.BatchNormalization(),
            keras.layers.ReLU(), keras.layers.Flatten(), keras.layers.Dense(10)])
        schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=end_step, frequency=1)
        pruned = keras_prune.prune_low_magnitude(model, pruning_schedule=schedule)
        pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pruned.fit(x[:640], y[:640], batch_size=32, epochs=15, verbose=0,
                       callbacks=[PruneCallback()])
        return [str(w.message) for w in caught if "BatchNormalization" in str(w.message)]

    stale = run(end_step=300)  # 300 steps in all: the last masks come at the very end
    assert len(stale) == 1 and "update_batchnorm_statistics" in stale[0]
    assert run(end_step=20) == []  # the statistics have 200+ steps to follow
