"""Where the int8 tensors of a model go: decided from its graph, before any copy.

For each layer: which `QuantizeConfig` (the default scheme's, or an annotation's), if
its output needs a range of its own (not when TFLite fuses it into the next op:
conv -> BatchNorm -> ReLU, Add -> ReLU), and how many of its inputs it must quantize
(model inputs, and tensors coming from layers left in float or `keras.ops` nodes).
Nested graph models are inlined.
"""

import dataclasses

import keras

from keras_prune import _models
from keras_prune._models.graph import graph_operations, inbound_nodes, outbound_nodes, producer_of
from keras_prune.quantization import configs
from keras_prune.quantization.wrapper import QuantizeAnnotate


@dataclasses.dataclass
class _Plan:
    layers: dict  # id(layer) -> (QuantizeConfig, number of input quantizers)
    float_layers: list
    float_ops: list
    standalone_batchnorms: set = dataclasses.field(default_factory=set)  # ids: no conv before


def _consumers(layer, members):
    return [node.operation for node in outbound_nodes(layer) if id(node.operation) in members]


def _producers(layer):
    return [producer_of(tensor) for node in inbound_nodes(layer) for tensor in node.input_tensors]


def make_plan(model, per_channel=True):
    """Decides, from the graph of `model`, what each layer quantizes (see module doc)."""
    operations = _graph_operations(model)
    members = {id(op) for op in operations}
    annotated_mode = any(isinstance(op, QuantizeAnnotate) for op in operations)
    bare = {id(op): (op.layer if isinstance(op, QuantizeAnnotate) else op) for op in operations}
    outputs = {id(producer_of(t)) for t in _all_outputs(model)}
    float_layers, float_ops = [], []

    def selected(op):
        if isinstance(op, keras.layers.InputLayer) or isinstance(op, keras.Model):
            return False
        if annotated_mode and not isinstance(op, QuantizeAnnotate):
            return False
        return True

    def custom_config(op):
        return op.quantize_config if isinstance(op, QuantizeAnnotate) else None

    def fuses_into_next(op):
        layer = bare[id(op)]
        if id(op) in outputs or custom_config(op) is not None:
            return False
        after = _consumers(op, members)
        if len(after) != 1 or not selected(after[0]) or custom_config(after[0]) is not None:
            return False
        following = bare[id(after[0])]
        if configs.kernel_kind(layer) is not None and configs.linear_activation(layer):
            if isinstance(following, keras.layers.BatchNormalization):
                return configs.is_convolution(layer)
            return configs.is_fusable_relu(following)
        if isinstance(layer, keras.layers.BatchNormalization) and is_fused.get(id(layer)):
            return configs.is_fusable_relu(following)
        if isinstance(layer, keras.layers.Add):
            return configs.is_fusable_relu(following)
        return False

    aliases = _nested_aliases(operations)

    def resolve(op):
        """The operation whose output `op`'s output is: through nested models' inputs
        and outputs (a nested model is inlined, not a quantization boundary)."""
        while id(op) in aliases:
            op = aliases[id(op)]
        return op

    is_fused, standalone = {}, set()
    planned, quantized = {}, set()  # quantized: ids of ops whose output is an int8 tensor
    for op in operations:  # _graph_operations keeps the graph's topological order
        layer = bare[id(op)]
        if not isinstance(op, keras.layers.Layer):
            float_ops.append(getattr(op, "name", type(op).__name__))
            continue
        if not selected(op):
            continue
        config = custom_config(op)
        if config is None and not configs.supported(layer):
            float_layers.append((layer.name, _why_float(layer)))
            continue
        producers = _producers(op)
        unquantized_inputs = [p for p in producers if id(resolve(p)) not in quantized]
        inputs = len(producers) if unquantized_inputs else 0
        if config is None and isinstance(layer, configs.PASS_THROUGH):
            if producers:  # its inputs are int8 already, or it quantizes them
                quantized.add(id(op))
            if inputs:
                planned[id(op)] = (configs.Default8BitQuantizeConfig([], "per_tensor", False),
                                   inputs)
            continue
        if (config is None and isinstance(layer, keras.layers.BatchNormalization)
                and not is_fused.get(id(layer))):
            standalone.add(id(op))
        if config is None:
            fused = fuses_into_next(op)
            if fused:
                is_fused[id(bare[id(_consumers(op, members)[0])])] = True
            config = configs.Default8BitQuantizeConfig.for_layer(layer, not fused, per_channel)
        planned[id(op)] = (config, inputs)
        quantized.add(id(op))
    return _Plan(planned, float_layers, float_ops, standalone)


def _nested_aliases(operations):
    """{id(op): op it stands for}: a nested graph model's InputLayer stands for the
    outer tensor's producer, the nested model itself for its (single) output's."""
    aliases = {}
    for op in operations:
        if not (isinstance(op, keras.Model) and inbound_nodes(op)):
            continue
        outer = [producer_of(t) for t in inbound_nodes(op)[0].input_tensors]
        inner = [producer_of(t) for t in keras.tree.flatten(op.inputs)]
        for layer, producer in zip(inner, outer):
            if producer is not None:
                aliases[id(layer)] = producer
        outputs = keras.tree.flatten(op.outputs)
        if len(outputs) == 1:
            aliases[id(op)] = producer_of(outputs[0])
    return aliases


def _why_float(layer):
    if isinstance(layer, keras.layers.SeparableConv1D | keras.layers.SeparableConv2D):
        return ("the default scheme has no rule for the tensor between its depthwise and "
                "pointwise parts: build it as DepthwiseConv2D + Conv2D(1x1)")
    if layer.weights:
        return (f"{type(layer).__name__} has no default int8 rule: annotate it with a "
                "QuantizeConfig (quantize_annotate_layer) to quantize it")
    return f"{type(layer).__name__} is not a known int8 op"


def _graph_operations(model):
    """The operations of `model`'s graph in topological order, nested graph models
    inlined (their own inputs included)."""
    found = []
    for op in graph_operations(model):
        if isinstance(op, keras.Model) and (_models.is_graph_model(op)
                                            or isinstance(op, keras.Sequential)):
            found += [op] + _graph_operations(op)  # the model: see _nested_aliases
        else:
            found.append(op)
    return found


def _all_outputs(model):
    return [t for t in keras.tree.flatten(model.outputs) if producer_of(t) is not None]
