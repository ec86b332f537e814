"""`inspect`: what is inside a .tflite file, weight by weight."""

import collections
import dataclasses
import gzip
import os

import numpy as np

from keras_prune._text import table
from keras_prune.tflite import _flatbuffer
from keras_prune.tflite.weights import name_by_layer, weights_of_file


@dataclasses.dataclass
class Inspection:
    """The weights, ops and sizes of a .tflite file (see `inspect`)."""

    path: str
    bytes: int
    gzip_bytes: int
    ops: dict
    tensors: list
    xnnpack_sparse: dict  # rule -> (met, detail), XNNPACK's sparse-inference rules
    # Whether the file loads and runs with default delegates (XNNPACK), as checked in
    # the LiteRT interpreter: (True, runtime), (False, the error) or (None, why unchecked).
    default_delegates: tuple = (None, "not checked")
    named_by_layer: bool = False  # weights were matched to a Keras model's weights

    @property
    def densify_ops(self):
        return self.ops.get("DENSIFY", 0)

    @property
    def meets_xnnpack_sparse_rules(self):
        return all(met for met, _ in self.xnnpack_sparse.values())

    def recommendations(self):
        """Interpreter options this file calls for, in words."""
        notes = []
        loads, detail = self.default_delegates
        if loads is False:
            notes.append(
                f"The file does not load with the default delegates (XNNPACK): {detail}. "
                "An app gets this error too. Re-export with keras_prune.tflite.convert("
                "sparse='auto'), which keeps only sparse weights that load, or create the "
                "interpreter without default delegates (slower)."
            )
        elif loads is None and any(t.densify and t.dtype == "int8" for t in self.tensors):
            notes.append(
                "int8 weights are read through DENSIFY; whether XNNPACK accepts them depends "
                f"on the op, and loading was not checked ({detail})."
            )
        native = [t for t in self.tensors if t.storage.startswith("sparse") and not t.densify]
        if native:
            notes.append(
                f"{len(native)} weight(s) are stored in a block-sparse layout that TFLite's own "
                "sparse kernels read directly; XNNPACK leaves those ops to the built-in kernels "
                "(keep default delegates on: the rest of the graph still uses XNNPACK)."
            )
        if self.densify_ops and not self.meets_xnnpack_sparse_rules:
            notes.append(
                "Sparse weights are decoded to dense once at load time (smaller file, same "
                "speed); the model does not meet XNNPACK's sparse-inference rules."
            )
        if self.densify_ops and self.meets_xnnpack_sparse_rules:
            notes.append(
                "The file meets XNNPACK's sparse-inference rules: ARM, ARM64, RISC-V and Wasm "
                "CPUs run its 1x1 convolutions sparse. x86 CPUs with AVX (desktops, most "
                "servers, this machine if it has AVX) never take that path, so no speed-up "
                "shows there; time it on the phone (keras_prune.tflite.AdbDevice)."
            )
        if not notes:
            notes.append("Use the default interpreter options (XNNPACK on, threads as needed).")
        return notes

    def __str__(self):
        loads, detail = self.default_delegates
        lines = [
            f"{self.path}: {self.bytes:,} bytes, {self.gzip_bytes:,} gzipped",
            "ops: " + ", ".join(f"{op} x{n}" for op, n in sorted(self.ops.items())),
            "loads with default delegates (XNNPACK): "
            + {True: f"yes ({detail})", False: "NO", None: f"not checked ({detail})"}[loads],
        ]
        rows = [
            (_clip(t.label, 40), t.op, str(t.shape), t.dtype, f"{t.zero_fraction:.1%}",
             t.storage + "".join(f" via {op}" for op in t.via), f"{t.bytes:,}")
            for t in self.tensors
        ]
        header = ("weight", "op", "shape", "dtype", "zeros", "storage", "bytes")
        lines += table(header, rows, right=(4, 6))
        if not self.named_by_layer:
            lines.append("(weights named from the file; pass the Keras model as "
                         "`keras_model=` to name them by layer)")
        elif any(t.layer is None for t in self.tensors):
            lines.append("(a weight without a Keras name was changed by the converter, e.g. "
                         "a batch normalization folded into its kernel)")
        lines.append("XNNPACK sparse inference rules:")
        for rule, (met, detail) in self.xnnpack_sparse.items():
            lines.append(f"  [{'x' if met else ' '}] {rule}: {detail}")
        lines.append("Recommendations:")
        lines.extend(f"  - {note}" for note in self.recommendations())
        return "\n".join(lines)


