"""Quantization-aware training (QAT) for Keras 3, keeping a pruned model's zeros.

tfmot's names (`quantize_model`, `quantize_annotate_layer`, `quantize_apply`,
`QuantizeConfig`, `quantize_scope`) on every Keras backend; the result converts to
a fully int8 LiteRT file with `keras_prune.tflite.convert(model, path, quantize="int8")`,
without representative data.
"""

from keras_prune.quantization import keras  # noqa: E402 (tfmot's quantization.keras names)
from keras_prune.quantization.apply import (
    Default8BitPrunePreserveQuantizeScheme,
    Default8BitQuantizeScheme,
    QuantizationReport,
    quantize_annotate_layer,
    quantize_annotate_model,
    quantize_apply,
    quantize_model,
    quantize_scope,
)
from keras_prune.quantization.configs import Default8BitQuantizeConfig, QuantizeConfig
from keras_prune.quantization.quantizers import (
    FixedQuantizer,
    LastValueQuantizer,
    MovingAverageQuantizer,
    Quantizer,
)
from keras_prune.quantization.wrapper import QuantizeAnnotate, QuantizeWrapper

__all__ = [
    "Default8BitPrunePreserveQuantizeScheme",
    "Default8BitQuantizeConfig",
    "Default8BitQuantizeScheme",
    "FixedQuantizer",
    "LastValueQuantizer",
    "MovingAverageQuantizer",
    "QuantizationReport",
    "QuantizeAnnotate",
    "QuantizeConfig",
    "QuantizeWrapper",
    "Quantizer",
    "keras",
    "quantize_annotate_layer",
    "quantize_annotate_model",
    "quantize_apply",
    "quantize_model",
    "quantize_scope",
]
