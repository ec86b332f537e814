"""`convert`: Keras 3 model -> verified, quantization-ready .tflite file."""

import contextlib
import dataclasses
import gzip
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import warnings

import keras
import numpy as np

from keras_prune._io import atomic_path
from keras_prune._models import check_built, check_keras3, flatten_layers, input_structure
from keras_prune._validation import check_int
from keras_prune.layers import collect_wrappers
from keras_prune.strip import strip_pruning
from keras_prune.tflite import _flatbuffer, _runtime

QUANTIZE_MODES = (None, "dynamic", "float16", "int8")
SPARSE_MODES = ("auto", True, False)


class ConversionError(RuntimeError):
    """The TFLite converter rejected the model (the message names the layers)."""


class VerificationError(RuntimeError):
    """The converted file does not load or does not match the Keras model."""


@dataclasses.dataclass
class Verification:
    """How the file behaved in the LiteRT interpreter, next to the Keras model."""

    runtime: str
    default_delegates: bool
    samples: int
    max_abs_diff: float
    agreement: float | None  # top-1 agreement on decisive samples, for class scores
    tolerance: str
    passed: bool
    snr_db: float | None = None  # output signal-to-noise ratio of a quantized file

    def __str__(self):
        agreement = "" if self.agreement is None else f", top-1 agreement {self.agreement:.1%}"
        if self.snr_db is not None:
            agreement += f", SNR {self.snr_db:.1f} dB"
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"verification {verdict} in {self.runtime} (default delegates "
            f"{'on' if self.default_delegates else 'off'}): {self.samples} samples, max |diff| "
            f"{self.max_abs_diff:.3g}{agreement}; tolerance: {self.tolerance}"
        )


@dataclasses.dataclass
class ConversionResult:
    """What `convert` produced: where, how big, what is stored sparse, how it verified."""

    path: str | None
    bytes: int
    gzip_bytes: int
    quantize: str | None
    sparse_tensors: list
    kept_dense: dict  # tensor name -> why it is not stored sparse
    verification: Verification | None
    content: bytes = dataclasses.field(repr=False)

    def __str__(self):
        where = self.path or "(in memory)"
        lines = [
            f"{where}: {self.bytes:,} bytes ({self.gzip_bytes:,} gzipped), "
            f"quantize={self.quantize}, {len(self.sparse_tensors)} weight(s) stored sparse"
        ]
        if self.verification is not None:
            lines.append(str(self.verification))
        return "\n".join(lines)


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
):
    """Converts a Keras 3 model (pruned or not) to a .tflite file and verifies it.

    Args:
      model: a Keras 3 model, or the path of a `.keras` file. Pruning wrappers are
        stripped first (the input model is left unchanged).
      path: where to write the file (atomically: a temp file, then a rename). None
        keeps the bytes in memory only (`result.content`).
      quantize: None (float32), "dynamic" (int8 weights, float activations),
        "float16" (float16 weights) or "int8" (full integer, calibrated on
        `representative_data`; per-channel weights).
      representative_data: calibration inputs for "int8" (also used as verification
        inputs): a numpy array of samples, a list of arrays for several inputs, a
        `tf.data.Dataset` or a generator. Batched or single samples; `(x, y)` pairs
        are fine (y is ignored).
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
        and warns instead; False skips the check. Inputs are matched by name.
      verify_data: inputs for verification; defaults to `representative_data`, else
        random normal inputs of the model's input shape.
      verify_samples: how many samples to verify on.
      input_shapes: fixed shapes (without the batch) for inputs with unknown
        dimensions, e.g. a sequence length for a transformer:
        `{"token_ids": (128,), "padding_mask": (128,)}`, or one tuple for a model
        with one input. TFLite needs every dimension but the batch fixed. Models
        with RNN layers (LSTM, GRU, ...) are converted with a batch size of 1, the
        only way TensorFlow turns their loop into TFLite builtin ops.

    Returns:
      A `ConversionResult`.
    """
    model = _load_model(model)
    _check_options(quantize, sparse, int8_io, representative_data, verify)
    num_calibration_samples = check_int("num_calibration_samples", num_calibration_samples, minimum=1)
    verify_samples = check_int("verify_samples", verify_samples, minimum=1)
    model = _strip_if_pruned(model)
    if input_shapes is not None or _needs_fixed_batch(model):
        model = _with_fixed_inputs(model, input_shapes, _needs_fixed_batch(model))
    input_specs = _input_specs(model)
    calibration = None
    if representative_data is not None:
        calibration = _collect_samples(
            representative_data, input_specs, num_calibration_samples, "representative_data"
        )
    if keras.backend.backend() == "tensorflow":
        content, sparse_tensors, kept_dense = _convert_tensorflow(
            model, quantize, calibration, int8_io, sparse
        )
    else:
        content, sparse_tensors, kept_dense = _convert_in_subprocess(
            model, quantize, calibration, int8_io, sparse
        )
    verification = None
    if verify:
        if verify_data is not None:
            samples = _collect_samples(verify_data, input_specs, verify_samples, "verify_data")
        elif calibration is not None:
            samples = calibration[:verify_samples]
        else:
            rng = np.random.default_rng(0)
            samples = [[_random_input(rng, shape, dtype) for shape, dtype in input_specs]
                       for _ in range(verify_samples)]
        on_failure = "warn" if verify == "warn" else "raise"
        verification = verify_against_keras(content, model, samples, quantize, on_failure)
    if path is not None:
        path = os.fspath(path)
        with atomic_path(path) as temporary:
            with open(temporary, "wb") as handle:
                handle.write(content)
    return ConversionResult(
        path=path,
        bytes=len(content),
        gzip_bytes=len(gzip.compress(content)),
        quantize=quantize,
        sparse_tensors=sparse_tensors,
        kept_dense=kept_dense,
        verification=verification,
        content=content,
    )


