"""tfmot's documented behaviour, checked on keras_prune (every backend).

Sparsity sequences are compared with what tfmot 0.8.1 itself produced
(tests/data/tfmot_reference.json, written by tests/data/make_tfmot_reference.py
in the tfmot venv); the other tests follow tfmot's documented behaviour, one
per point of the migration guide.
"""

import json
import pathlib
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest

import keras_prune
from keras_prune import errors
from keras_prune.callbacks import PruneCallback, PruningSummaries, UpdatePruningStep
from keras_prune.layers import PruneLowMagnitude, collect_wrappers
from keras_prune.schedules import ConstantSparsity, PolynomialDecay

REFERENCE = json.loads(
    (pathlib.Path(__file__).parents[1] / "data" / "tfmot_reference.json").read_text()
)["one_batch_per_fit"]

SCHEDULES = {
    "poly_0.2_0.6_b1_e4_f1": lambda: PolynomialDecay(0.2, 0.6, 1, 4, power=3, frequency=1),
    "const_0.5_b0_f3": lambda: ConstantSparsity(0.5, 0, frequency=3),
    "const_0.5_b0_f100": lambda: ConstantSparsity(0.5, 0),
    "poly_0_0.8_b2_e10_f2": lambda: PolynomialDecay(0.0, 0.8, 2, 10, frequency=2),
}


def _dense_model():
    return keras.Sequential([keras.Input((20,)), keras.layers.Dense(25)])


def _sparsity(model):
    mask = keras.ops.convert_to_numpy(collect_wrappers(model)[0].masks[0])
    return round(float(1 - mask.mean()), 4)


