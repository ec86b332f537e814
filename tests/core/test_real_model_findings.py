"""Findings from running models nobody here wrote (keras_hub Tasks, shared layers, RNNs)."""

import keras
import numpy as np

import keras_prune
from keras_prune.layers import collect_wrappers
from keras_prune.schedules import ConstantSparsity


def test_structured_pruning_of_a_task_that_reuses_its_backbone_inputs_terminates():
    # How keras_hub builds a Task: the nested model is called on its own input tensor.
    inputs = keras.Input((8,))
    backbone = keras.Model(inputs, keras.layers.Dense(16, activation="relu")(inputs))
    task = keras.Model(backbone.input, keras.layers.Dense(2)(backbone(backbone.input)))
    smaller, report = keras_prune.structured.prune_structured(task, 0.5)
    assert smaller.count_params() < task.count_params()
    x = np.ones((2, 8), "float32")
    assert keras.ops.convert_to_numpy(smaller(x)).shape == (2, 2)


def test_a_layer_shared_by_a_nested_model_and_the_outer_graph_stays_one_layer():
    embedding = keras.layers.Embedding(50, 16)
    inner_input = keras.Input((4,), dtype="int32")
    inner = keras.Model(inner_input, embedding(inner_input))
    tokens = keras.Input((4,), dtype="int32")
    outputs = keras.layers.Dense(3)(inner(tokens) + embedding(tokens))
    model = keras.Model(tokens, outputs)
    pruned = keras_prune.prune_low_magnitude(model)
    wrappers = collect_wrappers(pruned)
    assert len(wrappers) == 2  # one for the shared embedding, one for the Dense
    stripped = keras_prune.strip_pruning(pruned)
    assert stripped.count_params() == model.count_params()


def test_training_mode_calls_work_after_fit_for_batchnorm_re_estimation():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
                              keras.layers.BatchNormalization(), keras.layers.Dense(2)])
    pruned = keras_prune.prune_low_magnitude(model, ConstantSparsity(0.5, 0, frequency=1))
    pruned.compile("sgd", "mse")
    x = np.random.default_rng(0).random((8, 4), dtype="float32")
    pruned.fit(x, np.zeros((8, 2)), verbose=0, callbacks=[keras_prune.callbacks.PruneCallback()])
    before = keras.ops.convert_to_numpy(pruned.layers[1].moving_mean).copy()
    pruned(x * 5.0, training=True)
    after = keras.ops.convert_to_numpy(pruned.layers[1].moving_mean)
    assert not np.allclose(before, after)


def test_flops_count_recurrent_layers():
    inputs = keras.Input((10, 6))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.LSTM(8)(inputs)))
    flops = keras_prune.structured.count_flops(model)
    lstm = 10 * 2 * 4 * 8 * (6 + 8)
    assert flops == lstm + 2 * 8 * 2
