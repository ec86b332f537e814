"""Loading and running .tflite files in the LiteRT interpreter.

The interpreter is looked up in the order DESIGN.md recommends: `ai_edge_litert` (the
maintained runtime; no TensorFlow needed), then `tflite_runtime`, then `tf.lite`.
"""

import contextlib
import importlib
import io
import os
import re
import sys
import tempfile
import warnings

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


@contextlib.contextmanager
def quiet():
    """Silences native chatter (Python prints, C++ writes to fds 1 and 2): the
    converter's logs, LiteRT's "Created TensorFlow Lite XNNPACK delegate" line.

    Errors still surface: TensorFlow and LiteRT raise them with the full message.
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
        with quiet():  # the error, if any, is in the exception's message
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
            f"delegates: {clean_message(str(error))}"
        ) from None
    return interpreter


def clean_message(text):
    """LiteRT's error text with its glued sentences split: "node #11Node number 16" ->
    "node #11. Node number 16", "prepare.." -> "prepare.", one line."""
    text = re.sub(r"(?<=[a-z0-9#)])(?=(?:Node|Failed|Restored|Error|Ignoring) )", ". ",
                  text.strip())
    text = re.sub(r"\s*\n\s*", " ", text)
    return re.sub(r"(?<!\.)\.\.(?!\.)", ".", text)


def quantize(values, detail):
    """Float values as the integer tensor `detail` stores them (scale, zero point)."""
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


def io_details(interpreter):
    """Input details by signature name, and output details in the Keras model's order.

    Keras' converters name a file's inputs after the model's input tensors and its
    outputs `output_0`, `output_1`, ... in the model's order, while the tensor
    indices (the order of `get_input_details()`) follow the graph. Files without a
    signature keep the interpreter's order.
    """
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    try:
        runner = interpreter.get_signature_runner()
        signature_inputs = runner.get_input_details()
        signature_outputs = runner.get_output_details()
    except (ValueError, KeyError, AttributeError):
        return dict(enumerate(inputs)), outputs
    by_index = {d["index"]: d for d in inputs}
    named_inputs = {name: by_index[d["index"]] for name, d in signature_inputs.items()}
    keys = [f"output_{i}" for i in range(len(signature_outputs))]
    if set(keys) != set(signature_outputs):
        return named_inputs, outputs
    by_index = {d["index"]: d for d in outputs}
    return named_inputs, [by_index[signature_outputs[key]["index"]] for key in keys]


def _ordered_inputs(interpreter, inputs):
    """(detail, array) pairs: a dict is matched by input name, a list by position."""
    named, _ = io_details(interpreter)
    if isinstance(inputs, dict):
        missing = sorted(set(named) - set(inputs)) if all(isinstance(k, str) for k in named) else []
        if missing or len(inputs) != len(named):
            raise ValueError(
                f"The model's inputs are {sorted(map(str, named))}; received arrays for "
                f"{sorted(inputs)}. Pass one array per input name."
            )
        return [(named[name], np.asarray(inputs[name])) for name in named]
    arrays = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    details = interpreter.get_input_details()
    if len(arrays) != len(details):
        raise ValueError(
            f"The model takes {len(details)} input(s); received {len(arrays)} array(s)."
        )
    return [(detail, np.asarray(array)) for detail, array in zip(details, arrays)]


def _fixed_batch(details):
    """The batch size a file was converted with, or None where the batch is dynamic."""
    sizes = {int(d["shape_signature"][0]) for d in details if len(d["shape_signature"])}
    sizes.discard(-1)
    return sizes.pop() if len(sizes) == 1 else None


def predict(interpreter, inputs, *, batch_size=32):
    """Runs `inputs` through `interpreter` and returns the outputs in the model's order.

    `inputs` is an array, a list of arrays (one per input, in the file's order) or a
    dict from input name to array (matched by name, which is safe for models whose
    converter reordered their inputs). Float inputs are quantized for int8 input
    tensors and int8 outputs are dequantized, so the caller always works in float.
    A file converted with a fixed batch size is run in batches of that size.
    Returns a float32 array (or a list for several outputs).
    """
    pairs = _ordered_inputs(interpreter, inputs)
    _, output_details = io_details(interpreter)
    fixed = _fixed_batch([detail for detail, _ in pairs])
    batch_size = fixed or batch_size
    count = len(pairs[0][1])
    results = [[] for _ in output_details]
    current_batch = None
    for start in range(0, count, batch_size):
        chunks = [array[start : start + batch_size] for _, array in pairs]
        size = len(chunks[0])
        if fixed and size < fixed:  # pad the last batch, drop the padding's outputs
            chunks = [np.concatenate([c, np.zeros((fixed - size, *c.shape[1:]), c.dtype)])
                      for c in chunks]
        if len(chunks[0]) != current_batch:
            for (detail, _), chunk in zip(pairs, chunks):
                interpreter.resize_tensor_input(detail["index"], list(chunk.shape))
            interpreter.allocate_tensors()
            current_batch = len(chunks[0])
        for (detail, _), chunk in zip(pairs, chunks):
            interpreter.set_tensor(detail["index"], quantize(chunk, detail))
        try:
            interpreter.invoke()
        except RuntimeError as error:
            raise InterpreterLoadError(
                f"The LiteRT interpreter failed to run the model: {clean_message(str(error))}"
            ) from None
        for i, detail in enumerate(output_details):
            output = _dequantize(interpreter.get_tensor(detail["index"]), detail)
            results[i].append(output[:size])
    outputs = [np.concatenate(r, axis=0) for r in results]
    return outputs[0] if len(outputs) == 1 else outputs