class _Record(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.sparsity = []

    def on_train_batch_end(self, batch, logs=None):
        self.sparsity.append(_sparsity(self.model))


def _data(n):
    rng = np.random.default_rng(0)
    return rng.random((n, 20), dtype="float32"), rng.random((n, 25), dtype="float32")


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_per_batch_sparsity_matches_tfmot(name):
    expected = REFERENCE[name]
    steps = len(expected["sparsity"])
    model = keras_prune.prune_low_magnitude(_dense_model(), SCHEDULES[name]())
    model.compile("sgd", "mse")
    record = _Record()
    x, y = _data(steps)
    model.fit(x, y, batch_size=1, epochs=1, shuffle=False, verbose=0,
              callbacks=[PruneCallback(), record])
    assert record.sparsity == expected["sparsity"]
    stored = int(keras.ops.convert_to_numpy(collect_wrappers(model)[0].pruning_step))
    assert stored == expected["pruning_step"]


def test_one_batch_per_fit_with_a_save_and_reload_between_matches_tfmot(tmp_path):
    expected = REFERENCE["poly_0.2_0.6_b1_e4_f1"]["sparsity"][:6]
    model = keras_prune.prune_low_magnitude(_dense_model(), SCHEDULES["poly_0.2_0.6_b1_e4_f1"]())
    model.compile("sgd", "mse")
    x, y = _data(1)
    seen = []
    for index in range(6):
        if index == 3:  # resume from a file, as after a restart
            model.save(tmp_path / "mid.keras")
            model = keras.saving.load_model(tmp_path / "mid.keras")
        model.fit(x, y, verbose=0, callbacks=[UpdatePruningStep()])
        seen.append(_sparsity(model))
    assert seen == expected


def test_tfmot_custom_training_loop_recipe_matches_tfmot():
    expected = REFERENCE["custom_loop_const_0.5_f2"]
    model = keras_prune.prune_low_magnitude(
        _dense_model(), pruning_schedule=ConstantSparsity(0.5, 0, frequency=2)
    )
    x, _ = _data(8)
    step_callback = UpdatePruningStep()
    step_callback.set_model(model)
    step_callback.on_train_begin()
    seen = []
    for _ in range(2):
        for _ in range(3):
            step_callback.on_train_batch_begin(batch=-1)
            model(x, training=True)
            seen.append(_sparsity(model))
        step_callback.on_epoch_end(batch=-1)
    assert seen == expected["sparsity"]
    stored = int(keras.ops.convert_to_numpy(collect_wrappers(model)[0].pruning_step))
    assert stored == expected["pruning_step"]


def test_pruning_summaries_write_on_epoch_begin_as_in_tfmot_custom_loop(tmp_path):
    model = keras_prune.prune_low_magnitude(_dense_model())
    log_callback = PruningSummaries(log_dir=str(tmp_path))
    log_callback.set_model(model)
    log_callback.on_epoch_begin(epoch=-1)
    events = list(tmp_path.rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


@pytest.mark.parametrize("log_dir", ["", None])
def test_pruning_summaries_need_a_log_dir(log_dir):
    with pytest.raises(ValueError, match="log_dir"):
        PruningSummaries(log_dir=log_dir)


def test_update_pruning_step_on_a_model_without_pruned_layers_warns_and_trains():
    model = _dense_model()
    model.compile("sgd", "mse")
    x, y = _data(4)
    with pytest.warns(UserWarning, match="no pruned layers"):
        history = model.fit(x, y, verbose=0, callbacks=[UpdatePruningStep()])
    assert len(history.history["loss"]) == 1


# Models that contain layers keras_prune cannot or need not prune ---------------


class UnregisteredScale(keras.layers.Layer):
    """A custom layer without register_keras_serializable."""

    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class InnerDense(keras.layers.Layer):
    """Creates its sub-layer in __init__ and has no build(): weights appear on call."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = keras.layers.Dense(6)

    def call(self, x):
        return self.inner(x)


def _prune_fit_strip(model, x, y):
    pruned = keras_prune.prune_low_magnitude(
        model, pruning_schedule=ConstantSparsity(0.5, 0, frequency=1)
    )
    pruned.compile("sgd", "mse")
    pruned.fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=[PruneCallback()])
    stripped = keras_prune.strip_pruning(pruned)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(stripped(x)), keras.ops.convert_to_numpy(pruned(x)),
        rtol=1e-5, atol=1e-5,
    )
    return pruned, stripped


@pytest.mark.parametrize(
    "make_middle",
    [
        lambda: keras.layers.Lambda(lambda t: t * 2.0),
        lambda: UnregisteredScale(3.0),
        lambda: InnerDense(),
    ],
    ids=["lambda", "unregistered_custom_layer", "sublayer_created_in_init"],
)
def test_a_layer_that_is_not_pruned_never_stops_pruning(make_middle):
    inputs = keras.Input((8,))
    hidden = make_middle()(keras.layers.Dense(6, name="first")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, name="last")(hidden))
    x = np.random.default_rng(1).random((8, 8), dtype="float32")
    before = [w.copy() for w in model.get_weights()]
    reference = keras.ops.convert_to_numpy(model(x))
    pruned, stripped = _prune_fit_strip(model, x, np.zeros((8, 2), "float32"))
    assert {"first", "last"} <= set(pruned.pruning_report.pruned)
    assert _sparsity(pruned) == 0.5
    # The input model is unchanged (its layers were copied, not shared).
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), reference, rtol=1e-6)


class TutorialNet(keras.Model):
    """The style of TensorFlow's tutorials: an __init__ without arguments."""

    def __init__(self):
        super().__init__()
        self.d1 = keras.layers.Dense(16, activation="relu")
        self.d2 = keras.layers.Dense(3)

    def call(self, x):
        return self.d2(self.d1(x))


def test_subclassed_model_with_a_no_argument_init_prunes():
    model = TutorialNet()
    x = np.random.default_rng(2).random((8, 5), dtype="float32")
    model(x)
    pruned, stripped = _prune_fit_strip(model, x, np.zeros((8, 3), "float32"))
    assert isinstance(pruned, TutorialNet) and isinstance(stripped, TutorialNet)
    assert len(collect_wrappers(pruned)) == 2
    assert not collect_wrappers(stripped)


def test_keras_ops_in_a_functional_graph_are_kept():
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(8)(inputs)
    outputs = keras.layers.Dense(2)(keras.ops.relu(hidden + inputs)[:, :6])
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(3).random((8, 8), dtype="float32")
    pruned, _ = _prune_fit_strip(model, x, np.zeros((8, 2), "float32"))
    assert len(pruned.pruning_report.pruned) == 2


def test_unbuilt_sequential_is_wrapped_and_builds_on_first_call():
    model = keras.Sequential([keras.layers.Dense(8), keras.layers.Dropout(0.1),
                              keras.layers.Dense(2)])
    pruned = keras_prune.prune_low_magnitude(
        model, pruning_schedule=ConstantSparsity(0.5, 0, frequency=1)
    )
    assert not pruned.built
    pruned.compile("sgd", "mse")
    x = np.random.default_rng(4).random((8, 3), dtype="float32")
    pruned.fit(x, np.zeros((8, 2), "float32"), batch_size=4, verbose=0,
               callbacks=[PruneCallback()])
    assert [type(layer).__name__ for layer in pruned.layers] == [
        "PruneLowMagnitude", "Dropout", "PruneLowMagnitude"
    ]
    assert _sparsity(pruned) == 0.5


def test_multi_head_attention_called_with_keywords_prunes_and_strips():
    inputs = keras.Input((4, 8))
    attention = keras.layers.MultiHeadAttention(2, 4, name="mha")
    model = keras.Model(inputs, attention(query=inputs, value=inputs))
    x = np.random.default_rng(5).random((4, 4, 8), dtype="float32")
    pruned, _ = _prune_fit_strip(model, x, np.zeros((4, 4, 8), "float32"))
    assert pruned.pruning_report.pruned == ["mha"]
    assert len(collect_wrappers(pruned)[0].masks) == 4


class PrunableCell(keras.layers.Layer, keras_prune.PrunableLayer):
    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units))
        self.recurrent = self.add_weight(shape=(self.units, self.units))

    def call(self, x, states):
        output = keras.ops.tanh(x @ self.kernel + states[0] @ self.recurrent)
        return output, [output]

    def get_prunable_weights(self):
        return [self.kernel]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@pytest.mark.parametrize(
    "make_cell, count",
    [
        (lambda: keras.layers.LSTMCell(4), 2),
        (lambda: [keras.layers.LSTMCell(4), keras.layers.GRUCell(3)], 4),
        (lambda: PrunableCell(3), 1),
    ],
    ids=["cell", "stacked_cells", "prunable_cell"],
)
def test_rnn_layer_with_cells_prunes(make_cell, count):
    model = keras.Sequential([keras.Input((5, 3)), keras.layers.RNN(make_cell(), name="rnn")])
    pruned = keras_prune.prune_low_magnitude(model)
    assert pruned.pruning_report.pruned == ["rnn"]
    assert len(collect_wrappers(pruned)[0].masks) == count


