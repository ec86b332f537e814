"""TFLite (LiteRT) export that is verified, not hoped for.

- `convert(model, path, quantize=..., sparse="auto")`: strip, convert, encode sparse
  weights only where the file gets smaller and still loads with default delegates,
  check the file in the LiteRT interpreter against Keras, write atomically.
- `inspect(path)`: every weight's op, dtype, zeros and storage; DENSIFY ops; XNNPACK's
  sparse-inference rules; sizes.
- `evaluate(path, x, y)`, `benchmark(path, num_threads=...)`.
- `BLOCK_FLOAT`, `BLOCK_INT8`: `block_size` values for `prune_low_magnitude` whose zeros
  TFLite's sparse FULLY_CONNECTED kernels read directly (no DENSIFY op).

This is the only part of keras_prune that imports TensorFlow (for conversion) or a
LiteRT runtime; both are optional extras.
"""

from keras_prune.tflite._runtime import InterpreterLoadError, load_interpreter, predict
from keras_prune.tflite.blocks import BLOCK_FLOAT, BLOCK_INT8
from keras_prune.tflite.converter import convert
from keras_prune.tflite.device import AdbDevice, parse_benchmark_output
from keras_prune.tflite.evaluation import Latency, benchmark, compare_latency, evaluate
from keras_prune.tflite.inspection import Inspection, inspect
from keras_prune.tflite.results import (
    ConversionError,
    ConversionResult,
    Verification,
    VerificationError,
)
from keras_prune.tflite.weights import TensorInfo

__all__ = [
    "AdbDevice",
    "BLOCK_FLOAT",
    "BLOCK_INT8",
    "ConversionError",
    "ConversionResult",
    "Inspection",
    "InterpreterLoadError",
    "Latency",
    "TensorInfo",
    "Verification",
    "VerificationError",
    "benchmark",
    "compare_latency",
    "convert",
    "evaluate",
    "inspect",
    "load_interpreter",
    "parse_benchmark_output",
    "predict",
]
