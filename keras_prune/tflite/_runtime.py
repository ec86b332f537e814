"""Loading and running .tflite files in the LiteRT interpreter.

The interpreter is looked up in the order DESIGN.md recommends: `ai_edge_litert` (the
maintained runtime; no TensorFlow needed), then `tflite_runtime`, then `tf.lite`.
"""

import importlib
import os

import numpy as np

_CANDIDATES = (
    ("ai_edge_litert.interpreter", "ai_edge_litert"),
    ("tflite_runtime.interpreter", "tflite_runtime"),
    ("tensorflow.lite.python.interpreter", "tensorflow"),
)


class InterpreterLoadError(RuntimeError):
    """A .tflite file that the LiteRT interpreter refuses to load or run."""


def interpreter_module():
    """Returns `(module, description)` of the first importable interpreter."""
    failures = []
    for name, package in _CANDIDATES:
        try:
            module = importlib.import_module(name)
            module.Interpreter  # noqa: B018 (tflite_runtime 2.14 fails late under numpy 2)
        except Exception as error:  # noqa: BLE001
            failures.append(f"{package}: {type(error).__name__}: {error}")
            continue
        version = getattr(importlib.import_module(package), "__version__", "?")
        return module, f"{package} {version}"
    raise ImportError(
        "No LiteRT interpreter could be imported. Install one with "
        "`pip install ai-edge-litert` (or `pip install keras-prune[litert]`).\n"
        + "\n".join(failures)
    )


def runtime_name():
    return interpreter_module()[1]


def load_interpreter(model, *, num_threads=None, default_delegates=True):
    """Returns an allocated interpreter for `model` (a path or the file's bytes).

    `default_delegates=True` is what an app gets out of the box (XNNPACK on CPU); a file
    that only loads without them is one that breaks on the device.
    """
    module, _ = interpreter_module()
    kwargs = {"num_threads": num_threads}
    if isinstance(model, (bytes, bytearray)):
        kwargs["model_content"] = bytes(model)
    else:
        kwargs["model_path"] = os.fspath(model)
    if not default_delegates:
        kwargs["experimental_op_resolver_type"] = (
            module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
    try:
        interpreter = module.Interpreter(**kwargs)
        interpreter.allocate_tensors()
        # Delegates may only fail when a node is prepared: run once on zeros.
        for detail in interpreter.get_input_details():
            interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
        interpreter.invoke()
    except (RuntimeError, ValueError) as error:
        where = "" if "model_content" in kwargs else f" {kwargs['model_path']}"
        delegates = "with" if default_delegates else "without"
        raise InterpreterLoadError(
            f"The LiteRT interpreter cannot load the model{where} {delegates} its default "
            f"delegates: {str(error).strip()}"
        ) from None
    return interpreter


def _quantize(values, detail):
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.floating):
        return values.astype(dtype)
    scale, zero_point = detail["quantization"]
    if not scale:
        return values.astype(dtype)
    info = np.iinfo(dtype)
    quantized = np.round(values / scale + zero_point)
    return np.clip(quantized, info.min, info.max).astype(dtype)


def _dequantize(values, detail):
    scale, zero_point = detail["quantization"]
    if np.issubdtype(values.dtype, np.floating) or not scale:
        return values.astype(np.float32)
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)


def predict(interpreter, inputs, *, batch_size=32):
    """Runs `inputs` (array, or list of arrays for several inputs) through `interpreter`.

    Float inputs are quantized for int8 input tensors and int8 outputs are
    dequantized, so the caller always works in float. Returns a float32 array (or a
    list for several outputs).
    """
    input_details = interpreter.get_input_details()
    output_details = interpreter.get_output_details()
    arrays = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    if len(arrays) != len(input_details):
        raise ValueError(
            f"The model takes {len(input_details)} input(s); received {len(arrays)} array(s)."
        )
    arrays = [np.asarray(a) for a in arrays]
    count = len(arrays[0])
    results = [[] for _ in output_details]
    current_batch = None
    for start in range(0, count, batch_size):
        chunks = [a[start : start + batch_size] for a in arrays]
        size = len(chunks[0])
        if size != current_batch:
            for detail, chunk in zip(input_details, chunks):
                interpreter.resize_tensor_input(detail["index"], [size, *chunk.shape[1:]])
            interpreter.allocate_tensors()
            current_batch = size
        for detail, chunk in zip(input_details, chunks):
            interpreter.set_tensor(detail["index"], _quantize(chunk, detail))
        try:
            interpreter.invoke()
        except RuntimeError as error:
            raise InterpreterLoadError(
                f"The LiteRT interpreter failed to run the model: {str(error).strip()}"
            ) from None
        for i, detail in enumerate(output_details):
            results[i].append(_dequantize(interpreter.get_tensor(detail["index"]), detail))
    outputs = [np.concatenate(r, axis=0) for r in results]
    return outputs[0] if len(outputs) == 1 else outputs