class DuckTyped(keras.layers.Layer):
    """Has get_prunable_weights() without the PrunableLayer base (tfmot accepts it)."""

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], 3))

    def call(self, x):
        return x @ self.kernel

    def get_prunable_weights(self):
        return [self.kernel]


def test_layer_with_get_prunable_weights_but_no_base_class_is_prunable():
    wrapper = keras_prune.prune_low_magnitude(DuckTyped())
    wrapper.build((None, 5))
    assert len(wrapper.masks) == 1


def test_layers_without_weights_get_no_op_wrappers_when_asked_as_in_tfmot():
    layers = keras_prune.prune_low_magnitude(
        [keras.layers.Dense(8), keras.layers.Dropout(0.5), keras.layers.Flatten(),
         keras.layers.Dense(2)],
        pruning_schedule=ConstantSparsity(0.5, 0, frequency=1),
    )
    assert all(isinstance(layer, PruneLowMagnitude) for layer in layers)
    model = keras.Sequential([keras.Input((4, 3)), *layers])
    model.compile("sgd", "mse")
    x = np.random.default_rng(6).random((8, 4, 3), dtype="float32")
    model.fit(x, np.zeros((8, 2), "float32"), batch_size=4, verbose=0,
              callbacks=[PruneCallback()])
    assert [len(layer.masks) for layer in layers] == [1, 0, 0, 1]
    stripped = keras_prune.strip_pruning(model)
    assert [type(layer).__name__ for layer in stripped.layers] == [
        "Dense", "Dropout", "Flatten", "Dense"
    ]


