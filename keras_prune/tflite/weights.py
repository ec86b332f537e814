"""The weights of a .tflite file: which constants are weights, their values, and which
Keras weight each one holds (matched by value). Used by `inspect` and by `convert`,
which names the file's weight tensors after the Keras weights."""

import collections
import dataclasses
import re

import numpy as np

from keras_prune.tflite import _flatbuffer

_WEIGHT_OPS = {
    "FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "CONV_3D",
    "BATCH_MATMUL", "EMBEDDING_LOOKUP", "UNIDIRECTIONAL_SEQUENCE_LSTM", "GATHER",
}
# Ops the weights may pass through on their way to the op that uses them.
_PASS_THROUGH = {"DENSIFY", "DEQUANTIZE"}


@dataclasses.dataclass
class TensorInfo:
    name: str  # the tensor's name in the file (the converter's, not always Keras')
    op: str  # the op that uses the weight, e.g. "FULLY_CONNECTED"
    shape: tuple
    dtype: str
    zero_fraction: float
    storage: str  # "dense", "sparse" or "sparse, block 1x4"
    densify: bool  # read through a DENSIFY op (decoded to dense when the model loads)
    bytes: int
    via: tuple = ()  # ops between the constant and `op`, e.g. ("DENSIFY",)
    layer: str | None = None  # the Keras weight it holds ("dense/kernel"), when known

    @property
    def label(self):
        """The Keras weight when known, else the file's name without TF op suffixes."""
        return self.layer or short_name(self.name)


# TensorFlow op names the converter leaves at the end of a weight's name.


# TensorFlow op names the converter leaves at the end of a weight's name.
_OP_SUFFIX = re.compile(r"^([A-Z]\w*|convolution|depthwise|kernel|read|\w*ReadVariableOp\w*)$")


def short_name(name):
    """'sequential_1/dense_1/MatMul;...' -> 'dense_1' (scope of the first fused name)."""
    parts = [part for part in name.split(";")[0].split("/") if part]
    while len(parts) > 1 and _OP_SUFFIX.match(parts[-1]):
        parts.pop()
    return "/".join(parts[1:] if len(parts) > 1 else parts)


def name_weights(content, keras_model):
    """`content` with each weight tensor renamed after the Keras weight it holds
    (`conv2d/kernel`), so that a later `inspect` of the file alone names them right.

    The converter's own names follow the traced graph, whose scopes it numbers again
    (a quantization-aware model's first kernel came out as `quant_conv2d_1/conv2d_1`).
    Tensors no Keras weight matches (folded BatchNorm) keep their names.
    """
    flatbuffer = _flatbuffer.read(content)
    subgraph = flatbuffer.subgraphs[0]
    tensors = weights_of_file(flatbuffer, subgraph)
    name_by_layer(flatbuffer, subgraph, tensors, keras_model)
    renamed = 0
    for tensor, info in tensors:
        if info.layer:
            tensor.name = info.layer.encode()
            renamed += 1
    return _flatbuffer.write(flatbuffer) if renamed else content


def weights_of_file(flatbuffer, subgraph):
    """[(tensor, TensorInfo)] for every constant that a weight-using op reads."""
    users = collections.defaultdict(list)
    for op in subgraph.operators:
        for index in op.inputs if op.inputs is not None else []:
            if index >= 0:
                users[int(index)].append(op)

    def final_user(index, via=()):
        for op in users.get(index, []):
            name = _flatbuffer.op_name(flatbuffer, op)
            if name in _PASS_THROUGH:
                return final_user(int(op.outputs[0]), via + (name,))
            return name, via
        return None, via

    found = []
    for index, tensor in enumerate(subgraph.tensors):
        values = _flatbuffer.buffer_array(flatbuffer, tensor)
        if values.size == 0 or tensor.shape is None or len(tensor.shape) < 2:
            continue
        op, via = final_user(index)
        if op not in _WEIGHT_OPS:
            continue
        total = int(np.prod(tensor.shape))
        if tensor.sparsity is not None:
            block = _flatbuffer.block_shape(tensor)
            storage = "sparse" if max(block) == 1 else "sparse, block " + "x".join(map(str, block))
            size = values.nbytes + _flatbuffer.sparse_index_bytes(tensor)
        else:
            storage = "dense"
            size = values.nbytes
        found.append((tensor, TensorInfo(
            name=_flatbuffer.tensor_name(tensor),
            op=op,
            shape=tuple(int(d) for d in tensor.shape),
            dtype=_flatbuffer.dtype_name(tensor.type),
            zero_fraction=1.0 - np.count_nonzero(values) / total,
            storage=storage,
            densify="DENSIFY" in via,
            bytes=int(size),
            via=via,
        )))
    return found


def _values(flatbuffer, tensor):
    """The real values of a constant, sorted (zeros of a sparse tensor included)."""
    quantization = tensor.quantization
    scale = getattr(quantization, "scale", None)
    values = _flatbuffer.buffer_array(flatbuffer, tensor).astype(np.float64)
    if tensor.sparsity is not None and scale is not None and len(scale):
        # A quantized sparse tensor: decoded, each value meets its channel's scale.
        try:
            values = _flatbuffer.decode_sparse(flatbuffer, tensor).astype(np.float64).ravel()
        except NotImplementedError:  # block-sparse: one scale is enough
            if len(scale) == 1:
                values = (values - float(quantization.zeroPoint[0])) * float(scale[0])
    if scale is not None and len(scale) and values.size == int(np.prod(tensor.shape)):
        shape = [int(d) for d in tensor.shape]
        axis = int(getattr(quantization, "quantizedDimension", 0) or 0)
        broadcast = [1] * len(shape)
        broadcast[axis] = -1 if len(scale) > 1 else 1
        zero_point = np.asarray(quantization.zeroPoint if quantization.zeroPoint is not None
                                else [0], np.float64).reshape(broadcast)
        values = ((values.reshape(shape) - zero_point)
                  * np.asarray(scale, np.float64).reshape(broadcast)).ravel()
    total = int(np.prod(tensor.shape))
    values = np.concatenate([values, np.zeros(total - values.size)])  # a sparse tensor's zeros
    return np.sort(values), (max(scale) if scale is not None and len(scale) else 0.0)


def name_by_layer(flatbuffer, subgraph, tensors, keras_model):
    """Sets `layer` on each weight whose values are those of one Keras weight.

    The converter transposes kernels and may rename layers, but keeps the values:
    a weight matches the Keras variable of the same size whose sorted values agree
    (within the quantization step). Folded weights (batch norm) stay unnamed.
    """
    import keras

    from keras_prune.tflite.inputs import strip_if_pruned

    keras_model = strip_if_pruned(keras_model)
    candidates = collections.defaultdict(list)
    for variable in keras_model.weights:
        if len(variable.shape) >= 2:
            values = np.sort(keras.ops.convert_to_numpy(variable).astype(np.float64).ravel())
            candidates[values.size].append([variable.path, values])
    for tensor, info in tensors:
        values, step = _values(flatbuffer, tensor)
        tolerance = step / 2 + 1e-3 * max(1.0, float(np.max(np.abs(values), initial=0.0)))
        for candidate in candidates.get(values.size, []):
            name, reference = candidate
            if name is not None and np.max(np.abs(values - reference)) <= tolerance:
                info.layer = name
                candidate[0] = None  # each Keras weight names one tensor
                break