def _random_input(rng, shape, dtype):
    if "int" in dtype:  # token ids and other integer inputs: small valid values
        return rng.integers(0, 2, size=(1, *shape)).astype(dtype)
    return rng.standard_normal((1, *shape)).astype(np.float32)


# --- argument checks ---------------------------------------------------------------


def _check_options(quantize, sparse, int8_io, representative_data, verify=True):
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
    if quantize == "int8" and representative_data is None:
        raise ValueError(
            "Argument `representative_data` is required with quantize='int8': the converter "
            "calibrates activation ranges on it. Pass ~100 training samples (a numpy array, "
            "a tf.data.Dataset or a generator), or use quantize='dynamic'."
        )
    if verify not in (True, False, "warn"):
        raise ValueError(
            f"Argument `verify` must be True, False or 'warn'. Received: verify={verify!r}."
        )
    if int8_io and quantize != "int8":
        raise ValueError(
            f"Argument `int8_io=True` needs quantize='int8'. Received: quantize={quantize!r}."
        )


def _load_model(model):
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Argument `model`: no such file: {path!r}.")
        try:
            import keras_prune  # noqa: F401 (registers the pruning wrapper for loading)

            return keras.saving.load_model(path, compile=False)
        except Exception as error:  # noqa: BLE001
            raise ValueError(
                f"Argument `model`: {path!r} could not be loaded as a Keras model: {error}"
            ) from None
    check_keras3(model, "model")
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"Argument `model` must be a keras.Model or the path of a .keras file. "
            f"Received: {type(model).__name__}."
        )
    check_built(model, "model")
    return model


def _strip_if_pruned(model):
    return strip_pruning(model) if collect_wrappers(model) else model


def _input_names(model):
    """The name of each of `model.inputs`: its key in a dict-input model, else its own."""
    structure = input_structure(model)
    if isinstance(structure, dict):
        keys = {id(tensor): key for key, tensor in structure.items()}
        return [keys.get(id(t), t.name) for t in model.inputs]
    return [t.name for t in model.inputs]


def _needs_fixed_batch(model):
    """RNN layers convert to TFLite builtins only with a fixed batch size (TensorFlow
    lowers their loop's tensor lists then); such files run one sample at a time."""
    has_rnn = any(isinstance(layer, keras.layers.RNN) for layer in flatten_layers(model))
    return has_rnn and any(t.shape[0] is None for t in model.inputs)


