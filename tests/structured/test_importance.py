"""Importance criteria pick the channels they are meant to pick."""

import keras
import numpy as np
import pytest

from keras_prune.structured import (
    DependencyGraph,
    StructuredPruner,
    get_importance,
    prune_structured,
)
from tests.structured import models

L = keras.layers


def relu_mlp():
    return keras.Sequential([keras.Input((6,)), L.Dense(8, activation="relu", name="h"),
                             L.Dense(2, name="out")])


def data(n=64):
    return np.random.default_rng(0).normal(size=(n, 6)).astype("float32")


def planned(model, importance, ratio=0.25, **kwargs):
    pruner = StructuredPruner(model, ratio={"h": ratio}, importance=importance, **kwargs)
    (group,) = [g for g in pruner.groups if len(g.remove)]
    return set(group.remove.tolist())


def test_l1_and_l2_remove_the_smallest_filters():
    model = relu_mlp()
    kernel, bias = model.get_layer("h").get_weights()
    kernel[:, 3] *= 1e-3
    kernel[:, 6] *= 1e-3
    model.get_layer("h").set_weights([kernel, bias * 0])
    assert planned(model, "l1") == {3, 6}
    assert planned(model, "l2") == {3, 6}


def test_activation_and_apoz_find_units_that_never_fire():
    model = relu_mlp()
    kernel, bias = model.get_layer("h").get_weights()
    bias[[1, 5]] = -100.0  # these ReLUs output 0 for every input, though their weights are large
    kernel[:, [1, 5]] *= 10
    model.get_layer("h").set_weights([kernel, bias])
    assert planned(model, "activation", data=data()) == {1, 5}
    assert planned(model, "apoz", data=data()) == {1, 5}
    assert planned(model, "l1") != {1, 5}


def test_entropy_finds_units_that_say_the_same_for_every_input():
    model = relu_mlp()
    kernel, bias = model.get_layer("h").get_weights()
    kernel[:, [0, 7]] = 0.0
    bias[[0, 7]] = 3.0  # constant output 3: large activation, zero information
    model.get_layer("h").set_weights([kernel, bias])
    assert planned(model, "entropy", data=data()) == {0, 7}
    assert {0, 7}.isdisjoint(planned(model, "activation", data=data()))


def test_bn_scale_uses_gamma():
    model = models.sequential_mlp()
    gamma, beta, mean, var = model.get_layer("bn").get_weights()
    gamma[[2, 9, 11]] = 1e-4
    model.get_layer("bn").set_weights([gamma, beta, mean, var])
    pruner = StructuredPruner(model, ratio={"h1": 0.25}, importance="bn_scale")
    (group,) = [g for g in pruner.groups if len(g.remove)]
    assert set(group.remove.tolist()) == {2, 9, 11}


def test_bn_scale_on_a_model_without_batchnorm_warns_that_it_ranks_by_l1():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="h"),
                              keras.layers.Dense(2, name="out")])
    with pytest.warns(UserWarning, match="no BatchNormalization layer"):
        by_bn_scale = StructuredPruner(model, ratio=0.5, importance="bn_scale")
        by_bn_scale.plan()
    by_l1 = StructuredPruner(model, ratio=0.5, importance="l1")
    assert [g.remove.tolist() for g in by_bn_scale.groups] == [
        g.remove.tolist() for g in by_l1.groups]  # the ranking it warned about


def test_taylor_uses_gradients_and_ignores_units_that_do_not_reach_the_loss():
    model = relu_mlp()
    out_kernel, out_bias = model.get_layer("out").get_weights()
    out_kernel[[2, 4]] = 0.0  # units 2 and 4 do not affect the output: zero gradient
    model.get_layer("out").set_weights([out_kernel, out_bias])
    model.compile(loss="mse")
    y = np.random.default_rng(1).normal(size=(64, 2)).astype("float32")
    assert planned(model, "taylor", data=(data(), y)) == {2, 4}


def test_random_importance_is_seeded_and_custom_callables_are_used():
    model = relu_mlp()
    assert planned(model, "random") == planned(model, "random")
    assert planned(model, lambda group: -np.arange(group.size)) == {6, 7}


def test_scores_of_tied_layers_are_reduced_across_the_group():
    graph = DependencyGraph(models.residual_cnn())
    (group,) = [g for g in graph.groups if {"c1", "c2"} <= {l.name for l in g.sources}]
    model = graph.model
    c1 = np.abs(model.get_layer("c1").get_weights()[0]).reshape(-1, 8).sum(0)
    c1 += np.abs(model.get_layer("c1").get_weights()[1])
    scores = get_importance("l1")(group)
    assert scores.shape == (8,)
    assert not np.allclose(scores, c1)  # c2 and the depthwise filters count too


def test_data_based_criteria_run_on_nested_and_multi_input_models():
    nested = models.nested()
    x = np.random.default_rng(0).normal(size=(8, 8, 8, 1)).astype("float32")
    new_model, _ = prune_structured(nested, ratio=0.5, importance="activation", data=x)
    assert new_model.get_layer("backbone").get_layer("b1").filters == 4
    shared = models.shared_dense()
    pair = [np.ones((4, 5), "float32"), np.zeros((4, 5), "float32")]
    new_model, _ = prune_structured(shared, ratio=0.5, importance="apoz", data=pair)
    assert new_model.get_layer("first").units == 4


def test_attention_heads_fall_back_to_weights_for_activation_criteria():
    model = models.transformer(heads=4)
    tokens = np.random.default_rng(0).integers(0, 20, size=(8, 6)).astype("int32")
    new_model, report = prune_structured(model, ratio={"mha": 0.5}, importance="activation",
                                         data=tokens)
    assert new_model.get_layer("mha").num_heads == 2


@pytest.mark.parametrize("name", ["activation", "apoz", "entropy", "taylor"])
def test_data_based_criteria_without_data_explain_what_to_pass(name):
    with pytest.raises(ValueError, match="needs `data`"):
        prune_structured(relu_mlp(), ratio=0.5, importance=name)
