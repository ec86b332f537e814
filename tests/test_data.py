"""Every `data=` argument takes the same kinds of data, with the same errors (keras_prune._data)."""

import keras
import numpy as np
import pytest

import keras_prune
from keras_prune import structured
from keras_prune._data import samples


def _relu_cnn(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    y = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.Add()([x, keras.layers.Conv2D(8, 1)(y)])
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(16, activation="relu")(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _arrays(n=48, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 8, 8, 1)).astype("float32"), rng.integers(0, 3, n)


def _forms(x, y):
    """The same samples in every form `data=` takes."""
    import tensorflow as tf

    def generator():
        for start in range(0, len(x), 16):
            yield x[start:start + 16], y[start:start + 16]

    return {
        "array": x,
        "pair": (x, y),
        "dataset": tf.data.Dataset.from_tensor_slices((x, y)).batch(16),
        "dataset_x_only": tf.data.Dataset.from_tensor_slices(x).batch(10),
        "generator": generator(),
    }


def test_every_form_gives_the_same_samples():
    pytest.importorskip("tensorflow")
    model = _relu_cnn()
    x, y = _arrays()
    for name, data in _forms(x, y).items():
        found = samples(model, data)
        np.testing.assert_array_equal(found.x, x, err_msg=name)
        if name in ("pair", "dataset", "generator"):
            np.testing.assert_array_equal(found.y, y, err_msg=name)
    assert len(samples(model, _forms(x, y)["dataset"], limit=20)) == 20


@pytest.mark.parametrize("form", ["array", "dataset", "generator"])
def test_activation_importance_is_the_same_from_arrays_and_datasets(form):
    pytest.importorskip("tensorflow")
    x, y = _arrays()
    data = _forms(x, y)[form]
    expected, _ = structured.prune_structured(_relu_cnn(), importance="activation", data=x,
                                              verbose=0)
    smaller, _ = structured.prune_structured(_relu_cnn(), importance="activation", data=data,
                                             verbose=0)
    for a, b in zip(expected.get_weights(), smaller.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_each_data_verb_takes_a_tf_data_dataset():
    tf = pytest.importorskip("tensorflow")
    x, y = _arrays()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)

    shallower, report = structured.remove_blocks(_relu_cnn(), importance="activation",
                                                 data=dataset)
    assert len(report.blocks) == 1

    collapsed, collapse_report = structured.collapse_layers(_relu_cnn(), dataset)
    assert collapse_report.max_difference < 1e-4

    model = _relu_cnn()
    assert structured.update_batchnorm_statistics(model, dataset) == 0  # no BN: nothing to do

    states = keras_prune.entropy.relu_states(_relu_cnn(), dataset)
    assert states and all(0.0 <= p.min() and p.max() <= 1.0 for p in states.values())

    pruned, one_shot = keras_prune.prune_one_shot(_relu_cnn(), dataset, sparsity=0.5, verbose=0)
    assert one_shot.layers and abs(one_shot.sparsity - 0.5) < 0.05

    snip = keras_prune.prune_at_init(_relu_cnn(), sparsity=0.5, method="snip", data=dataset)
    assert keras_prune.sparsity_report(snip, print_fn=None).sparsity > 0.3

    taylor, _ = structured.prune_structured(_relu_cnn(), importance="taylor", data=dataset,
                                            verbose=0)
    assert taylor.count_params() < _relu_cnn().count_params()


def test_empty_nan_and_endless_data_are_refused_by_name():
    tf = pytest.importorskip("tensorflow")
    model = _relu_cnn()
    x, y = _arrays()
    with pytest.raises(ValueError, match=r"`data` holds no samples"):
        samples(model, x[:0])
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"`data` holds 1 NaN or infinite"):
        samples(model, bad)
    with pytest.raises(ValueError, match=r"infinite tf.data.Dataset.*take"):
        samples(model, tf.data.Dataset.from_tensor_slices(x).batch(8).repeat())
    with pytest.raises(ValueError, match=r"yielded no batches"):
        samples(model, iter([]))
    with pytest.raises(ValueError, match=r"must hold labelled samples"):
        samples(model, x, labels=True)
    with pytest.raises(ValueError, match=r"shaped \(n, 8, 8, 1\).*Received: shape \(48, 8, 8\)"):
        samples(model, x[..., 0])
