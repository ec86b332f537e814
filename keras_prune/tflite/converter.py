"""`convert`: Keras 3 model -> verified, quantization-ready .tflite file.

The steps live in their own modules: `inputs` (model and samples),
`tensorflow_conversion` (TensorFlow's converter and the sparse-encoding policy),
`verification` (the LiteRT check) and `results` (what comes back).
"""

import gzip
import os
import warnings

import keras
import numpy as np

from keras_prune._io import atomic_path
from keras_prune._progress import Progress
from keras_prune._validation import check_int
from keras_prune.quantization import ranges
from keras_prune.tflite import _flatbuffer
from keras_prune.tflite.inputs import (
    collect_samples,
    input_specs,
    load_model,
    needs_fixed_batch,
    random_input,
    strip_if_pruned,
    with_fixed_inputs,
)
from keras_prune.tflite.results import ConversionResult
from keras_prune.tflite.tensorflow_conversion import convert_in_subprocess, convert_tensorflow
from keras_prune.tflite.verification import verify_against_keras
from keras_prune.tflite.weights import name_weights

QUANTIZE_MODES = (None, "dynamic", "float16", "int8")
SPARSE_MODES = ("auto", True, False)


def convert(
    model,
    path=None,
    *,
    quantize=None,
    representative_data=None,
    num_calibration_samples=100,
    int8_io=False,
    sparse="auto",
    verify=True,
    verify_data=None,
    verify_samples=32,
    input_shapes=None,
    verbose=1,
):
    """Converts a Keras 3 model (pruned or not) to a .tflite file and verifies it.

    Args:
      model: a Keras 3 model, or the path of a `.keras` file. Pruning wrappers are
        stripped first (the input model is left unchanged).
      path: where to write the file (atomically: a temp file, then a rename). None
        keeps the bytes in memory only (`result.content`).
      quantize: None (float32), "dynamic" (int8 weights, float activations),
        "float16" (float16 weights) or "int8" (full integer, calibrated on
        `representative_data`; per-channel weights). A quantization-aware model
        (from `keras_prune.quantization.quantize_model`) converts with "int8" only,
        using the ranges it learned in training: no representative data needed.
      representative_data: calibration inputs for "int8" (also used as verification
        inputs): a numpy array of samples, a list of arrays for several inputs, a
        `tf.data.Dataset` or a generator. Batched or single samples; `(x, y)` pairs
        are fine (y is ignored). For a quantization-aware model they are only
        verification inputs (its ranges are not re-calibrated).
      num_calibration_samples: how many samples of `representative_data` to use.
      int8_io: with "int8", make the input and output tensors int8 too (for
        integer-only accelerators); the interpreter helpers quantize for you.
      sparse: "auto" stores a weight sparse only where that makes the file smaller
        AND the file still loads with the runtime's default delegates; True encodes
        every weight the converter can (tfmot's EXPERIMENTAL_SPARSITY; an int8 file
        may then need default delegates off); False never.
      verify: True loads the file in the LiteRT interpreter with its default
        delegates, runs sample inputs and compares with Keras; raises
        `VerificationError` (and writes nothing) if it fails. "warn" writes the file
        and warns when its outputs differ from Keras beyond the tolerance; a file that
        LiteRT cannot load at all (with its default delegates) is still refused and
        not written, since it would fail the same way in an app. False skips the check
        and writes whatever the converter produced. Inputs are matched by name.
      verify_data: inputs for verification; defaults to `representative_data`, else
        random normal inputs of the model's input shape.
      verify_samples: how many samples to verify on.
      input_shapes: fixed shapes (without the batch) for inputs with unknown
        dimensions, e.g. a sequence length for a transformer:
        `{"token_ids": (128,), "padding_mask": (128,)}`, or one tuple for a model
        with one input. TFLite needs every dimension but the batch fixed. Models
        with RNN layers (LSTM, GRU, ...) are converted with a batch size of 1, the
        only way TensorFlow turns their loop into TFLite builtin ops.
      verbose: 1 (default) prints one progress line (stages and their seconds),
        0 prints nothing.

    Example:

    ```python
    result = keras_prune.tflite.convert(pruned, "model.tflite", quantize="int8",
                                        representative_data=x_train[:100])
    print(result)   # size, what is stored sparse, how it verified
    ```

    Returns:
      A `ConversionResult`.

    Raises:
      ValueError: for bad arguments (unknown `quantize`, int8 without
        `representative_data`, unknown input dimensions without `input_shapes`).
      ConversionError: when TensorFlow's converter refuses the model (with the
        layers and ops it names).
      VerificationError: when the file does not load with default delegates or does
        not match Keras (nothing is written; see `verify`). A quantization-aware
        model's file must match its Keras model within half an output quantization
        step on average, 8 at most (a tensor the training did not fake-quantize shows
        up as a larger error).
      ImportError: when TensorFlow or a LiteRT runtime is missing.
    """
    _check_path(path)
    model = load_model(model)
    quantization_aware = _quantization_aware(model, quantize)
    _check_options(quantize, sparse, int8_io, representative_data, verify,
                   quantization_aware)
    progress = Progress(f"TFLite ({quantize or 'float32'})", verbose)
    num_calibration_samples = check_int("num_calibration_samples", num_calibration_samples, minimum=1)
    verify_samples = check_int("verify_samples", verify_samples, minimum=1)
    model = strip_if_pruned(model)
    if input_shapes is not None or needs_fixed_batch(model):
        model = with_fixed_inputs(model, input_shapes, needs_fixed_batch(model))
    specs = input_specs(model)
    calibration = None
    if representative_data is not None:
        calibration = collect_samples(
            representative_data, specs, num_calibration_samples, "representative_data"
        )
    # A QAT model carries its ranges: the converter must not re-calibrate them.
    converter_calibration = None if quantization_aware else calibration
    with progress.stage("convert"):
        if keras.backend.backend() == "tensorflow":
            content, sparse_tensors, kept_dense = convert_tensorflow(
                model, quantize, converter_calibration, int8_io, sparse
            )
        else:
            content, sparse_tensors, kept_dense = convert_in_subprocess(
                model, quantize, converter_calibration, int8_io, sparse
            )
    content = _named(content, model)
    float_ops = _float_ops(content, model) if quantize == "int8" else []
    verification = None
    if verify:
        with progress.stage("verify in LiteRT"):
            if verify_data is not None:
                samples = collect_samples(verify_data, specs, verify_samples, "verify_data")
            elif calibration is not None:
                samples = calibration[:verify_samples]
            else:
                rng = np.random.default_rng(0)
                samples = [[random_input(rng, shape, dtype) for shape, dtype in specs]
                           for _ in range(verify_samples)]
            on_failure = "warn" if verify == "warn" else "raise"
            steps = ranges.output_steps(model) if quantization_aware else None
            verification = verify_against_keras(content, model, samples, quantize, on_failure,
                                                output_steps=steps)
    if path is not None:
        path = os.fspath(path)
        with progress.stage("write"):  # an error ends the progress line first
            try:
                with atomic_path(path) as temporary:
                    with open(temporary, "wb") as handle:
                        handle.write(content)
            except OSError as error:
                raise OSError(f"Cannot write {path}: {error.strerror or error}") from None
    progress.done(f"{len(content):,} bytes")
    return ConversionResult(
        path=path,
        bytes=len(content),
        gzip_bytes=len(gzip.compress(content)),
        quantize=quantize,
        sparse_tensors=sparse_tensors,
        kept_dense=kept_dense,
        verification=verification,
        content=content,
        float_ops=float_ops,
    )