def _clip(text, width):
    return text if len(text) <= width else "..." + text[-(width - 3):]


def read_file(path, argument="path"):
    """The bytes of a .tflite file (`path` may also be the bytes themselves)."""
    if isinstance(path, (bytes, bytearray)):
        content, what = bytes(path), "the bytes"
    else:
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Argument `{argument}`: no such file: {path!r}.")
        with open(path, "rb") as handle:
            content, what = handle.read(), repr(path)
    # A flatbuffer .tflite has the file identifier "TFL3" at bytes 4-8.
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise ValueError(
            f"Argument `{argument}`: {what} is not a .tflite file (no TFL3 identifier; "
            f"{len(content)} bytes). It may be truncated or another format; re-export it with "
            "keras_prune.tflite.convert."
        )
    return content


def inspect(model, *, keras_model=None, check_loading=True):
    """Lists every weight of a .tflite file: op, shape, dtype, zeros, storage, bytes.

    Also counts ops (DENSIFY among them), checks XNNPACK's sparse-inference rules,
    reports file and gzip sizes, and loads the file in the LiteRT interpreter with
    default delegates (as an app does), so its advice about XNNPACK is measured,
    not guessed.

    Example:

    ```python
    print(keras_prune.tflite.inspect("model.tflite", keras_model=model))   # a table
    print(keras_prune.tflite.inspect(keras_prune.tflite.convert(model)))
    ```

    Args:
        model: a .tflite path, the file's bytes, a `ConversionResult` from `convert`,
            or a Keras model (converted in memory with the defaults of `convert`).
        keras_model: the Keras model the file was converted from (a model or a
            .keras path), to name each weight by its Keras layer; the converter's
            own tensor names often differ. Implied when `model` is a Keras model.
        check_loading: load and run the file once with default delegates.

    Returns:
        An `Inspection`.

    Raises:
        FileNotFoundError: for a missing file.
        ValueError: for bytes that are not a TFLite flatbuffer.
    """
    content, path, keras_model = _content_of(model, keras_model)
    try:
        flatbuffer = _flatbuffer.read(content)
    except Exception as error:  # noqa: BLE001
        raise ValueError(f"Argument `model`: {path!r} could not be parsed as TFLite: {error}") from None
    subgraph = flatbuffer.subgraphs[0]
    ops = collections.Counter(_flatbuffer.op_name(flatbuffer, op) for op in subgraph.operators)
    tensors = weights_of_file(flatbuffer, subgraph)
    if keras_model is not None:
        name_by_layer(flatbuffer, subgraph, tensors, keras_model)
    return Inspection(
        path=path,
        bytes=len(content),
        gzip_bytes=len(gzip.compress(content)),
        ops=dict(ops),
        tensors=[info for _, info in tensors],
        xnnpack_sparse=_xnnpack_sparse_rules(flatbuffer, subgraph, [i for _, i in tensors]),
        default_delegates=_loads(content) if check_loading else (None, "check_loading=False"),
        named_by_layer=keras_model is not None,
    )


def _content_of(model, keras_model):
    """(bytes, path label, Keras model or None) for what `inspect` was given."""
    import keras

    from keras_prune.tflite.results import ConversionResult

    if isinstance(model, keras.Model):
        from keras_prune.tflite.converter import convert

        return convert(model, verify=False).content, "(converted in memory)", model
    if isinstance(model, ConversionResult):
        return model.content, model.path or "(in memory)", keras_model
    if isinstance(keras_model, (str, os.PathLike)):
        keras_model = keras.saving.load_model(keras_model, compile=False)
    if isinstance(model, (bytes, bytearray)):
        return read_file(model, "model"), "(in memory)", keras_model
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(
            "Argument `model` must be a .tflite path, its bytes, a ConversionResult or a "
            f"Keras model. Received: {type(model).__name__}."
        )
    return read_file(model, "model"), os.fspath(model), keras_model


def _loads(content):
    """Whether LiteRT loads and runs `content` with its default delegates."""
    from keras_prune.tflite import _runtime

    try:
        _runtime.load_interpreter(content, default_delegates=True)
    except ImportError as error:
        return None, str(error).splitlines()[0]
    except _runtime.InterpreterLoadError as error:
        return False, str(error).split("delegates: ", 1)[-1]
    return True, f"checked in {_runtime.runtime_name()}"