# Errors of tfmot's types ---------------------------------------------------------


def test_unsupported_layer_and_non_layer_raise_value_errors_as_in_tfmot():
    with pytest.raises(ValueError):
        keras_prune.prune_low_magnitude(UnregisteredScale())
    with pytest.raises(errors.NotALayerError) as info:
        keras_prune.prune_low_magnitude("not a layer")
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)


def test_block_size_on_a_weight_that_is_not_rank_2_raises_as_in_tfmot():
    wrapper = keras_prune.prune_low_magnitude(keras.layers.Conv2D(4, 3), block_size=(2, 2))
    with pytest.raises(ValueError, match="2-dimensional"):
        wrapper.build((None, 8, 8, 4))


# Keras 3 clone side effects ------------------------------------------------------


def test_input_names_are_kept_and_the_result_is_not_compiled():
    first = keras.Input((3,), name="first")
    second = keras.Input((3,))
    merged = keras.layers.Concatenate()([first, second])
    model = keras.Model([first, second], keras.layers.Dense(2)(merged))
    model.compile("sgd", "mse")
    names = [layer.name for layer in model.layers if isinstance(layer, keras.layers.InputLayer)]
    pruned = keras_prune.prune_low_magnitude(model)
    stripped = keras_prune.strip_pruning(pruned)
    for new in (pruned, stripped):
        new_names = [
            layer.name for layer in new.layers if isinstance(layer, keras.layers.InputLayer)
        ]
        assert new_names == names
        assert not new.compiled
    feed = [np.ones((2, 3), "float32"), np.zeros((2, 3), "float32")]
    np.testing.assert_allclose(stripped.predict(feed, verbose=0), model.predict(feed, verbose=0),
                               rtol=1e-6)


def test_dict_input_model_keeps_its_keys():
    inputs = {"a": keras.Input((3,), name="a"), "b": keras.Input((2,), name="b")}
    merged = keras.layers.Concatenate()([inputs["a"], inputs["b"]])
    model = keras.Model(inputs, keras.layers.Dense(2)(merged))
    stripped = keras_prune.strip_pruning(keras_prune.prune_low_magnitude(model))
    feed = {"a": np.ones((2, 3), "float32"), "b": np.full((2, 2), 2.0, "float32")}
    np.testing.assert_allclose(stripped.predict(feed, verbose=0), model.predict(feed, verbose=0),
                               rtol=1e-6)


def test_submodules_are_attributes_without_importing_tensorflow():
    code = (
        "import sys, keras_prune as kp; assert 'tensorflow' not in sys.modules; "
        "assert callable(kp.structured.prune_structured); assert callable(kp.tflite.convert)"
    )
    env = {"KERAS_BACKEND": "jax", "PATH": ""}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_fit_warns_when_the_schedule_cannot_reach_its_end_step():
    model = keras_prune.prune_low_magnitude(
        _dense_model(), PolynomialDecay(0.0, 0.8, begin_step=0, end_step=1000, frequency=2)
    )
    model.compile("sgd", "mse")
    x, y = _data(8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[PruneCallback()])
    messages = [str(w.message) for w in caught if "keras_prune" in str(w.message)]
    assert len(messages) == 1
    assert "stops at step 4, before the schedule's end_step=1000" in messages[0]


def _keras_prune_warnings(caught):
    return [str(w.message) for w in caught if "keras_prune" in str(w.message)]


