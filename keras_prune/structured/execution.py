"""Running a graph model eagerly, layer by layer, on sample data (for data-based
importance criteria and block removal): every intermediate tensor is visible."""

import keras
import numpy as np


def input_arrays(model, data):
    """`data` as a list with one array (of samples) per model input."""
    if isinstance(data, dict) or isinstance(data, (list, tuple)) and len(model.inputs) > 1:
        return keras.tree.flatten(data)
    return [data]


def batches(model, data, batch_size):
    """Lists of input arrays, `batch_size` samples at a time."""
    inputs = input_arrays(model, data)
    n = len(inputs[0])
    for start in range(0, n, batch_size):
        yield [np.asarray(x[start:start + batch_size]) for x in inputs]


def run_graph(model, steps, inputs, watch):
    """Runs `steps` (from `iter_steps(model)`) eagerly on `inputs`; calls `watch(step, outputs)`.

    Nested models are run layer by layer, so their inner tensors are visible.
    Tensors are dropped once their last consumer has run.
    """
    last_use = {}
    for index, step in enumerate(steps):
        for tensor in step.inputs:
            last_use[id(tensor)] = index
    for tensor in keras.tree.flatten(model.outputs):
        last_use[id(tensor)] = len(steps)
    values = {id(t): keras.ops.convert_to_tensor(x)
              for t, x in zip(keras.tree.flatten(model.inputs), inputs)}
    for index, step in enumerate(steps):
        feed = {id(t): values[id(c)] for t, c in zip(step.node.input_tensors, step.inputs)}
        args, kwargs = step.node.arguments.fill_in(feed)
        outputs = keras.tree.flatten(step.operation(*args, **kwargs))
        watch(step, outputs)
        for tensor, value in zip(step.outputs, outputs):
            values[id(tensor)] = value
        for tensor in step.inputs:
            if last_use.get(id(tensor)) == index:
                values.pop(id(tensor), None)
    return [values[id(t)] for t in keras.tree.flatten(model.outputs)]