def _xnnpack_sparse_rules(model, subgraph, tensors):
    """XNNPACK's documented conditions for sparse inference (delegates/xnnpack/README)."""
    ops = [(_flatbuffer.op_name(model, op), op) for op in subgraph.operators]
    names = [name for name, _ in ops]
    float_model = all(
        _flatbuffer.dtype_name(subgraph.tensors[int(i)].type) in ("float32", "float16")
        for i in subgraph.inputs
    ) and not any(t.dtype == "int8" for t in tensors)
    first_conv = next((op for name, op in ops if name == "CONV_2D"), None)
    stem_ok = False
    if first_conv is not None:
        filter_shape = tuple(subgraph.tensors[int(first_conv.inputs[1])].shape)
        options = first_conv.builtinOptions
        stride = (getattr(options, "strideH", 0), getattr(options, "strideW", 0))
        stem_ok = filter_shape[1:] == (3, 3, 3) and stride == (2, 2)
    pointwise = [t for t in tensors if t.op.startswith("CONV_2D") and t.shape[1:3] == (1, 1)]
    weights = sum(int(np.prod(t.shape)) for t in pointwise)
    zeros = sum(t.zero_fraction * int(np.prod(t.shape)) for t in pointwise)
    pointwise_sparsity = zeros / weights if weights else 0.0
    densified_pointwise = bool(pointwise) and all(t.densify for t in pointwise)
    spatial_mean = any(_is_spatial_mean(model, subgraph, op) for name, op in ops if name == "MEAN")
    strided, uneven = _strided_padding(model, subgraph, ops)
    return {
        "float model": (float_model, "sparse kernels are float only"),
        "sparse weights via DENSIFY": (
            densified_pointwise,
            f"{sum(t.densify for t in pointwise)}/{len(pointwise)} 1x1 CONV_2D weights",
        ),
        "starts with 3x3 stride-2 CONV_2D on 3 channels": (stem_ok, "first CONV_2D"),
        "ends with MEAN (global average pooling)": (
            spatial_mean, "MEAN over height and width" if spatial_mean else
            "no MEAN over the height and width of a 4-D tensor" + (
                " (the MEAN ops here average other axes, e.g. LayerNormalization's)"
                if "MEAN" in names else "")),
        "stride-2 convolutions padded kernel // 2 on every side": (
            strided > 0 and not uneven,
            f"{strided - len(uneven)}/{strided} padded evenly (PAD + VALID)" + (
                f"; not: {', '.join(uneven[:3])}"
                " (rewrite_for_xnnpack_sparse pads them evenly)" if uneven else "")),
        ">= 2/3 zeros in 1x1 CONV_2D weights": (
            pointwise_sparsity >= 2 / 3,
            f"{pointwise_sparsity:.1%} over {len(pointwise)} 1x1 convolutions",
        ),
    }


def _strided_padding(model, subgraph, ops):
    """(stride-2 CONV_2D/DEPTHWISE_CONV_2D count, descriptions of those not padded
    kernel // 2 on every side by a PAD before a VALID convolution). XNNPACK's sparse
    path rejects TF SAME padding at stride 2."""
    producers = {int(out): (name, op) for name, op in ops for out in op.outputs}
    count, uneven = 0, []
    for name, op in ops:
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            continue
        options = op.builtinOptions
        if (getattr(options, "strideH", 0), getattr(options, "strideW", 0)) != (2, 2):
            continue
        count += 1
        size = tuple(subgraph.tensors[int(op.inputs[1])].shape)[1]
        label = f"{name} {size}x{size}"
        if getattr(options, "padding", 0) != 1:  # schema: SAME 0, VALID 1
            uneven.append(f"{label} with SAME padding")
            continue
        producer = producers.get(int(op.inputs[0]))
        pads = None
        if producer is not None and producer[0] in ("PAD", "PADV2"):
            pads = _flatbuffer.buffer_array(model, subgraph.tensors[int(producer[1].inputs[1])])
        want = [[0, 0], [size // 2] * 2, [size // 2] * 2, [0, 0]]
        pads = None if pads is None else np.asarray(pads).reshape(-1, 2).tolist()
        if pads != want:
            uneven.append(f"{label} padded {pads}")
    return count, uneven


def _is_spatial_mean(model, subgraph, op):
    """A MEAN of a 4-D tensor over axes 1 and 2: global average pooling."""
    data = subgraph.tensors[int(op.inputs[0])]
    if len(data.shape) != 4 or len(op.inputs) < 2:
        return False
    axes = _flatbuffer.buffer_array(model, subgraph.tensors[int(op.inputs[1])])
    return sorted(int(a) % 4 for a in np.ravel(axes)) == [1, 2]
