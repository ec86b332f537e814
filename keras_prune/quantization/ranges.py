"""What a QAT model has learned: which layers are quantized, and their output ranges.

Used by `keras_prune.tflite.convert` to convert without representative data and to
check the LiteRT file against the Keras model to the output's quantization step.
"""

import numpy as np

from keras_prune._arrays import to_numpy
from keras_prune._models import flatten_layers
from keras_prune._models.graph import inbound_nodes, producer_of
from keras_prune.quantization import configs
from keras_prune.quantization.wrapper import QuantizeWrapper


def quantize_wrappers(model):
    return [layer for layer in flatten_layers(model) if isinstance(layer, QuantizeWrapper)]


def is_quantization_aware(model):
    """True when `model` has fake-quantizing layers (made by `quantize_model`/`quantize_apply`)."""
    return bool(quantize_wrappers(model))


def untrained_ranges(model):
    """Names of wrappers whose activation ranges never saw a training batch."""
    names = []
    for wrapper in quantize_wrappers(model):
        for _, variables in wrapper._output_quantizers + wrapper._input_quantizers:
            if "batches" in variables and float(to_numpy(variables["batches"])) == 0.0:
                names.append(wrapper.name)
                break
    return names


def output_steps(model):
    """Per model output, the int8 quantization step of its learned range (None where
    the output is not fake-quantized, e.g. it comes from a layer left in float)."""
    steps = []
    for tensor in model.outputs:
        operation = producer_of(tensor)
        while isinstance(operation, configs.PASS_THROUGH) and inbound_nodes(operation):
            inputs = inbound_nodes(operation)[0].input_tensors
            operation = producer_of(inputs[0]) if len(inputs) == 1 else None
        step = None
        if isinstance(operation, QuantizeWrapper) and operation._output_quantizers:
            quantizer, variables = operation._output_quantizers[0]
            if "min" in variables:
                low = float(np.min(to_numpy(variables["min"])))
                high = float(np.max(to_numpy(variables["max"])))
                step = (high - low) / (2 ** quantizer.num_bits - 1)
        steps.append(step)
    return steps
