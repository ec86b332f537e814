"""`inspect`: what is inside a .tflite file, weight by weight."""

import collections
import dataclasses
import gzip
import os

import numpy as np

from keras_prune._text import table
from keras_prune.tflite import _flatbuffer

# Ops whose constant inputs are weights worth listing.
_WEIGHT_OPS = {
    "FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "CONV_3D",
    "BATCH_MATMUL", "EMBEDDING_LOOKUP", "UNIDIRECTIONAL_SEQUENCE_LSTM", "GATHER",
}
# Ops the weights may pass through on their way to the op that uses them.
_PASS_THROUGH = {"DENSIFY", "DEQUANTIZE"}


@dataclasses.dataclass
class TensorInfo:
    name: str
    op: str  # the op that uses the weight, e.g. "FULLY_CONNECTED (via DENSIFY)"
    shape: tuple
    dtype: str
    zero_fraction: float
    storage: str  # "dense", "sparse" or "sparse, block 1x4"
    densify: bool  # read through a DENSIFY op (decoded to dense when the model loads)
    bytes: int


@dataclasses.dataclass
class Inspection:
    """The weights, ops and sizes of a .tflite file (see `inspect`)."""

    path: str
    bytes: int
    gzip_bytes: int
    ops: dict
    tensors: list
    xnnpack_sparse: dict  # rule -> (met, detail), XNNPACK's sparse-inference rules

    @property
    def densify_ops(self):
        return self.ops.get("DENSIFY", 0)

    @property
    def meets_xnnpack_sparse_rules(self):
        return all(met for met, _ in self.xnnpack_sparse.values())

    def recommendations(self):
        """Interpreter options this file calls for, in words."""
        notes = []
        int8_sparse = [t for t in self.tensors if t.densify and t.dtype == "int8"]
        if int8_sparse:
            notes.append(
                f"{len(int8_sparse)} int8 weight(s) are read through DENSIFY: the default "
                "XNNPACK delegate fails to prepare such models. Re-export with "
                "keras_prune.tflite.convert(sparse='auto'), or create the interpreter "
                "without default delegates (slower)."
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
        if not notes:
            notes.append("Use the default interpreter options (XNNPACK on, threads as needed).")
        return notes

    def __str__(self):
        lines = [
            f"{self.path}: {self.bytes:,} bytes, {self.gzip_bytes:,} gzipped",
            "ops: " + ", ".join(f"{op} x{n}" for op, n in sorted(self.ops.items())),
        ]
        rows = [
            (t.name if len(t.name) <= 48 else "..." + t.name[-45:], t.op, str(t.shape), t.dtype,
             f"{t.zero_fraction:.1%}", t.storage, f"{t.bytes:,}")
            for t in self.tensors
        ]
        header = ("weight", "op", "shape", "dtype", "zeros", "storage", "bytes")
        lines += table(header, rows, right=(4, 6))
        lines.append("XNNPACK sparse inference rules:")
        for rule, (met, detail) in self.xnnpack_sparse.items():
            lines.append(f"  [{'x' if met else ' '}] {rule}: {detail}")
        lines.append("Recommendations:")
        lines.extend(f"  - {note}" for note in self.recommendations())
        return "\n".join(lines)


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


def inspect(path):
    """Lists every weight of a .tflite file: op, shape, dtype, zeros, storage, bytes.

    Also counts ops (DENSIFY among them), checks XNNPACK's sparse-inference rules and
    reports file and gzip sizes.

    Example:

    ```python
    print(keras_prune.tflite.inspect("model.tflite"))   # a table
    ```

    Args:
        path: a .tflite path, or the file's bytes.

    Returns:
        An `Inspection`.

    Raises:
        FileNotFoundError: for a missing file.
        ValueError: for bytes that are not a TFLite flatbuffer.
    """
    content = read_file(path)
    path = "(in memory)" if isinstance(path, (bytes, bytearray)) else os.fspath(path)
    try:
        model = _flatbuffer.read(content)
    except Exception as error:  # noqa: BLE001
        raise ValueError(f"Argument `path`: {path!r} could not be parsed as TFLite: {error}") from None
    subgraph = model.subgraphs[0]
    ops = collections.Counter(_flatbuffer.op_name(model, op) for op in subgraph.operators)
    users = collections.defaultdict(list)
    for op in subgraph.operators:
        for index in op.inputs if op.inputs is not None else []:
            if index >= 0:
                users[int(index)].append(op)

    def final_user(index, via=()):
        for op in users.get(index, []):
            name = _flatbuffer.op_name(model, op)
            if name in _PASS_THROUGH:
                return final_user(int(op.outputs[0]), via + (name,))
            return name, via
        return None, via

    tensors = []
    for index, tensor in enumerate(subgraph.tensors):
        values = _flatbuffer.buffer_array(model, tensor)
        if values.size == 0 or tensor.shape is None or len(tensor.shape) < 2:
            continue
        op, via = final_user(index)
        if op not in _WEIGHT_OPS:
            continue
        total = int(np.prod(tensor.shape))
        sparse = tensor.sparsity is not None
        if sparse:
            block = _flatbuffer.block_shape(tensor)
            storage = "sparse" if max(block) == 1 else "sparse, block " + "x".join(map(str, block))
            size = values.nbytes + _flatbuffer.sparse_index_bytes(tensor)
        else:
            storage = "dense"
            size = values.nbytes
        label = op + (f" (via {'+'.join(via)})" if via else "")
        tensors.append(
            TensorInfo(
                name=_flatbuffer.tensor_name(tensor),
                op=label,
                shape=tuple(int(d) for d in tensor.shape),
                dtype=_flatbuffer.dtype_name(tensor.type),
                zero_fraction=1.0 - np.count_nonzero(values) / total,
                storage=storage,
                densify="DENSIFY" in via,
                bytes=int(size),
            )
        )
    return Inspection(
        path=path,
        bytes=len(content),
        gzip_bytes=len(gzip.compress(content)),
        ops=dict(ops),
        tensors=tensors,
        xnnpack_sparse=_xnnpack_sparse_rules(model, subgraph, tensors),
    )


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
    return {
        "float model": (float_model, "sparse kernels are float only"),
        "sparse weights via DENSIFY": (
            densified_pointwise,
            f"{sum(t.densify for t in pointwise)}/{len(pointwise)} 1x1 CONV_2D weights",
        ),
        "starts with 3x3 stride-2 CONV_2D on 3 channels": (stem_ok, "first CONV_2D"),
        "ends with MEAN (global average pooling)": ("MEAN" in names, "MEAN op present" if "MEAN" in names else "no MEAN op"),
        ">= 2/3 zeros in 1x1 CONV_2D weights": (
            pointwise_sparsity >= 2 / 3,
            f"{pointwise_sparsity:.1%} over {len(pointwise)} 1x1 convolutions",
        ),
    }