def test_tfmot_tutorial_on_22_steps_warns_once_that_nothing_will_be_pruned():
    # TensorFlow's "Pruning in Keras" recipe on a small dataset: 2 epochs of 11 batches,
    # end_step = 22, tfmot's default frequency=100. Step 1 is the first batch, so the
    # first mask update would be at step 100: nothing is pruned (tfmot's semantics).
    model = keras_prune.prune_low_magnitude(
        _dense_model(), PolynomialDecay(0.5, 0.8, begin_step=0, end_step=22))
    model.compile("sgd", "mse")
    x, y = _data(44)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=4, epochs=2, verbose=0,
                  callbacks=[keras_prune.callbacks.UpdatePruningStep()])
    messages = _keras_prune_warnings(caught)
    assert len(messages) == 1
    assert "nothing will be pruned" in messages[0]
    assert "steps 1..22" in messages[0] and "never updates masks" in messages[0]
    assert "frequency=11" in messages[0]
    assert _sparsity(model) == 0.0
    with pytest.warns(UserWarning, match="masks were never computed"):
        keras_prune.strip_pruning(model)


def test_clone_model_with_constant_sparsity_over_90_steps_warns():
    def clone_function(layer):
        if isinstance(layer, keras.layers.Dense):
            return keras_prune.prune_low_magnitude(layer, ConstantSparsity(0.5, 0))
        return layer.__class__.from_config(layer.get_config())

    model = keras.models.clone_model(_dense_model(), clone_function=clone_function)
    model.compile("sgd", "mse")
    x, y = _data(90)
    with pytest.warns(UserWarning, match="first updates masks at step 100"):
        model.fit(x, y, batch_size=1, epochs=1, verbose=0, callbacks=[PruneCallback()])
    assert _sparsity(model) == 0.0  # what the warning announced: nothing was pruned


def test_no_idle_warning_when_an_update_falls_inside_the_fit():
    model = keras_prune.prune_low_magnitude(
        _dense_model(), ConstantSparsity(0.5, begin_step=0, frequency=4))
    model.compile("sgd", "mse")
    x, y = _data(16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[PruneCallback()])
        keras_prune.strip_pruning(model)
    assert _keras_prune_warnings(caught) == []
    assert _sparsity(model) == pytest.approx(0.5, abs=0.05)


def test_first_pruning_step_follows_tfmot_step_numbering():
    assert ConstantSparsity(0.5, 0).first_pruning_step() == 100
    assert ConstantSparsity(0.5, 3, frequency=5).first_pruning_step() == 3
    assert ConstantSparsity(0.5, 3, frequency=5).first_pruning_step(after=3) == 8
    assert PolynomialDecay(0.1, 0.5, 0, end_step=50).first_pruning_step() is None


def test_fit_stopped_early_warns_that_the_target_was_not_reached():
    model = keras_prune.prune_low_magnitude(
        _dense_model(), PolynomialDecay(0.0, 0.8, begin_step=0, end_step=8, frequency=1)
    )
    model.compile("sgd", "mse")
    x, y = _data(8)
    stop = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: setattr(model, "stop_training", True)
    )
    with pytest.warns(UserWarning, match="stopped at pruning step 2.*short of the final"):
        model.fit(x, y, batch_size=4, epochs=4, verbose=0, callbacks=[PruneCallback(), stop])
    assert 0.0 < _sparsity(model) < 0.8


def test_model_level_block_size_reports_layers_pruned_element_by_element():
    model = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="conv"),
        keras.layers.Flatten(), keras.layers.Dense(8, name="dense"),
    ])
    pruned = keras_prune.prune_low_magnitude(model, block_size=(4, 1))
    assert pruned.pruning_report.elementwise == ["conv"]
    wrappers = {w.layer.name: w for w in collect_wrappers(pruned)}
    assert wrappers["conv"].block_size == (1, 1)
    assert wrappers["dense"].block_size == (4, 1)


