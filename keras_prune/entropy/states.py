"""ReLU on/off states of a graph model over data, and their binary entropy."""

import keras
import numpy as np
from keras import ops

from keras_prune import _models
from keras_prune._data import samples
from keras_prune._models.graph import iter_steps, run_graph
from keras_prune.layers.wrapper import PruneLowMagnitude


def _is_relu(activation):
    return activation is keras.activations.relu or getattr(activation, "__name__", "") == "relu"


def relu_layer(layer):
    """The layer whose output is a plain ReLU's (wrappers seen through), else None."""
    inner = layer.layer if isinstance(layer, PruneLowMagnitude) else layer
    if isinstance(inner, keras.layers.ReLU):
        plain = (not inner.max_value and not inner.negative_slope and not inner.threshold)
        return inner if plain else None
    return inner if _is_relu(getattr(inner, "activation", None)) else None


def relu_gate(layer):
    """True for a ReLU or Activation("relu") layer (a ReLU of its own, not a layer's activation)."""
    return isinstance(layer, (keras.layers.ReLU, keras.layers.Activation)) and (
        relu_layer(layer) is layer)


def output_relus(model):
    """{layer name: the name its output's ReLU states go by} for a graph model.

    A layer with a ReLU activation is its own; a layer whose output only a ReLU
    or Activation("relu") layer reads takes that layer's name (wrappers seen through).
    """
    steps = list(iter_steps(model))
    readers = {}
    for step in steps:
        for tensor in step.inputs:
            readers.setdefault(id(tensor), []).append(step)
    names = {}
    for step in steps:
        inner = step.operation.layer if isinstance(step.operation, PruneLowMagnitude) else (
            step.operation)
        if not isinstance(inner, keras.layers.Layer):
            continue
        own = relu_layer(inner)
        users = readers.get(id(step.outputs[0]), []) if step.outputs else []
        if own is not None:
            names[inner.name] = own.name
        elif len(users) == 1 and relu_gate(users[0].operation):
            names[inner.name] = users[0].operation.name
    return names


def relu_states(model, data, batch_size=256):
    """{layer name: fraction of samples (and positions) each channel is on}.

    Covers every layer of a Functional or Sequential model (nested ones expanded)
    whose output is a plain ReLU: a Dense or convolution with activation="relu",
    a ReLU layer, or Activation("relu"). Channels are the last axis. `data` is
    input samples in any form `keras_prune` takes (arrays, a dataset, ...).
    """
    _models.check_keras3(model, "model")
    if not isinstance(model, keras.Model) or not _models.is_graph_model(model):
        raise ValueError(
            f"Argument `model` must be a Functional or Sequential model; ReLU states are read "
            f"from its layer graph. Received: {type(model).__name__}."
        )
    data = samples(model, data)
    steps = list(iter_steps(model))
    watched = {id(s.operation): relu_layer(s.operation) for s in steps}
    counts = {}

    def watch(step, outputs):
        inner = watched.get(id(step.operation))
        if inner is None:
            return
        value = ops.convert_to_numpy(outputs[0])
        on = (value > 0).reshape(-1, value.shape[-1])
        total, ones = counts.get(inner.name, (0, 0))
        counts[inner.name] = (total + on.shape[0], ones + on.sum(axis=0))

    for batch in data.input_batches(batch_size):
        run_graph(model, steps, batch, watch)
    return {name: ones / total for name, (total, ones) in counts.items()}


def binary_entropy(p):
    """H(p) in bits, elementwise, with H(0) = H(1) = 0."""
    p = np.clip(np.asarray(p, np.float64), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    return np.nan_to_num(h, nan=0.0)


def layer_entropy(model, data, batch_size=256):
    """{layer name: mean binary entropy (bits) of its ReLU units over `data`}.

    0 for a layer whose units are each always on or always off; 1 when every
    unit is on for exactly half the samples. Layers without a ReLU are absent.

    Args:
        model: A Functional or Sequential model (plain or wrapped).
        data: Input samples (an array, or one array per input).
        batch_size: Samples per forward pass.
    """
    return {name: float(np.mean(binary_entropy(p)))
            for name, p in relu_states(model, data, batch_size).items()}
