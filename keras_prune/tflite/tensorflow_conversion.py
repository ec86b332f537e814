"""TensorFlow's TFLite converter, the sparse-encoding policy, and the subprocess
bridge used when Keras runs on JAX or torch (the only place TensorFlow is imported)."""

import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile

import keras
import numpy as np

from keras_prune._models import flatten_layers
from keras_prune.tflite import _flatbuffer, _runtime
from keras_prune.tflite.results import ConversionError


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
        with _runtime.quiet():
            return _configured(tf.lite.TFLiteConverter.from_keras_model(model), tf, quantize,
                               calibration, int8_io, sparsity).convert()
    except Exception as error:  # noqa: BLE001
        first_error = error
    with tempfile.TemporaryDirectory(prefix="keras_prune_export_") as folder:
        try:
            with _runtime.quiet():
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
        if calibration is not None:  # else a QAT model: its FakeQuant ranges are used
            converter.representative_dataset = lambda: iter(calibration)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    return converter


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


def convert_tensorflow(model, quantize, calibration, int8_io, sparse):
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


def convert_in_subprocess(model, quantize, calibration, int8_io, sparse):
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
