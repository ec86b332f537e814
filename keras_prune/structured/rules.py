"""Per-layer-type rules: how a layer maps channel ids and how it shrinks.

A rule answers four questions about one layer type:
- `unsupported(layer, step)`: a reason it cannot be handled in this configuration
  (e.g. channels_first), or None;
- `trace(graph, layer, step, inputs)`: the channel ids of each output, given the
  ids of each input (opening new ids with `graph.new_space` for its own channels);
- `shrink(layer, config, inputs, spaces, keep, read)`: the new config and the
  sliced weights ({id(variable): array}) once `keep(ids)` says which channels stay
  (`read(variable)` gives the array to slice);
- `channel_weights(layer, inputs, spaces, read)`: (ids, rows) pairs, one row of
  weights per channel the layer writes, for weight-based importance; `read(variable)`
  gives the array to use (the weights, or gradient x weight for Taylor).

Rules are looked up by exact layer class (`registry.py`): a subclass may compute something else, so
it gets no rule (and its channels are frozen) until it is registered with
`register_rule(MyLayer, rule)`.
"""

import keras
import numpy as np


def to_numpy(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable))


def _data_format_problem(layer):
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        return "uses data_format='channels_first' (only channels_last is supported)"
    return None


class Rule:
    """Base rule: channels pass through unchanged, no weights."""

    def unsupported(self, layer, step):
        return _data_format_problem(layer)

    def trace(self, graph, layer, step, inputs):
        return [inputs[0]] * len(step.outputs)

    def shrink(self, layer, config, inputs, spaces, keep, read=to_numpy):
        return config, {}

    def channel_weights(self, layer, inputs, spaces, read=to_numpy):
        return []


class PassThrough(Rule):
    """Activations, dropout, padding, cropping, pooling, global pooling."""


class _Activation(Rule):
    def unsupported(self, layer, step):
        name = getattr(layer.activation, "__name__", "")
        if name in ("softmax", "log_softmax"):
            return f"applies {name} across channels"
        return None


class _Rescaling(Rule):
    def unsupported(self, layer, step):
        if np.ndim(layer.scale) or np.ndim(layer.offset):
            return "has per-channel scale or offset"
        return None


class ChannelWise(Rule):
    """Layers with one value per channel in each of `weights` (last axis)."""

    def __init__(self, weights):
        self.weights = weights

    def unsupported(self, layer, step):
        axis = getattr(layer, "axis", -1)
        axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
        rank = len(step.inputs[0].shape)
        if [a % rank for a in axes] != [rank - 1]:
            return f"normalizes over axis={axis}, not only the channel axis"
        return None

    def shrink(self, layer, config, inputs, spaces, keep, read=to_numpy):
        mask = keep(inputs[0])
        new = {}
        for name in self.weights:
            variable = getattr(layer, name, None)
            if variable is not None and variable.shape and variable.shape[-1] == len(mask):
                new[id(variable)] = read(variable)[..., mask]
        return config, new


class _PReLU(ChannelWise):
    def unsupported(self, layer, step):
        return None


class Merge(Rule):
    """Add, Subtract, Multiply, Average, Maximum, Minimum: inputs share channels."""

    def unsupported(self, layer, step):
        widths = {t.shape[-1] for t in step.inputs} - {1}
        if len(widths) > 1:
            return f"merges inputs of different widths {sorted(widths)}"
        return None

    def trace(self, graph, layer, step, inputs):
        full = [ids for ids in inputs if len(ids) == max(len(i) for i in inputs)]
        for other in full[1:]:
            graph.tie(full[0], other)
        return [full[0]]


class _Concatenate(Merge):
    def _on_channels(self, layer, step):
        rank = len(step.outputs[0].shape)
        return layer.axis % rank == rank - 1

    def unsupported(self, layer, step):
        return None if self._on_channels(layer, step) else super().unsupported(layer, step)

    def trace(self, graph, layer, step, inputs):
        if self._on_channels(layer, step):
            return [np.concatenate(inputs)]
        return super().trace(graph, layer, step, inputs)


def _spatial_size(shape):
    size = 1
    for dim in shape[1:-1]:
        size *= dim
    return size


class _Flatten(Rule):
    """Channels-last flattening: position s, channel c lands at s * C + c."""

    def unsupported(self, layer, step):
        if any(dim is None for dim in step.inputs[0].shape[1:]):
            return "flattens an input of unknown size"
        return _data_format_problem(layer)

    def trace(self, graph, layer, step, inputs):
        return [np.tile(inputs[0], _spatial_size(step.inputs[0].shape))]


