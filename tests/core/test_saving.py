import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_prune
from keras_prune.callbacks import PruneCallback, PruningSummaries, UpdatePruningStep
from keras_prune.layers import collect_wrappers
from keras_prune.schedules import PolynomialDecay


def _pruned(helpers, **kwargs):
    schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=32, frequency=4)
    model = keras_prune.prune_low_magnitude(helpers.small_cnn(), schedule, **kwargs)
    return helpers.compile_model(model, optimizer=keras.optimizers.SGD(0.05, momentum=0.9))


def _fit(model, x, y, epochs, initial_epoch=0, callbacks=()):
    callback = PruneCallback()
    model.fit(
        x, y, batch_size=64, epochs=epochs, initial_epoch=initial_epoch, shuffle=False,
        verbose=0, callbacks=[callback, *callbacks],
    )
    return callback


def _assert_same_state(a, b, helpers):
    for (wa, ma), (wb, mb) in zip(helpers.stored_and_masks(a), helpers.stored_and_masks(b)):
        np.testing.assert_array_equal(ma, mb)
        np.testing.assert_allclose(wa, wb, atol=1e-5)
    step = lambda m: int(keras.ops.convert_to_numpy(collect_wrappers(m)[0].pruning_step))  # noqa: E731
    assert step(a) == step(b)
    assert keras_prune.sparsity_report(a).sparsity == keras_prune.sparsity_report(b).sparsity


def _reference_run(helpers, x, y, seed, epochs):
    """An uninterrupted run, and the initial weights it started from."""
    keras.utils.set_random_seed(seed)
    reference = _pruned(helpers)
    initial = [w.copy() for w in reference.get_weights()]
    _fit(reference, x, y, epochs=epochs)
    return reference, initial


def test_keras_file_mid_schedule_reloads_without_custom_objects_and_resumes(digits, helpers, tmp_path):
    x, y = digits
    reference, initial = _reference_run(helpers, x, y, seed=3, epochs=5)

    keras.utils.set_random_seed(3)
    model = _pruned(helpers)
    model.set_weights(initial)
    path = str(tmp_path / "ckpt.keras")
    _fit(model, x, y, epochs=2, callbacks=[keras.callbacks.ModelCheckpoint(path)])
    restored = keras.saving.load_model(path)  # no custom_objects, no scope
    assert isinstance(collect_wrappers(restored)[0], keras_prune.PruneLowMagnitude)
    callback = _fit(restored, x, y, epochs=5, initial_epoch=2)
    assert callback.step == 40
    _assert_same_state(reference, restored, helpers)


def test_backup_and_restore_resumes_with_same_step_sparsity_and_masks(digits, helpers, tmp_path):
    x, y = digits
    reference, initial = _reference_run(helpers, x, y, seed=4, epochs=4)

    class StopAfter(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("interrupted")

    backup_dir = str(tmp_path / "backup")
    model = _pruned(helpers)
    model.set_weights(initial)
    with pytest.raises(RuntimeError, match="interrupted"):
        _fit(model, x, y, epochs=4, callbacks=[keras.callbacks.BackupAndRestore(backup_dir), StopAfter()])
    resumed = _pruned(helpers)  # a fresh process would rebuild the model like this
    _fit(resumed, x, y, epochs=4, callbacks=[keras.callbacks.BackupAndRestore(backup_dir)])
    _assert_same_state(reference, resumed, helpers)


def test_checkpoint_between_syncs_restores_the_exact_step(digits, helpers, tmp_path):
    x, y = digits
    path = str(tmp_path / "mid.keras")

    class SaveAtBatch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 5:
                self.model.save(path)

    model = _pruned(helpers)
    # SaveAtBatch runs before PruneCallback and mid-epoch: the stored step is stale.
    model.fit(x, y, batch_size=64, epochs=1, verbose=0, shuffle=False,
              callbacks=[SaveAtBatch(), PruneCallback()])
    restored = keras.saving.load_model(path)
    callback = PruneCallback()
    callback.set_model(restored)
    callback.on_train_begin()
    callback.on_epoch_begin(0)
    assert callback.step == 6  # six batches were trained when it was saved


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="tf.train.Checkpoint is TensorFlow's")
def test_tf_checkpoint_restores_masks_thresholds_and_step(digits, helpers, tmp_path):
    import tensorflow as tf

    x, y = digits
    model = _pruned(helpers)
    _fit(model, x, y, epochs=1)
    path = tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(str(tmp_path / "c"))
    saved = {name for name, _ in tf.train.list_variables(path)}
    assert any("mask_0" in name for name in saved) and any("threshold_0" in name for name in saved)

    fresh = _pruned(helpers)
    fresh.optimizer.build(fresh.trainable_variables)
    assert all(m.all() for m in helpers.masks_of(fresh))
    tf.train.Checkpoint(model=fresh, optimizer=fresh.optimizer).restore(path).assert_consumed()
    _assert_same_state(model, fresh, helpers)
    for a, b in zip(collect_wrappers(model), collect_wrappers(fresh)):
        for ta, tb in zip(a.thresholds, b.thresholds):
            assert float(ta.numpy()) == float(tb.numpy()) != 0.0


def test_stripped_keras_file_loads_where_keras_prune_is_not_installed(digits, helpers, tmp_path):
    x, y = digits
    model = _pruned(helpers)
    _fit(model, x, y, epochs=1)
    path = str(tmp_path / "stripped.keras")
    keras_prune.strip_pruning(model).save(path)
    expected = model.predict(x[:8], verbose=0)
    np.save(tmp_path / "expected.npy", expected)
    np.save(tmp_path / "x.npy", x[:8])
    script = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'keras_prune':
            raise ImportError('keras_prune is blocked in this test')
sys.meta_path.insert(0, Block())
import numpy as np, keras
model = keras.saving.load_model({path!r})
out = model.predict(np.load({str(tmp_path / 'x.npy')!r}), verbose=0)
assert np.allclose(out, np.load({str(tmp_path / 'expected.npy')!r}), atol=1e-5)
assert 'keras_prune' not in sys.modules
print('LOADED')
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ}, timeout=300)
    assert "LOADED" in result.stdout, result.stderr[-2000:]


def test_wrapper_config_round_trips_every_argument(helpers):
    layer = keras.layers.Dense(4, name="d")
    wrapper = keras_prune.PruneLowMagnitude(
        layer,
        pruning_schedule=PolynomialDecay(0.1, 0.6, 2, 40, power=2, frequency=5),
        block_size=(2, 2),
        block_pooling_type="MAX",
        pruning_group="g",
        name="pruned_d",
    )
    restored = helpers.config_round_trip(wrapper)
    assert restored.pruning_schedule == wrapper.pruning_schedule
    assert restored.block_size == (2, 2) and restored.block_pooling_type == "MAX"
    assert restored.pruning_group == "g" and restored.name == "pruned_d"
    m_by_n = keras_prune.PruneLowMagnitude(keras.layers.Dense(4), sparsity_m_by_n=(2, 4))
    assert helpers.config_round_trip(m_by_n).sparsity_m_by_n == (2, 4)


@pytest.mark.parametrize(
    "callback",
    [PruneCallback(log_dir="logs", verbose=1), UpdatePruningStep(), PruningSummaries("logs")],
)
def test_callback_configs_round_trip(callback, helpers):
    restored = helpers.config_round_trip(callback)
    assert type(restored) is type(callback)
    assert restored.get_config() == callback.get_config()