def _with_fixed_inputs(model, input_shapes, batch_of_one=False):
    """`model` called on new inputs whose unknown dimensions are set by `input_shapes`
    (and whose batch is 1 if `batch_of_one`)."""
    names = _input_names(model)
    if input_shapes is None:
        input_shapes = {}
    if not isinstance(input_shapes, dict):
        if len(names) != 1:
            raise ValueError(
                f"Argument `input_shapes` must be a dict from input name to shape for a model "
                f"with {len(names)} inputs ({names}). Received: input_shapes={input_shapes!r}."
            )
        input_shapes = {names[0]: input_shapes}
    unknown = sorted(set(input_shapes) - set(names))
    if unknown:
        raise ValueError(
            f"Argument `input_shapes` names inputs the model does not have: {unknown}. "
            f"Its inputs are {names}."
        )
    fixed = {}
    for name, tensor in zip(names, model.inputs):
        shape = tuple(input_shapes.get(name, tensor.shape[1:]))
        if len(shape) != len(tensor.shape) - 1:
            raise ValueError(
                f"Argument `input_shapes`[{name!r}]={shape} must have {len(tensor.shape) - 1} "
                f"dimension(s) (the input's shape {tuple(tensor.shape)} without the batch)."
            )
        fixed[id(tensor)] = keras.Input(
            shape, dtype=tensor.dtype, name=name, batch_size=1 if batch_of_one else None
        )
    inputs = keras.tree.map_structure(lambda t: fixed[id(t)], input_structure(model))
    return keras.Model(inputs, model(inputs), name=model.name)


def _input_specs(model):
    specs = []
    for name, tensor in zip(_input_names(model), model.inputs):
        shape = tuple(tensor.shape[1:])
        if any(d is None for d in shape):
            raise ValueError(
                f"Model input {name!r} has an unknown dimension in shape "
                f"{tuple(tensor.shape)}. TFLite needs fixed input shapes (except the batch): "
                f"pass input_shapes={{{name!r}: (...)}} to convert (e.g. a sequence length), "
                "or build the model with keras.Input(shape=...) fully specified."
            )
        specs.append((shape, str(tensor.dtype)))
    return specs


# --- sample collection -------------------------------------------------------------


def _as_arrays(element, count):
    """One element of calibration data -> a list with one array per model input."""

    def inputs_of(value):
        if isinstance(value, dict):
            return list(value.values())
        return list(value) if isinstance(value, (tuple, list)) else [value]

    if isinstance(element, (tuple, list)) and len(element) in (2, 3):
        # `(x, y)` or `(x, y, sample_weight)` from a training dataset: keep x.
        if count == 1 or isinstance(element[0], (tuple, list, dict)):
            element = element[0]
    return [np.asarray(e.numpy() if hasattr(e, "numpy") else e) for e in inputs_of(element)]


def _collect_samples(data, input_specs, limit, argument):
    """Up to `limit` samples, each a list (one array per input) with batch dimension 1."""
    count = len(input_specs)
    if isinstance(data, np.ndarray) or (
        isinstance(data, (list, tuple)) and data and all(isinstance(d, np.ndarray) for d in data)
        and count > 1
    ):
        source = [data if isinstance(data, np.ndarray) else list(data)]
    elif callable(data) and not hasattr(data, "__iter__"):
        source = data()
    else:
        source = data
    try:
        iterator = iter(source)
    except TypeError:
        raise TypeError(
            f"Argument `{argument}` must be a numpy array, a list of arrays (one per input), "
            f"a tf.data.Dataset or a generator of samples. Received: {type(data).__name__}."
        ) from None
    samples = []
    for element in iterator:
        arrays = _as_arrays(element, count)
        if len(arrays) != count:
            raise ValueError(
                f"Argument `{argument}`: the model has {count} input(s) but an element holds "
                f"{len(arrays)} array(s)."
            )
        for array, (shape, _) in zip(arrays, input_specs):
            _check_sample(array, shape, argument)
        batched = [a if a.ndim == len(shape) + 1 else a[None] for a, (shape, _) in zip(arrays, input_specs)]
        dtypes = [np.float32 if "float" in dtype else np.dtype(dtype) for _, dtype in input_specs]
        for i in range(len(batched[0])):
            samples.append([b[i : i + 1].astype(t) for b, t in zip(batched, dtypes)])
            if len(samples) >= limit:
                return samples
    if not samples:
        raise ValueError(f"Argument `{argument}` is empty: it yielded no samples.")
    return samples


def _check_sample(array, shape, argument):
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise TypeError(
            f"Argument `{argument}` must hold numbers. Received an array of dtype {array.dtype}."
        )
    if tuple(array.shape[-len(shape):]) != tuple(shape) or array.ndim not in (len(shape), len(shape) + 1):
        raise ValueError(
            f"Argument `{argument}` has samples of shape {tuple(array.shape)}; the model expects "
            f"{tuple(shape)} per sample (or (N, {', '.join(map(str, shape))}) for a batch). "
            "Pass data shaped like the model's training inputs."
        )
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        raise ValueError(f"Argument `{argument}` contains NaN or infinite values.")


# --- conversion --------------------------------------------------------------------