class _Reshape(_Flatten):
    def unsupported(self, layer, step):
        before, after = step.inputs[0].shape, step.outputs[0].shape
        if after[-1] == before[-1] or len(after) == 2:
            return super().unsupported(layer, step)
        return f"reshapes the channel axis ({before[1:]} -> {after[1:]})"

    def trace(self, graph, layer, step, inputs):
        if step.outputs[0].shape[-1] == step.inputs[0].shape[-1]:
            return [inputs[0]]
        return super().trace(graph, layer, step, inputs)

    def shrink(self, layer, config, inputs, spaces, keep, read=to_numpy):
        target = list(config["target_shape"])
        if target[-1] != -1:  # the last dimension is C, or positions x C when flattening
            target[-1] = int(keep(inputs[0]).sum()) * (target[-1] // len(inputs[0]))
        return {**config, "target_shape": tuple(target)}, {}


def quantized_problem(layer):
    if getattr(layer, "lora_enabled", False):
        return "has LoRA weights enabled"
    if getattr(getattr(layer, "dtype_policy", None), "quantization_mode", None):
        return "is quantized"
    return None


class Producer(Rule):
    """A layer whose output width is a config value: Dense, Conv, Embedding, ...

    `width` names the config key; `out_axis`/`in_axis` locate the output and input
    channels in `kernel` (negative axes).
    """

    kind = "units"
    width = "units"
    kernel = "kernel"
    out_axis = -1
    in_axis = -2

    def unsupported(self, layer, step):
        return quantized_problem(layer) or _data_format_problem(layer)

    def trace(self, graph, layer, step, inputs):
        space = graph.new_space(layer, getattr(layer, self.width), self.kind)
        if getattr(getattr(layer, "activation", None), "__name__", "") in ("softmax", "log_softmax"):
            graph.freeze(space.ids, f"belongs to `{layer.name}`, whose softmax mixes channels")
        return [space.ids] * len(step.outputs)

    def shrink(self, layer, config, inputs, spaces, keep, read=to_numpy):
        kernel = getattr(layer, self.kernel)
        weights = read(kernel)
        out_keep = keep(spaces[self.kind].ids)
        weights = np.compress(out_keep, weights, axis=self.out_axis)
        if self.in_axis is not None:
            weights = np.compress(keep(inputs[0]), weights, axis=self.in_axis)
        new = {id(kernel): weights}
        bias = getattr(layer, "bias", None)
        if bias is not None:
            new[id(bias)] = read(bias)[out_keep]
        return {**config, self.width: int(out_keep.sum())}, new

    def channel_weights(self, layer, inputs, spaces, read=to_numpy):
        weights = np.moveaxis(read(getattr(layer, self.kernel)), self.out_axis, 0)
        rows = weights.reshape(weights.shape[0], -1)
        bias = getattr(layer, "bias", None)
        if bias is not None:
            rows = np.concatenate([rows, read(bias)[:, None]], axis=1)
        return [(spaces[self.kind].ids, rows)]


class _Conv(Producer):
    kind = "filters"
    width = "filters"

    def unsupported(self, layer, step):
        if getattr(layer, "groups", 1) != 1:
            return f"is a grouped convolution (groups={layer.groups})"
        return super().unsupported(layer, step)


class _ConvTranspose(_Conv):
    out_axis = -2
    in_axis = -1


class _Embedding(Producer):
    kind = "output_dim"
    width = "output_dim"
    kernel = "embeddings"
    in_axis = None


class _Depthwise(Rule):
    """Each input channel gets `depth_multiplier` filters of its own: out c*m + j."""

    def unsupported(self, layer, step):
        return quantized_problem(layer) or _data_format_problem(layer)

    def trace(self, graph, layer, step, inputs):
        return [np.repeat(inputs[0], layer.depth_multiplier)]

    def shrink(self, layer, config, inputs, spaces, keep, read=to_numpy):
        mask = keep(inputs[0])
        new = {id(layer.kernel): read(layer.kernel)[..., mask, :]}
        if layer.bias is not None:
            bias = read(layer.bias).reshape(len(mask), -1)
            new[id(layer.bias)] = bias[mask].reshape(-1)
        return config, new

    def channel_weights(self, layer, inputs, spaces, read=to_numpy):
        kernel = read(layer.kernel)  # (*k, in, m)
        rows = np.moveaxis(kernel, (-2, -1), (0, 1)).reshape(kernel.shape[-2] * kernel.shape[-1], -1)
        if layer.bias is not None:
            rows = np.concatenate([rows, read(layer.bias)[:, None]], axis=1)
        return [(np.repeat(inputs[0], layer.depth_multiplier), rows)]


class _Separable(_Conv):
    """Depthwise (per input channel) then a pointwise kernel to `filters`."""

    kernel = "pointwise_kernel"
    in_axis = None

    def shrink(self, layer, config, inputs, spaces, keep, read=to_numpy):
        config, new = super().shrink(layer, config, inputs, spaces, keep, read)
        mask = keep(inputs[0])
        repeated = np.repeat(mask, layer.depth_multiplier)
        pointwise = id(layer.pointwise_kernel)
        new[pointwise] = np.compress(repeated, new[pointwise], axis=-2)
        new[id(layer.depthwise_kernel)] = read(layer.depthwise_kernel)[..., mask, :]
        return config, new


PASS = PassThrough()
DENSE = Producer()
CONV = _Conv()
CONV_TRANSPOSE = _ConvTranspose()
DEPTHWISE = _Depthwise()
SEPARABLE = _Separable()
EMBEDDING = _Embedding()
MERGE = Merge()
BATCH_NORM = ChannelWise(("gamma", "beta", "moving_mean", "moving_variance"))
LAYER_NORM = ChannelWise(("gamma", "beta"))
ACTIVATION = _Activation()
RESCALING = _Rescaling()
PRELU = _PReLU(("alpha",))
CONCATENATE = _Concatenate()
FLATTEN = _Flatten()
RESHAPE = _Reshape()
