"""Residual block removal: `y = x + f(x)` becomes `y = x` for the least important blocks."""

import dataclasses

import keras
import numpy as np

from keras_prune import _models
from keras_prune._data import samples
from keras_prune._models.graph import NodeIndex, iter_steps, producer_of, run_graph
from keras_prune._validation import check_int
from keras_prune.structured.graph import check_graph_model
from keras_prune.structured.rebuild import count_flops, rebuild
from keras_prune.structured.results import StructuredReport
from keras_prune.structured.rules import to_numpy


@dataclasses.dataclass(eq=False)
class ResidualBlock:
    """An Add whose one input is the skip `x` and whose other is a branch f(x).

    Every layer of the branch depends on `x` alone and feeds only the branch, so
    dropping it leaves a valid model. `name` is the Add layer's name.
    """

    name: str
    layers: list  # branch layer names, input to output
    skip: object = dataclasses.field(repr=False)
    branch_output: object = dataclasses.field(repr=False)
    output: object = dataclasses.field(repr=False)
    score: float | None = None


def find_residual_blocks(model):
    """The removable residual blocks of a Functional model's top-level graph."""
    check_graph_model(model)
    index = NodeIndex.of(model)
    nodes, producer, consumers = index.nodes, index.producer, index.consumers
    outputs = {id(t) for t in keras.tree.flatten(model.outputs)}
    blocks = []
    for node in nodes:
        if type(node.operation) is not keras.layers.Add or len(node.input_tensors) != 2:
            continue
        for skip, end in (node.input_tensors, node.input_tensors[::-1]):
            branch = _branch(skip, end, producer, consumers, node, outputs)
            if branch:
                blocks.append(ResidualBlock(
                    name=node.operation.name,
                    layers=[n.operation.name for n in nodes if id(n) in branch],
                    skip=skip, branch_output=end, output=node.output_tensors[0],
                ))
                break
    return blocks


def _branch(skip, end, producer, consumers, add_node, outputs):
    """{id(node): node} computing `end` from `skip` alone, or None if not a clean branch."""
    branch, stack = {}, [end]
    while stack:
        tensor = stack.pop()
        if tensor is skip:
            continue
        node = producer.get(id(tensor))
        if node is None or isinstance(node.operation, keras.layers.InputLayer):
            return None  # reaches another input: the branch does not depend on x alone
        if id(node) not in branch:
            branch[id(node)] = node
            stack.extend(node.input_tensors)
    if not branch:
        return None
    for node in branch.values():  # the branch must feed nothing but itself and the Add
        for tensor in node.output_tensors:
            if id(tensor) in outputs:
                return None
            for consumer in consumers.get(id(tensor), []):
                if consumer is not add_node and id(consumer) not in branch:
                    return None
    return branch


def _weight_score(model, block):
    """Mean effective output scale of the branch's last layer.

    BatchNormalization: |gamma| / sqrt(moving_variance + epsilon); otherwise the
    mean |weight| of the last layer that has weights.
    """
    last = producer_of(block.branch_output)
    if isinstance(last, keras.layers.BatchNormalization) and last.gamma is not None:
        scale = np.abs(to_numpy(last.gamma)) / np.sqrt(to_numpy(last.moving_variance) + last.epsilon)
        return float(scale.mean())
    for name in reversed(block.layers):
        weights = model.get_layer(name).get_weights()
        if weights:
            return float(np.mean(np.abs(weights[0])))
    return 0.0


def _activation_scores(model, blocks, data):
    """Mean over samples of ||f(x)|| / ||x||: how much each branch changes its input."""
    data = samples(model, data)
    steps = list(iter_steps(model))
    wanted = {}
    for index, block in enumerate(blocks):
        wanted.setdefault(id(block.skip), []).append((index, "skip"))
        wanted.setdefault(id(block.branch_output), []).append((index, "branch"))
    norms = [{"skip": [], "branch": []} for _ in blocks]

    def watch(step, outputs):
        for tensor, value in zip(step.outputs, outputs):
            for index, role in wanted.get(id(tensor), ()):
                value = np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float64)
                norms[index][role].append(np.linalg.norm(value.reshape(len(value), -1), axis=1))

    for batch in samples(model, data).input_batches(32):
        run_graph(model, steps, batch, watch)
    scores = []
    for entry in norms:
        skip, branch = np.concatenate(entry["skip"]), np.concatenate(entry["branch"])
        scores.append(float(np.mean(branch / np.maximum(skip, 1e-12))))
    return scores


def remove_residual_blocks(model, count=1, *, blocks=None, importance="l1", data=None):
    """Drops residual blocks of a graph model; `keras_prune.structured.remove_blocks` documents it."""
    check_graph_model(model)
    found = find_residual_blocks(model)
    by_name = {block.name: block for block in found}
    if blocks is not None:
        missing = [name for name in blocks if name not in by_name]
        if missing:
            raise ValueError(
                f"Argument `blocks` names {missing}, which are not removable residual blocks. "
                f"Removable: {sorted(by_name)[:10]}{' ...' if len(by_name) > 10 else ''}."
            )
        chosen = [by_name[name] for name in blocks]
    else:
        check_int("count", count, minimum=0)
        if count > len(found):
            raise ValueError(
                f"Argument `count` must be at most the number of removable residual blocks "
                f"({len(found)}). Received: count={count}."
            )
        if importance == "activation":
            if data is None:
                raise ValueError("importance='activation' needs `data`: a batch of inputs.")
            scores = _activation_scores(model, found, data)
        elif importance == "l1":
            scores = [_weight_score(model, block) for block in found]
        else:
            raise ValueError(
                "Argument `importance` must be 'l1' or 'activation' for block removal. "
                f"Received: importance={importance!r}."
            )
        for block, score in zip(found, scores):
            block.score = score
        chosen = sorted(found, key=lambda b: b.score)[:count]
    bypass = {id(block.output): block.skip for block in chosen}
    copier = _models.LayerCopier(model)  # copies Lambda and custom layers too
    new_model, _ = rebuild(model, copier.copy, bypass=bypass)
    _models.load_copied_weights(copier)
    report = StructuredReport(
        layers=[], params_before=model.count_params(), params_after=new_model.count_params(),
        flops_before=count_flops(model), flops_after=count_flops(new_model), frozen=[],
        blocks=[(block.name, block.layers) for block in chosen],
    )
    return new_model, report