def _tf():
    try:
        import tensorflow as tf
    except ImportError:
        raise ImportError(
            "Converting to TFLite needs TensorFlow (the LiteRT converter ships with it): "
            "`pip install keras-prune[tensorflow]`. Running converted files only needs "
            "`pip install ai-edge-litert`."
        ) from None
    return tf


def _converter_bytes(model, quantize, calibration, int8_io, sparsity):
    """Converts through `from_keras_model`; models it cannot trace (dict inputs, some
    keras_hub models) go through Keras' own SavedModel export instead."""
    tf = _tf()
    try:
        with _quiet():
            return _configured(tf.lite.TFLiteConverter.from_keras_model(model), tf, quantize,
                               calibration, int8_io, sparsity).convert()
    except Exception as error:  # noqa: BLE001
        first_error = error
    with tempfile.TemporaryDirectory(prefix="keras_prune_export_") as folder:
        try:
            with _quiet():
                model.export(folder, format="tf_saved_model", verbose=False)
                converter = tf.lite.TFLiteConverter.from_saved_model(folder)
                return _configured(converter, tf, quantize, calibration, int8_io,
                                   sparsity).convert()
        except Exception as error:  # noqa: BLE001
            raise _conversion_error(error, model, quantize, first_error) from None


def _configured(converter, tf, quantize, calibration, int8_io, sparsity):
    optimizations = []
    if quantize is not None:
        optimizations.append(tf.lite.Optimize.DEFAULT)
    if sparsity:
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    converter.optimizations = optimizations
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
        converter.representative_dataset = lambda: iter(calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    return converter


@contextlib.contextmanager
def _quiet():
    """Silences the converter's chatter (Python prints, C++ writes to fds 1 and 2).

    Errors still surface: the converter raises them with the full message.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with tempfile.TemporaryFile() as sink:
        for fd in saved:
            os.dup2(sink.fileno(), fd)
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
                yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)


def _conversion_error(error, model, quantize, first_error=None):
    message = str(error)
    if first_error is not None and str(first_error) != message:
        message += f"\n(from_keras_model said: {str(first_error).strip()[:300]})"
    names = sorted(
        {layer.name for layer in flatten_layers(model)
         if re.search(rf"/{re.escape(layer.name)}(_\d+)?/", message)}
    )
    ops = sorted(set(re.findall(r"'(tf\.[A-Za-z0-9_]+)'", message)))
    ops += sorted(set(re.findall(r"\b(?:op|Op)\s*[:=]?\s*'?([A-Z][A-Za-z0-9]+)'?", message)) - set(ops))
    where = f"layer(s) {names}" if names else "the model"
    what = f" (ops {ops} are not TFLite builtins)" if ops else ""
    hint = (
        "Replace those layers with ones built from standard ops, or convert with "
        "TensorFlow select ops yourself (larger runtime)."
    )
    if quantize == "int8":
        hint += " With quantize='int8' every op must have an int8 kernel; try quantize='dynamic'."
    reason = [line for line in message.strip().splitlines() if line.strip()]
    shown = "\n".join(reason[:6] + (["..."] if len(reason) > 12 else []) + reason[-6:])
    return ConversionError(f"TFLite cannot convert {where}{what}. {hint}\nConverter said:\n{shown}")


def _quantized_weight(tensor):
    return _flatbuffer.dtype_name(tensor.type) in ("int8", "uint8", "int16", "int4")


def _encoding_is_smaller(model, tensor):
    values = _flatbuffer.buffer_array(model, tensor)
    dense = int(np.prod(tensor.shape)) * values.itemsize
    return values.nbytes + _flatbuffer.sparse_index_bytes(tensor) < dense


def _sparse_tensor_names(content):
    model = _flatbuffer.read(content)
    names = []
    for tensor in model.subgraphs[0].tensors:
        if tensor.sparsity is not None and model.buffers[tensor.buffer].data is not None:
            names.append(_flatbuffer.tensor_name(tensor))
    return names


def _loads_with_default_delegates(content):
    try:
        _runtime.load_interpreter(content)
    except _runtime.InterpreterLoadError as error:
        return False, str(error)
    return True, ""


def _convert_tensorflow(model, quantize, calibration, int8_io, sparse):
    """Returns (bytes, names stored sparse, {name: why kept dense})."""
    dense = _converter_bytes(model, quantize, calibration, int8_io, sparsity=False)
    if sparse is False:
        return dense, [], {}
    encoded = _converter_bytes(model, quantize, calibration, int8_io, sparsity=True)
    if sparse is True:
        return encoded, _sparse_tensor_names(encoded), {}
    # XNNPACK fails to prepare a FULLY_CONNECTED node whose int8 weight comes out of
    # DENSIFY (it treats the weight as static, then finds it is not); other int8 ops
    # behind DENSIFY are left to the built-in kernels. First try keeping those, then
    # (if the file still fails to load) decode every int8 weight.
    for strict in (False, True):
        kept_dense = {}

        def should_densify(fb_model, tensor, consumers, strict=strict, kept_dense=kept_dense):
            name = _flatbuffer.tensor_name(tensor)
            if _quantized_weight(tensor) and (strict or "FULLY_CONNECTED" in consumers):
                kept_dense[name] = (
                    "int8 weight behind DENSIFY: the default XNNPACK delegate fails to prepare "
                    f"{'/'.join(consumers) or 'its consumer'} with it"
                )
                return True
            if not _encoding_is_smaller(fb_model, tensor):
                kept_dense[name] = "sparse encoding (values + indices) is not smaller"
                return True
            return False

        candidate, _ = _flatbuffer.densify_weights(encoded, should_densify)
        remaining = _sparse_tensor_names(candidate)
        if len(candidate) >= len(dense):
            reason = (f"the remaining encodings do not make the file smaller "
                      f"({len(candidate):,} >= {len(dense):,} bytes)")
            return dense, [], {**kept_dense, **{name: reason for name in remaining}}
        loads, why = _loads_with_default_delegates(candidate)
        if loads:
            return candidate, remaining, kept_dense
    reason = f"the sparse file fails with default delegates: {why}"
    return dense, [], {**kept_dense, **{name: reason for name in remaining}}


def _convert_in_subprocess(model, quantize, calibration, int8_io, sparse):
    """Under JAX or torch: save a .keras file and convert it with the TF backend."""
    if importlib.util.find_spec("tensorflow") is None:
        _tf()  # raises the install hint; the subprocess would only fail later
    with tempfile.TemporaryDirectory(prefix="keras_prune_tflite_") as folder:
        model_path = os.path.join(folder, "model.keras")
        try:
            model.save(model_path)
        except Exception as error:  # noqa: BLE001
            raise ConversionError(
                f"Under the {keras.backend.backend()} backend the model is converted through a "
                f".keras file in a TensorFlow subprocess, and saving it failed: {error}. Use "
                "KERAS_BACKEND=tensorflow for the conversion."
            ) from None
        job = {
            "model": model_path,
            "output": os.path.join(folder, "model.tflite"),
            "report": os.path.join(folder, "report.json"),
            "quantize": quantize,
            "int8_io": int8_io,
            "sparse": sparse,
            "calibration": None,
        }
        if calibration is not None:
            job["calibration"] = os.path.join(folder, "calibration.npz")
            arrays = {f"input_{i}": np.concatenate([s[i] for s in calibration]) for i in range(len(calibration[0]))}
            np.savez(job["calibration"], **arrays)
        with open(os.path.join(folder, "job.json"), "w", encoding="utf-8") as handle:
            json.dump(job, handle)
        environment = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
        process = subprocess.run(
            [sys.executable, "-m", "keras_prune.tflite._worker", os.path.join(folder, "job.json")],
            env=environment, capture_output=True, text=True,
        )
        if process.returncode != 0:
            noise = ("I0000", "W0000", "WARNING: All log messages")
            lines = [l for l in process.stderr.strip().splitlines() if not l.startswith(noise)]
            tail = "\n".join(lines[-12:])
            raise ConversionError(
                f"Conversion in the TensorFlow subprocess failed (the {keras.backend.backend()} "
                f"backend cannot run the TFLite converter itself):\n{tail}"
            )
        with open(job["report"], encoding="utf-8") as handle:
            report = json.load(handle)
        with open(job["output"], "rb") as handle:
            content = handle.read()
    return content, report["sparse_tensors"], report["kept_dense"]


# --- verification ------------------------------------------------------------------


def _snr_db(expected, got):
    """Signal-to-noise ratio of `got` against `expected`, in dB (inf when equal)."""
    noise = float(np.mean((got - expected) ** 2))
    signal = float(np.mean(expected**2))
    if noise == 0.0:
        return float("inf")
    return 10.0 * np.log10(max(signal, 1e-30) / noise)


def _decisive_agreement(expected, got, error):
    """Top-1 agreement over the samples whose Keras top-1 margin exceeds twice the
    quantization error (nearly tied logits, e.g. of an untrained model, may swap
    legitimately). None for outputs that are not class scores, or with no such sample."""
    if expected.ndim != 2 or expected.shape[-1] < 2:
        return None
    top2 = np.sort(expected, axis=-1)[:, -2:]
    decisive = (top2[:, 1] - top2[:, 0]) > 2.0 * error
    if not decisive.any():
        return None
    same = np.argmax(got, -1) == np.argmax(expected, -1)
    return float(np.mean(same[decisive]))


MIN_SNR_DB = 12.0  # int8 / dynamic-range files: output noise power <= 1/16 of the signal


def verify_against_keras(content, model, samples, quantize, on_failure="raise"):
    """Runs `samples` through the file (default delegates) and through `model`.

    Float files must match Keras to ~1e-3 (float16 to ~2e-2) of the output scale.
    Quantized files must keep an output signal-to-noise ratio of at least
    `MIN_SNR_DB` and, for class scores, the same top-1 class on every sample whose
    top-1 margin exceeds twice the quantization error (>= 90% of them).
    """
    try:
        interpreter = _runtime.load_interpreter(content)
    except _runtime.InterpreterLoadError as error:
        raise VerificationError(
            f"{error}\nNothing was written: this file would fail the same way in an app. "
            "int8 weights stored sparse (sparse=True) are the usual cause; use sparse='auto', "
            "or pass verify=False to keep the file for runtimes without XNNPACK."
        ) from None
    inputs = [np.concatenate([s[i] for s in samples]) for i in range(len(samples[0]))]
    names, _ = _runtime.io_details(interpreter)
    by_name = {t.name: array for t, array in zip(model.inputs, inputs)}
    lite = _runtime.predict(interpreter, by_name if set(names) == set(by_name) else inputs)
    feed = keras.tree.map_structure(lambda t: by_name[t.name], input_structure(model))
    reference = keras.tree.flatten(model.predict(feed, verbose=0))
    lite_outputs = lite if isinstance(lite, list) else [lite]
    keras_outputs = [np.asarray(k, np.float32) for k in reference]
    max_diff, agreements, snrs, failures = 0.0, [], [], []
    for got, expected in zip(lite_outputs, keras_outputs):
        got = got.reshape(expected.shape)
        diff = float(np.max(np.abs(got - expected))) if expected.size else 0.0
        max_diff = max(max_diff, diff)
        scale = float(np.max(np.abs(expected))) if expected.size else 1.0
        if quantize in (None, "float16"):
            atol = (1e-3 if quantize is None else 2e-2) * max(1.0, scale)
            if diff > atol:
                failures.append(f"max |diff| {diff:.3g} > {atol:.3g}")
            continue
        snr = _snr_db(expected, got)
        snrs.append(snr)
        if snr < MIN_SNR_DB:
            failures.append(f"output SNR {snr:.1f} dB < {MIN_SNR_DB:.0f} dB")
        error = float(np.sqrt(np.mean((got - expected) ** 2)))
        agreement = _decisive_agreement(expected, got, error)
        if agreement is not None:
            agreements.append(agreement)
            if agreement < 0.9:
                failures.append(f"top-1 agreement {agreement:.1%} < 90% on decisive samples")
    tolerance = {
        None: "max |diff| <= 1e-3 x max(1, |output|)",
        "float16": "max |diff| <= 2e-2 x max(1, |output|)",
    }.get(
        quantize,
        f"output SNR >= {MIN_SNR_DB:.0f} dB and top-1 agreement >= 90% where the top-1 "
        "margin exceeds twice the quantization error",
    )
    verification = Verification(
        runtime=_runtime.runtime_name(),
        default_delegates=True,
        samples=len(samples),
        max_abs_diff=max_diff,
        agreement=min(agreements) if agreements else None,
        tolerance=tolerance,
        passed=not failures,
        snr_db=min(snrs) if snrs else None,
    )
    if failures:
        message = (
            "The converted model does not match the Keras model in the LiteRT interpreter: "
            + "; ".join(failures)
            + ". "
            + (
                "Check that the calibration data looks like real inputs (same scaling), "
                "and that the model is trained: an untrained model's outputs are mostly noise "
                "that int8 cannot resolve. "
                if quantize == "int8"
                else ""
            )
            + "Pass verify='warn' to keep the file with a warning, or verify=False."
        )
        if on_failure == "warn":
            warnings.warn(message, stacklevel=3)
        else:
            raise VerificationError(message + " Nothing was written.")
    return verification
