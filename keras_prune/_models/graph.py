"""The Keras layer graph, read in one place.

Functional and Sequential models keep their graph in private attributes
(`_nodes_by_depth`, `_inbound_nodes`, `_outbound_nodes`, `_keras_history`,
`_functional`, `_operations`). Every walk over a model's nodes in keras_prune goes
through this module, so a Keras release that moves one of them is fixed here:

- `graph_nodes` / `NodeIndex`: a model's own nodes in topological order, with the
  node that produces each tensor and the nodes that consume it;
- `producer_of`, `inbound_nodes`, `outbound_nodes`: one tensor's or one layer's links;
- `iter_steps` / `run_graph`: the leaf operation calls with nested graph models
  expanded, and an eager run over them that shows every intermediate tensor.
"""

import dataclasses

import keras

from keras_prune._models.checks import is_graph_model


def functional_of(model):
    """The Functional graph behind `model` (a Sequential model keeps one inside)."""
    return getattr(model, "_functional", None) or model


def graph_nodes(model):
    """The nodes of `model`'s own graph (nested models not expanded), inputs first."""
    functional = functional_of(model)
    by_depth = functional._nodes_by_depth
    return [node for depth in sorted(by_depth, reverse=True) for node in by_depth[depth]]


def graph_operations(model):
    """The operations of `model`'s own graph in topological order."""
    graph = functional_of(model) if isinstance(model, keras.Sequential) else model
    return list(getattr(graph, "_operations", None) or model.layers)


def output_structure(model):
    """The model's outputs as it returns them (a tensor, list or dict of KerasTensors)."""
    return functional_of(model)._outputs_struct


@dataclasses.dataclass
class NodeIndex:
    """A model's nodes with, per tensor id, the node that makes it and the nodes that read it."""

    nodes: list
    producer: dict  # id(tensor) -> node
    consumers: dict  # id(tensor) -> [node, ...]

    @classmethod
    def of(cls, model):
        nodes = graph_nodes(model)
        producer = {id(t): node for node in nodes for t in node.output_tensors}
        consumers = {}
        for node in nodes:
            for tensor in node.input_tensors:
                consumers.setdefault(id(tensor), []).append(node)
        return cls(nodes, producer, consumers)


def producer_of(tensor):
    """The operation that computed a symbolic tensor, or None for a plain value."""
    history = getattr(tensor, "_keras_history", None)
    return None if history is None else history.operation


def inbound_nodes(layer):
    """The calls of `layer` in the graphs it belongs to (each with `input_tensors`)."""
    return list(getattr(layer, "_inbound_nodes", ()))


def outbound_nodes(layer):
    """The calls that read an output of `layer`."""
    return list(getattr(layer, "_outbound_nodes", ()))


@dataclasses.dataclass(eq=False)
class Step:
    """One call of a leaf operation in the (nested-model-expanded) graph."""

    operation: object
    node: object
    inputs: list  # canonical KerasTensors, one per node.input_tensors entry
    outputs: list


def iter_steps(model):
    """Leaf operation calls of a graph model in topological order.

    Nested Functional/Sequential models are expanded in place: their inner
    input tensors are aliased to the outer tensors that feed them.
    """
    alias = {}

    def canon(tensor):
        while id(tensor) in alias:
            tensor = alias[id(tensor)]
        return tensor

    expanded = set()

    def walk(graph_model):
        for node in graph_nodes(graph_model):
            operation = node.operation
            if isinstance(operation, keras.layers.InputLayer):
                continue
            inputs = [canon(t) for t in node.input_tensors]
            if isinstance(operation, keras.Model) and is_graph_model(operation):
                if id(operation) not in expanded:
                    expanded.add(id(operation))
                    inner = functional_of(operation)
                    for inner_input, outer in zip(inner.inputs, inputs):
                        if inner_input is not outer:  # a Task reuses its backbone's inputs
                            alias[id(inner_input)] = outer
                    yield from walk(operation)
                    for outer, inner_output in zip(node.output_tensors, inner.outputs):
                        alias[id(outer)] = canon(inner_output)
                    continue
            yield Step(operation, node, inputs, [canon(t) for t in node.output_tensors])

    yield from walk(model)


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