class Block(keras.layers.Layer):
    """A transformer-style block: private sub-layers, built on first call."""

    def __init__(self, units=8, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self._attention = keras.layers.MultiHeadAttention(2, 4)
        self._feedforward = keras.layers.Dense(units)
        self._norm = keras.layers.LayerNormalization()

    def call(self, x):
        x = self._norm(x + self._attention(x, x))
        return x + self._feedforward(x)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_prunable_layers_inside_a_custom_block_are_pruned_and_stripped():
    inputs = keras.Input((4, 8))
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(Block(name="block")(inputs)))
    x = np.random.default_rng(7).random((8, 4, 8), dtype="float32")
    before = [w.copy() for w in model.get_weights()]
    pruned, stripped = _prune_fit_strip(model, x, np.zeros((8, 4, 2), "float32"))
    inner = Block()
    names = sorted(pruned.pruning_report.pruned)
    assert names[-1] == "head" and [n.split("/")[0] for n in names[:2]] == ["block", "block"]
    assert {type(w.layer) for w in collect_wrappers(pruned)} == {
        type(inner._attention), type(inner._feedforward)
    }
    assert len(collect_wrappers(pruned)) == 3 and not collect_wrappers(stripped)
    kernel = keras.ops.convert_to_numpy(stripped.get_layer("block")._feedforward.kernel)
    assert (kernel == 0).mean() == 0.5
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_block_size_inside_a_custom_block_falls_back_like_at_model_level():
    class ConvBlock(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self._conv = keras.layers.Conv2D(4, 3, padding="same")
            self._dense = keras.layers.Dense(8)

        def call(self, x):
            return self._dense(self._conv(x))

    inputs = keras.Input((8, 8, 2))
    model = keras.Model(inputs, ConvBlock(name="block")(inputs))
    pruned = keras_prune.prune_low_magnitude(model, block_size=(2, 2))
    assert len(pruned.pruning_report.elementwise) == 1
    assert pruned.pruning_report.elementwise[0].startswith("block/")
    assert sorted(w.block_size for w in collect_wrappers(pruned)) == [(1, 1), (2, 2)]


class _TfmotStyleSchedule(keras_prune.schedules.PruningSchedule):
    """A custom schedule written as tfmot's docs show: get_config nests its arguments."""

    def __init__(self, sparsity):
        self.sparsity = sparsity

    def __call__(self, step):
        return (keras.ops.convert_to_tensor(True),
                keras.ops.convert_to_tensor(self.sparsity, "float32"))

    def get_config(self):
        return {"class_name": self.__class__.__name__, "config": {"sparsity": self.sparsity}}


def test_tfmot_style_schedule_config_round_trips(tmp_path):
    keras.saving.register_keras_serializable("tests")(_TfmotStyleSchedule)
    schedule = _TfmotStyleSchedule(0.25)
    restored = keras.utils.deserialize_keras_object(keras.utils.serialize_keras_object(schedule))
    assert isinstance(restored, _TfmotStyleSchedule) and restored.sparsity == 0.25
    model = keras_prune.prune_low_magnitude(_dense_model(), pruning_schedule=schedule)
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    assert collect_wrappers(reloaded)[0].pruning_schedule.sparsity == 0.25
    for own in (PolynomialDecay(0.1, 0.5, 0, 100), ConstantSparsity(0.5, 10, frequency=5)):
        again = keras.utils.deserialize_keras_object(keras.utils.serialize_keras_object(own))
        assert again == own


def test_wrapped_layer_without_weights_answers_get_prunable_weights():
    wrapper = keras_prune.prune_low_magnitude(keras.layers.Dropout(0.5))
    assert wrapper.layer.get_prunable_weights() == []
    dense = keras_prune.prune_low_magnitude(keras.layers.Dense(3))
    dense.build((None, 4))
    assert [w.path for w in dense.layer.get_prunable_weights()] == [dense.layer.kernel.path]
