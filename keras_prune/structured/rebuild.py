"""Rebuilding a graph model with new layers, and counting its FLOPs."""

import keras
import numpy as np

from keras_prune._models import input_like, input_structure, is_graph_model
from keras_prune._models.graph import NodeIndex, graph_nodes, iter_steps, output_structure


def rebuild(model, make_layer, bypass=None):
    """A new model with the same graph, each layer replaced by `make_layer(layer)`.

    Nested graph models are rebuilt recursively (and stay nested); non-layer
    operations are reused. `bypass` maps id(tensor) -> tensor: the first tensor is
    replaced by the second (how a residual block is dropped), or -> (tensor, layer):
    replaced by `layer` applied to the second (a constant branch becomes an offset).
    Returns the model and the list of (old layer, new layer) pairs, for copying
    weights (layers given in `bypass` are not in it).
    """
    pairs = []
    cache = {}
    bypass = bypass or {}

    def new_operation(operation, shapes=None):
        if id(operation) not in cache:
            if isinstance(operation, keras.Model) and is_graph_model(operation):
                cache[id(operation)] = rebuild_model(operation, shapes)
            elif isinstance(operation, keras.layers.Layer):
                new = make_layer(operation)
                pairs.append((operation, new))
                cache[id(operation)] = new
            else:
                cache[id(operation)] = operation
        return cache[id(operation)]

    def rebuild_model(graph_model, shapes=None):
        """`shapes`: the new input shapes of a nested model (its inputs may narrow)."""
        if isinstance(graph_model, keras.Sequential):
            first = graph_model.inputs[0]
            layers = [new_operation(layer) for layer in graph_model.layers]
            shape = first.shape if shapes is None else shapes[0]
            return keras.Sequential(
                [keras.Input(batch_shape=shape, dtype=first.dtype), *layers],
                name=graph_model.name,
            )
        tensors = {}
        structure = input_structure(graph_model)
        new_shapes = iter(shapes or [None] * len(keras.tree.flatten(structure)))
        inputs = keras.tree.map_structure(
            lambda t: _new_input(t, tensors, next(new_shapes)), structure
        )
        needed = _needed_nodes(graph_model, bypass)
        for node in graph_nodes(graph_model):
            if id(node) not in needed:
                continue
            if all(id(t) in bypass for t in node.output_tensors):
                for old in node.output_tensors:
                    source, layer = _bypass_target(bypass[id(old)])
                    new = tensors[id(source)]
                    tensors[id(old)] = new if layer is None else layer(new)
                continue
            feed = {id(t): tensors[id(t)] for t in node.input_tensors}
            args, kwargs = node.arguments.fill_in(feed)
            shapes = [tuple(tensors[id(t)].shape) for t in node.input_tensors]
            outputs = keras.tree.flatten(new_operation(node.operation, shapes)(*args, **kwargs))
            for old, new in zip(node.output_tensors, outputs):
                tensors[id(old)] = new
        outputs = keras.tree.map_structure(lambda t: tensors[id(t)], output_structure(graph_model))
        return keras.Model(inputs=inputs, outputs=outputs, name=graph_model.name)

    return rebuild_model(model), pairs


def _needed_nodes(graph_model, bypass):
    """Ids of the non-input nodes the outputs depend on once `bypass` is applied.

    A bypassed node is kept (it maps its output to the bypass tensor), but what only
    fed it (the dropped branch) is not, so its layers are never built.
    """
    producer = NodeIndex.of(graph_model).producer
    needed, stack = set(), keras.tree.flatten(output_structure(graph_model))
    while stack:
        node = producer.get(id(stack.pop()))
        if node is None or id(node) in needed or isinstance(node.operation, keras.layers.InputLayer):
            continue
        needed.add(id(node))
        if all(id(t) in bypass for t in node.output_tensors):
            stack.extend(_bypass_target(bypass[id(t)])[0] for t in node.output_tensors)
        else:
            stack.extend(node.input_tensors)
    return needed


def _bypass_target(target):
    """(source tensor, layer applied to it or None) of a `bypass` value."""
    return target if isinstance(target, tuple) else (target, None)


def _new_input(tensor, tensors, shape=None):
    new = input_like(tensor, shape)
    tensors[id(tensor)] = new
    return new


