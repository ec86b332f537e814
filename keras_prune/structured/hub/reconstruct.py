"""Retraining-free repair after removing heads or units: re-fit the layers that read them.

A layer that reads pruned channels (the down projection for units, the attention
output projection for heads) computes X W on the calibration inputs X. With only
the kept channels K it can still come close: W' = argmin ||X W - X_K W'||^2, a
least-squares problem solved from X^T X (with a ones column, when the layer has a
bias, so the bias absorbs what the removed channels contributed on average, as FLAP
arXiv 2312.11983 compensates it). ZipLM (arXiv 2302.04089) does the same with OBS.
"""

import keras
import numpy as np

from keras_prune._data import samples
from keras_prune._models.hooks import hooked
from keras_prune._views.kernels import kernel_owners, view_of
from keras_prune.structured.hub import axes
from keras_prune.structured.hub.scores import input_axis

_RIDGE = 1e-4  # relative to the mean of diag(X_K^T X_K): keeps the solve well posed


class Reader:
    """One layer that reads pruned heads or units, and which of its inputs survive."""

    def __init__(self, index, layer, view, kept):
        self.index = index  # of its kernel in the model's weights
        self.layer = layer
        self.view = view
        self.kept = kept  # flat indices of the kept inputs, in the view's input order
        self.gram = 0.0  # [X, 1]^T [X, 1] over the calibration rows
        self.bias_index = None


def find_readers(hub, labels, keep):
    """Readers of per-block heads and units, with the flat indices of their kept inputs."""
    weights = hub.model.weights
    by_kernel = kernel_owners(hub.model)
    position = {id(v): i for i, v in enumerate(weights)}
    readers = []
    for index, labelled in labels.axes.items():
        layer = by_kernel.get(id(weights[index]))
        if layer is None:
            continue
        view, _ = view_of(layer)
        shape = tuple(weights[index].shape)
        reading = {axis: kind for axis, kind in labelled.items()
                   if (axes.is_units(kind) or kind == axes.HEADS)
                   and (index, axis) not in labels.fused
                   and input_axis(layer, axis, len(shape)) is not None}
        if view is None or not reading:
            continue
        order = view.input_axes(len(shape))
        mask = np.ones([shape[a] for a in order], dtype=bool)
        for position_in_order, axis in enumerate(order):
            kind = reading.get(axis)
            if kind is None:
                continue
            kept_axis = np.zeros(shape[axis], dtype=bool)
            kept_axis[keep[(kind, labels.blocks[index])]] = True
            index_tuple = [None] * len(order)
            index_tuple[position_in_order] = slice(None)
            mask &= kept_axis[tuple(index_tuple)]
        reader = Reader(index, layer, view, np.flatnonzero(mask.reshape(-1)))
        bias = getattr(layer, "bias", None)
        if bias is not None and len(bias.shape) == 1:
            reader.bias_index = position[id(bias)]
        readers.append(reader)
    return readers


def measure(hub, readers, data):
    """Accumulates each reader's [X, 1]^T [X, 1] on the calibration data."""
    by_layer = {id(r.layer): r for r in readers}

    def record(layer, args, kwargs, output):
        reader = by_layer[id(layer)]
        x = args[0] if args else next(iter(kwargs.values()))
        rows = reader.view.rows(np.asarray(keras.ops.convert_to_numpy(x), np.float64))
        rows = np.concatenate([rows, np.ones((len(rows), 1))], axis=1)
        reader.gram = reader.gram + rows.T @ rows

    with hooked([r.layer for r in readers], record):
        for batch in samples(hub.model, data).batches(8):
            hub.model(batch, training=False)


def refit(hub, labels, keep, readers, new_model):
    """Overwrites each reader's kernel (and bias) in `new_model` with the least-squares fit."""
    old, new = hub.model.weights, new_model.weights
    for reader in readers:
        if isinstance(reader.gram, float):
            raise ValueError(f"The calibration data never reached `{reader.layer.name}`.")
        kernel = np.asarray(keras.ops.convert_to_numpy(old[reader.index]), np.float64)
        matrix = reader.view.to_matrix(kernel)  # (out, in)
        fan_in = matrix.shape[1]
        use_bias = reader.bias_index is not None
        columns = np.concatenate([reader.kept, [fan_in]]) if use_bias else reader.kept
        gram = reader.gram[np.ix_(columns, columns)]
        gram[np.diag_indices(len(columns))] += _RIDGE * np.mean(np.diag(gram))
        target = reader.gram[columns, :fan_in] @ matrix.T  # X_K^T (X W)
        solution = np.linalg.solve(gram, target)  # (|K| (+1), out)
        refitted = np.zeros_like(matrix)
        refitted[:, reader.kept] = solution[:len(reader.kept)].T
        value = reader.view.from_matrix(refitted, kernel.shape)  # the old layout, then cut
        new[reader.index].assign(axes.surviving(labels, keep, reader.index, value).astype("float32"))
        if use_bias:
            bias = np.asarray(keras.ops.convert_to_numpy(old[reader.bias_index])) + solution[-1]
            new[reader.bias_index].assign(
                axes.surviving(labels, keep, reader.bias_index, bias).astype("float32"))
