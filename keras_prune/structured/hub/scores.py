"""Importance of heads, units and channels of keras_hub models, and of whole blocks.

- "l1": the mean |weight| of every kernel slice that writes or reads the channel,
  each kernel's scores divided by their mean so that no kernel dominates.
- "activation": the mean |input| that the channel feeds into the layers that read
  it (the attention output projection for heads, the down projection for units),
  over calibration batches, as Minitron (arXiv 2407.14679) scores them.
- Block Influence (ShortGPT, arXiv 2403.03853): 1 - cos(block input, block output),
  averaged over tokens; a block that barely changes its input goes first.
"""

import re

import keras
import numpy as np

from keras_prune._data import samples
from keras_prune._models.hooks import hooked
from keras_prune._views.kernels import kernel_owners
from keras_prune.structured.hub.axes import fold_fused


def _run(hub, data):
    for batch in samples(hub.model, data).batches(8):
        hub.model(batch, training=False)


def input_axis(layer, kernel_axis, ndim):
    """The axis of the layer's input that a kernel axis reads, or None if it writes."""
    if isinstance(layer, keras.layers.EinsumDense):
        spec = re.sub(r"\.\.\.", "", layer.equation.replace(" ", ""))
        inputs, rest = spec.split(",")
        kernel = rest.split("->")[0]
        letter = kernel[kernel_axis]
        if letter not in inputs:
            return None
        if "..." in layer.equation.split(",")[0]:
            return inputs.index(letter) - len(inputs)  # counted from the end
        return inputs.index(letter)
    if kernel_axis == 0 and ndim == 2:  # Dense: kernel (in, out)
        return -1
    return None


def weight_scores(hub, labels, kind, block):
    """Mean |weight| per channel over every kernel slice of `kind` in `block`."""
    weights = hub.model.weights
    total = None
    pairs = [(i, a) for i, a in labels.of_kind(kind, block) if len(weights[i].shape) >= 2]
    pairs = pairs or labels.of_kind(kind, block)
    for index, axis in pairs:
        value = np.abs(np.asarray(keras.ops.convert_to_numpy(weights[index]), np.float64))
        scores = np.moveaxis(value, axis, 0).reshape(value.shape[axis], -1).mean(axis=1)
        scores = fold_fused(labels, index, axis, scores)
        scores = scores / max(scores.mean(), 1e-12)
        total = scores if total is None else total + scores
    if block is None:  # the parts of concatenated axes that hold `kind`
        for index, axis, offset in labels.segments_of(kind):
            value = np.abs(np.asarray(keras.ops.convert_to_numpy(weights[index]), np.float64))
            part = np.take(value, np.arange(offset, offset + len(total)), axis=axis)
            scores = np.moveaxis(part, axis, 0).reshape(len(total), -1).mean(axis=1)
            total = total + scores / max(scores.mean(), 1e-12)
    return total


class ActivationRecorder:
    """Mean |input| per channel of every layer that reads a labelled kernel axis."""

    def __init__(self, hub, labels):
        self.hub = hub
        self.labels = labels
        by_kernel = kernel_owners(hub.model)
        self.readers = {}  # id(layer) -> (layer, [(kind, block, input axis)])
        for index, axes in labels.axes.items():
            variable = hub.model.weights[index]
            layer = by_kernel.get(id(variable))
            if layer is None:
                continue
            for axis, kind in axes.items():
                axis_in = input_axis(layer, axis, len(variable.shape))
                if axis_in is not None and (index, axis) not in labels.fused:
                    entry = self.readers.setdefault(id(layer), (layer, []))
                    entry[1].append((kind, labels.blocks[index], axis_in))
        self.sums = {}
        self.counts = {}

    def _record(self, layer, args, kwargs, output):
        inputs = args[0] if args else next(iter(kwargs.values()))
        x = np.abs(np.asarray(keras.ops.convert_to_numpy(inputs), np.float64))
        for kind, block, axis in self.readers[id(layer)][1]:
            moved = np.moveaxis(x, axis, -1)
            mean = moved.reshape(-1, moved.shape[-1]).mean(axis=0)
            key = (kind, block, id(layer))
            self.sums[key] = self.sums.get(key, 0.0) + mean
            self.counts[key] = self.counts.get(key, 0) + 1

    def run(self, data):
        layers = [layer for layer, _ in self.readers.values()]
        with hooked(layers, self._record):
            _run(self.hub, data)
        return self

    def scores(self, kind, block):
        """The summed, per-layer-normalized mean |input| per channel, or None if unread."""
        total = None
        for key, value in self.sums.items():
            k, b, _ = key
            if k != kind or (block is not None and b != block):
                continue
            mean = value / self.counts[key]
            mean = mean / max(mean.mean(), 1e-12)
            total = mean if total is None else total + mean
        return total


def router_mass(hub, labels, data):
    """{block: the share of the router's probability each expert receives}, averaged
    over the calibration tokens; the routers are the Dense layers whose kernel's output
    axis holds the experts."""
    by_kernel = kernel_owners(hub.model)
    routers = {}
    for index, labelled in labels.axes.items():
        variable = hub.model.weights[index]
        layer = by_kernel.get(id(variable))
        if (isinstance(layer, keras.layers.Dense) and len(variable.shape) == 2
                and labelled.get(1) == "experts"):
            routers[id(layer)] = (layer, labels.blocks[index])
    sums, counts = {}, {}

    def record(layer, args, kwargs, output):
        logits = np.asarray(keras.ops.convert_to_numpy(output), np.float64)
        logits = logits.reshape(-1, logits.shape[-1])
        probability = np.exp(logits - logits.max(axis=1, keepdims=True))
        probability /= probability.sum(axis=1, keepdims=True)
        block = routers[id(layer)][1]
        sums[block] = sums.get(block, 0.0) + probability.sum(axis=0)
        counts[block] = counts.get(block, 0) + len(probability)

    with hooked([layer for layer, _ in routers.values()], record):
        _run(hub, data)
    return {block: sums[block] / counts[block] for block in sums}


def block_influence(hub, data):
    """1 - cos(input, output) of every block, averaged over tokens (ShortGPT)."""
    sums = np.zeros(len(hub.blocks))
    counts = np.zeros(len(hub.blocks))
    position = {id(block): i for i, block in enumerate(hub.blocks)}

    def record(layer, args, kwargs, output):
        x = args[0] if args else next(iter(kwargs.values()))
        y = output[0] if isinstance(output, (tuple, list)) else output
        x = np.asarray(keras.ops.convert_to_numpy(x), np.float64)
        y = np.asarray(keras.ops.convert_to_numpy(y), np.float64)
        x, y = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
        cos = (x * y).sum(1) / np.maximum(np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1),
                                          1e-12)
        i = position[id(layer)]
        sums[i] += (1 - cos).sum()
        counts[i] += len(cos)

    with hooked(hub.blocks, record):
        _run(hub, data)
    if not counts.all():
        raise ValueError("The calibration data did not reach every transformer block.")
    return sums / counts
