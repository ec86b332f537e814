"""tfmot's pruning policies: which layers `prune_low_magnitude` may wrap, and whether the
model's structure lets the pruning pay off.

`PruneForLatencyOnXNNPack` prunes only 1x1 `Conv2D` layers and checks that the model is
a chain XNNPACK can run sparse on ARM CPUs (Fast Sparse ConvNets): every input branch
starts with `ZeroPadding2D(((1, 1), (1, 1)))` and a 3x3 stride-2 "valid" `Conv2D` on 3
channels, every output branch ends at a `GlobalAveragePooling2D(keepdims=True)`, and only
layers XNNPACK's sparse path supports lie between. The rules and messages are tfmot's.
x86 CPUs with AVX never run XNNPACK sparse (`keras_prune.tflite.inspect` says so), so
the speed-up shows on a phone, not on a desktop.
"""

import abc

import keras

from keras_prune._models import is_graph_model
from keras_prune._models.graph import inbound_nodes, outbound_nodes, producer_of

_ACTIVATIONS = ("relu", "relu6", "leaky_relu", "elu", "sigmoid")


class PruningPolicy(abc.ABC):
    """Which layers of a model to prune (tfmot's class; subclass it for your own).

    Pass an instance as `prune_low_magnitude(model, pruning_policy=...)`: the model is
    checked with `ensure_model_supports_pruning`, then only layers for which
    `allow_pruning(layer)` is true are wrapped.
    """

    @abc.abstractmethod
    def allow_pruning(self, layer):
        """True when the pruning wrapper may be applied to `layer`."""

    @abc.abstractmethod
    def ensure_model_supports_pruning(self, model):
        """Raises ValueError when `model` does not suit this policy."""


class PruneForLatencyOnXNNPack(PruningPolicy):
    """Prunes only 1x1 `Conv2D` layers of a model XNNPACK can run sparse (tfmot's policy)."""

    def allow_pruning(self, layer):
        return isinstance(layer, keras.layers.Conv2D) and tuple(layer.kernel_size) == (1, 1)

    def ensure_model_supports_pruning(self, model):
        if not (isinstance(model, keras.Sequential) or is_graph_model(model)):
            raise ValueError("Subclassed models are not supported currently.")
        if not model.built:
            raise ValueError("Unbuilt models are not supported currently.")
        inputs = {id(l): l for l in (producer_of(t) for t in model.inputs) if l is not None}
        starts = _search(inputs.values(), _starts_sparse_subgraph, _consumers)
        if not starts:
            raise ValueError(
                "Could not find `Conv2D 3x3` layer with stride 2x2, `input filters == 3` and "
                "`VALID` padding and preceding `ZeroPadding2D` with `padding == 1` in all input "
                "branches of the model")
        outputs = {id(l): l for l in (producer_of(t) for t in model.outputs) if l is not None}
        ends = _search(outputs.values(), _ends_sparse_subgraph, _producers)
        if not ends:
            raise ValueError("Could not find a `GlobalAveragePooling2D` layer with "
                             "`keepdims = True` in all output branches")
        end_ids = {id(layer) for layer in ends}

        def check(layer):
            if id(layer) not in end_ids and not _supported(layer):
                raise ValueError(f"Layer {type(layer).__name__} is not supported for the "
                                 f"{type(self).__name__} pruning policy")
            return id(layer) in end_ids

        _search([c for layer in starts for c in _consumers(layer)], check, _consumers)


def _producers(layer):
    return [p for node in inbound_nodes(layer) for p in
            (producer_of(t) for t in node.input_tensors) if p is not None]


def _consumers(layer):
    found = []
    for node in outbound_nodes(layer):
        consumer = node.operation
        while isinstance(consumer, keras.Sequential) and consumer.layers:
            consumer = consumer.layers[0]
        found.append(consumer)
    return found


def _search(sources, stop, step):
    """Layers where `stop` holds, reached from `sources` along `step`; the empty list
    when some path ends (no next layer) before `stop` holds."""
    pending = list(sources)
    seen = {id(layer) for layer in pending}
    found = []
    while pending:
        layer = pending.pop()
        if stop(layer):
            found.append(layer)
            continue
        following = step(layer)
        if not following:
            return []
        for other in following:
            if id(other) not in seen:
                seen.add(id(other))
                pending.append(other)
    return found


def _padding_of(layer):
    return tuple(tuple(int(v) for v in side) for side in layer.padding)


def _padded_by(layer, amount):
    producers = _producers(layer)
    return (len(producers) == 1 and isinstance(producers[0], keras.layers.ZeroPadding2D)
            and _padding_of(producers[0]) == ((amount, amount), (amount, amount)))


def _starts_sparse_subgraph(layer):
    return (isinstance(layer, keras.layers.Conv2D)
            and not isinstance(layer, keras.layers.DepthwiseConv2D)
            and tuple(layer.kernel.shape[:3]) == (3, 3, 3) and tuple(layer.strides) == (2, 2)
            and layer.padding.lower() == "valid" and _padded_by(layer, 1))


def _ends_sparse_subgraph(layer):
    return isinstance(layer, keras.layers.GlobalAveragePooling2D) and layer.keepdims


def _supported(layer):
    """XNNPACK's sparse-path layers (its subgraph compatibility check), as tfmot lists them."""
    layers = keras.layers
    if isinstance(layer, (layers.Add, layers.Multiply, layers.ZeroPadding2D, layers.ReLU,
                          layers.LeakyReLU, layers.ELU)):
        return True
    if isinstance(layer, layers.DepthwiseConv2D):
        size, stride = tuple(layer.kernel_size), tuple(layer.strides)
        padding = layer.padding.lower()
        same = padding == "same" and stride == (1, 1)
        padded = padding == "valid" and stride == (2, 2) and _padded_by(layer, size[0] // 2)
        return (layer.depth_multiplier == 1 and tuple(layer.dilation_rate) == (1, 1)
                and size in ((3, 3), (5, 5)) and (same or padded))
    if isinstance(layer, layers.Conv2D):
        return (layer.groups == 1 and tuple(layer.dilation_rate) == (1, 1)
                and tuple(layer.kernel_size) == (1, 1) and tuple(layer.strides) == (1, 1))
    if isinstance(layer, layers.GlobalAveragePooling2D):
        return layer.keepdims
    if isinstance(layer, layers.BatchNormalization):
        axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
        return [a % 4 for a in axis] == [3]
    if isinstance(layer, layers.UpSampling2D):
        return layer.interpolation == "bilinear"
    if isinstance(layer, layers.Activation):
        return getattr(layer.activation, "__name__", "") in _ACTIVATIONS
    return False