def count_flops(model):
    """Floating-point operations of one forward pass of one sample (2 per multiply-add).

    Counts the layers that dominate: Dense, Conv, ConvTranspose, DepthwiseConv,
    SeparableConv, MultiHeadAttention (projections and attention products) and RNN
    layers with Keras cells (input and recurrent matmuls of every step).
    Returns None when a counted layer has an unknown (None) dimension.
    """
    total = 0
    for step in iter_steps(model):
        flops = _layer_flops(step)
        if flops is None:
            return None
        total += flops
    return int(total)


_GATES = {"SimpleRNNCell": 1, "GRUCell": 3, "LSTMCell": 4}


def _rnn_flops(layer, x):
    """Input and recurrent matmuls of every step: 2 x gates x units x (inputs + units)."""
    cells = getattr(layer.cell, "cells", [layer.cell])
    steps = x[1] if len(x) > 2 else 1
    if steps is None:
        return None
    total, features = 0, x[-1]
    for cell in cells:
        gates = _GATES.get(type(cell).__name__)
        if gates is None or not hasattr(cell, "units"):
            return 0
        total += 2 * gates * cell.units * (features + cell.units)
        features = cell.units
    return steps * total


def _prod(dims):
    out = 1
    for dim in dims:
        if dim is None:
            return None
        out *= dim
    return out


def _layer_flops(step):
    layer = step.operation
    L = keras.layers
    if not step.inputs or not step.outputs:
        return 0
    x, y = step.inputs[0].shape, step.outputs[0].shape
    if isinstance(layer, L.Dense):
        positions = _prod(y[1:-1])
        return positions and 2 * positions * x[-1] * layer.units
    if isinstance(layer, (L.DepthwiseConv1D, L.DepthwiseConv2D)):
        positions = _prod(y[1:-1])
        return positions and 2 * positions * _prod(layer.kernel_size) * y[-1]
    if isinstance(layer, (L.SeparableConv1D, L.SeparableConv2D)):
        positions = _prod(y[1:-1])
        middle = x[-1] * layer.depth_multiplier
        return positions and 2 * positions * middle * (_prod(layer.kernel_size) + layer.filters)
    if isinstance(layer, (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)):
        positions = _prod(x[1:-1])
        return positions and 2 * positions * _prod(layer.kernel_size) * x[-1] * layer.filters
    if isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D)):
        positions = _prod(y[1:-1])
        fan_in = _prod(layer.kernel_size) * x[-1] // layer.groups
        return positions and 2 * positions * fan_in * layer.filters
    if isinstance(layer, L.RNN):
        return _rnn_flops(layer, x)
    if isinstance(layer, L.Bidirectional):
        return _rnn_flops(layer.forward_layer, x) + _rnn_flops(layer.backward_layer, x)
    if isinstance(layer, (L.MultiHeadAttention, L.GroupQueryAttention)):
        query, key, value = _attention_shapes(step)
        if None in (query[1], value[1]):
            return None
    if isinstance(layer, L.MultiHeadAttention):
        heads, key_dim = layer.num_heads, layer.key_dim
        value_dim = layer.value_dim or key_dim
        width = layer._output_shape[-1] if layer._output_shape else query[-1]
        projections = (query[1] * query[-1] * key_dim + key[1] * key[-1] * key_dim
                       + value[1] * value[-1] * value_dim + query[1] * value_dim * width)
        products = query[1] * value[1] * (key_dim + value_dim)
        return 2 * heads * (projections + products)
    if isinstance(layer, L.GroupQueryAttention):
        q, kv, head = layer.num_query_heads, layer.num_key_value_heads, layer.head_dim
        gates = 2 if layer.use_gate else 1
        projections = (gates * query[1] * query[-1] * q * head
                       + (key[1] * key[-1] + value[1] * value[-1]) * kv * head
                       + query[1] * q * head * query[-1])
        products = 2 * q * query[1] * value[1] * head
        return 2 * (projections + products)
    return 0


def _attention_shapes(step):
    """(query, key, value) shapes of an attention call; the key defaults to the value."""
    shapes = [t.shape for t in step.inputs[:3]]
    return shapes[0], shapes[2] if len(shapes) > 2 else shapes[1], shapes[1]


def copy_weights(pairs, new_weights):
    """Sets each new layer's weights: `new_weights[id(old)]` or the old layer's own."""
    for old, new in pairs:
        if not old.weights:
            continue
        weights = new_weights.get(id(old))
        if weights is None:
            weights = old.get_weights()
        new.set_weights([np.asarray(w) for w in weights])