def _named(content, model):
    """The file with its weights named after the Keras weights (best effort: a file
    whose names cannot be matched is kept as the converter wrote it)."""
    try:
        return name_weights(content, model)
    except Exception:  # noqa: BLE001 (naming is cosmetic; the conversion stands)
        return content


def _check_path(path):
    """The CLI's rule: the file's folder must exist (nothing is created but the file)."""
    if path is None:
        return
    path = os.fspath(path)
    if not path or os.path.isdir(path):
        raise ValueError(f"Argument `path` must name a file to write, such as "
                         f"'model.tflite'. Received: path={path!r}.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"Argument `path`: the folder {folder} does not exist. Create it first "
            f"(os.makedirs({folder!r})) or pass path=None to keep the file in memory."
        )


def _float_ops(content, model):
    """The ops an "int8" file still runs in float32, with a warning that names them."""
    found = _flatbuffer.float_ops(content)
    if found:
        shown = ", ".join(found[:8]) + (f" and {len(found) - 8} more" if len(found) > 8 else "")
        warnings.warn(
            f"The int8 file of {model.name} runs {len(found)} op(s) in float32: {shown}. "
            "Each costs a DEQUANTIZE/QUANTIZE pair and float speed. Common causes: a "
            "BatchNormalization after an activation (put it before: Conv2D -> "
            "BatchNormalization -> ReLU, so it folds into the convolution), a layer the int8 "
            "scheme does not cover (see the model's .quantization_report), or a keras.ops "
            "node. `result.float_ops` lists them.",
            stacklevel=3,
        )
    return found


def _quantization_aware(model, quantize):
    """True for a QAT model; refuses other modes for it, warns when it never trained."""
    if not ranges.is_quantization_aware(model):
        return False
    if quantize != "int8":
        raise ValueError(
            f"Model `{model.name}` is quantization-aware (it fake-quantizes its layers), so "
            f"it converts with quantize='int8'. Received: quantize={quantize!r}. For a float "
            "file, convert the model you passed to quantize_model instead."
        )
    untrained = ranges.untrained_ranges(model)
    if untrained:
        warnings.warn(
            f"The activation ranges of {len(untrained)} quantized layer(s) ({untrained[0]}, ...) "
            "never saw a training batch, so the int8 file uses the initial range [-6, 6]. "
            "Train the quantization-aware model with fit() before converting it.",
            stacklevel=3,
        )
    return True


def _check_options(quantize, sparse, int8_io, representative_data, verify=True,
                   quantization_aware=False):
    if quantize not in QUANTIZE_MODES:
        raise ValueError(
            f"Argument `quantize` must be one of {list(QUANTIZE_MODES)}. Received: "
            f"quantize={quantize!r}. Use 'int8' for full-integer models (needs "
            "`representative_data`), 'dynamic' for int8 weights with float activations."
        )
    if sparse not in SPARSE_MODES or isinstance(sparse, int) and not isinstance(sparse, bool):
        raise ValueError(
            f"Argument `sparse` must be 'auto', True or False. Received: sparse={sparse!r}."
        )
    if quantize == "int8" and representative_data is None and not quantization_aware:
        raise ValueError(
            "Argument `representative_data` is required with quantize='int8': the converter "
            "calibrates activation ranges on it. Pass ~100 training samples (a numpy array, "
            "a tf.data.Dataset or a generator), or use quantize='dynamic', or train the model "
            "quantization-aware (keras_prune.quantization.quantize_model) first."
        )
    if verify not in (True, False, "warn"):
        raise ValueError(
            f"Argument `verify` must be True, False or 'warn'. Received: verify={verify!r}."
        )
    if int8_io and quantize != "int8":
        raise ValueError(
            f"Argument `int8_io=True` needs quantize='int8'. Received: quantize={quantize!r}."
        )
