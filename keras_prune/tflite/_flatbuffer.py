"""Reading and editing .tflite flatbuffers (via the schema that LiteRT ships).

Only what keras_prune needs: a table of weight tensors (dtype, zeros, how they are
stored), and `densify_weights`, which turns a sparse weight that the runtime can only
use through a DENSIFY op back into a plain constant.
"""

import numpy as np


def _modules():
    try:
        from ai_edge_litert import schema_py_generated as schema
        from ai_edge_litert.tools import flatbuffer_utils
    except ImportError:
        from tensorflow.lite.python import schema_py_generated as schema
        from tensorflow.lite.tools import flatbuffer_utils
    return schema, flatbuffer_utils


def read(content):
    """Parses the bytes of a .tflite file into the flatbuffer object API (`ModelT`)."""
    _, utils = _modules()
    return utils.read_model_from_bytearray(bytearray(content))


def write(model):
    _, utils = _modules()
    return bytes(utils.convert_object_to_bytearray(model))


def _numpy_dtypes():
    schema, _ = _modules()
    names = {
        "FLOAT32": np.float32, "FLOAT16": np.float16, "FLOAT64": np.float64,
        "INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16, "INT32": np.int32,
        "INT64": np.int64, "BOOL": np.bool_,
    }
    return {getattr(schema.TensorType, name): dtype for name, dtype in names.items()}


def dtype_name(type_code):
    schema, _ = _modules()
    for name, value in vars(schema.TensorType).items():
        if value == type_code and not name.startswith("_"):
            return name.lower()
    return str(type_code)


def tensor_name(tensor):
    return tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)


def op_name(model, operator):
    _, utils = _modules()
    return utils.opcode_to_name(model, operator.opcodeIndex)


def buffer_array(model, tensor):
    """The stored values of `tensor` as a flat numpy array (empty for activations)."""
    data = model.buffers[tensor.buffer].data
    if data is None or len(data) == 0:
        return np.zeros((0,), np.uint8)
    dtype = _numpy_dtypes().get(tensor.type, np.uint8)
    return np.frombuffer(np.asarray(data, np.uint8).tobytes(), dtype=dtype)


def _index_vector(union):
    return np.asarray(union.values, dtype=np.int64)


def sparse_index_bytes(tensor):
    """Bytes that the sparse encoding of `tensor` spends on segments and indices."""
    total = 0
    for dim in tensor.sparsity.dimMetadata or []:
        for union in (dim.arraySegments, dim.arrayIndices):
            if union is not None and union.values is not None:
                total += np.asarray(union.values).nbytes
    return total


def block_shape(tensor):
    """The block of a sparse tensor, e.g. (1, 4); (1, 1) for element-wise sparsity."""
    sparsity = tensor.sparsity
    shape = [1] * len(tensor.shape)
    block_map = [] if sparsity.blockMap is None else list(sparsity.blockMap)
    rank = len(tensor.shape)
    for position, axis in enumerate(block_map):
        shape[int(axis)] = int(sparsity.dimMetadata[rank + position].denseSize)
    return tuple(shape)


def decode_sparse(model, tensor):
    """Dense values of an element-wise (unblocked, CSR on the last axis) sparse tensor."""
    sparsity = tensor.sparsity
    shape = [int(d) for d in tensor.shape]
    traversal = [int(a) for a in sparsity.traversalOrder]
    if sparsity.blockMap is not None and len(sparsity.blockMap):
        raise NotImplementedError("decoding block-sparse tensors")
    if traversal != list(range(len(shape))):
        raise NotImplementedError(f"decoding traversal order {traversal}")
    schema, _ = _modules()
    formats = [dim.format for dim in sparsity.dimMetadata]
    dense = schema.DimensionType.DENSE
    if any(f != dense for f in formats[:-1]) or formats[-1] != schema.DimensionType.SPARSE_CSR:
        raise NotImplementedError(f"decoding dimension formats {formats}")
    values = buffer_array(model, tensor)
    last = sparsity.dimMetadata[-1]
    segments = _index_vector(last.arraySegments)
    columns = _index_vector(last.arrayIndices)
    rows = int(np.prod(shape[:-1]))
    result = np.zeros((rows, shape[-1]), dtype=values.dtype)
    row_of_value = np.repeat(np.arange(rows), np.diff(segments))
    result[row_of_value, columns] = values
    return result.reshape(shape)


def densify_weights(content, should_densify):
    """Replaces `DENSIFY(sparse constant)` by a dense constant where `should_densify` says.

    `should_densify(model, sparse_tensor, consumers)` gets the flatbuffer model, the
    sparse tensor and the op names that read the DENSIFY output. Returns the new bytes
    and the names of the tensors that were densified.
    """
    schema, _ = _modules()
    model = read(content)
    changed = []
    for subgraph in model.subgraphs:
        consumers = {}
        for operator in subgraph.operators:
            for index in operator.inputs:
                consumers.setdefault(int(index), []).append(op_name(model, operator))
        kept = []
        for operator in subgraph.operators:
            if op_name(model, operator) != "DENSIFY":
                kept.append(operator)
                continue
            source = subgraph.tensors[int(operator.inputs[0])]
            target = subgraph.tensors[int(operator.outputs[0])]
            if not should_densify(model, source, consumers.get(int(operator.outputs[0]), [])):
                kept.append(operator)
                continue
            dense = decode_sparse(model, source)
            # The DENSIFY output becomes a constant with a buffer of its own; the sparse
            # source stays in the tensor list (indices elsewhere remain valid) but
            # loses its data and sparsity, pointing at the empty sentinel buffer 0.
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(dense.tobytes(), np.uint8)
            model.buffers.append(buffer)
            target.buffer = len(model.buffers) - 1
            target.quantization = target.quantization or source.quantization
            model.buffers[source.buffer].data = None
            source.buffer = 0
            source.sparsity = None
            changed.append(tensor_name(target))
        subgraph.operators = kept
    return write(model), changed


_CASTS = ("QUANTIZE", "DEQUANTIZE")


def float_ops(content):
    """'OP (output tensor)' for each op of the main graph that computes in float32.

    QUANTIZE/DEQUANTIZE at the edges and ops on integer indices (SHAPE, PACK, ...)
    are not float ops; an op counts when any input or output it computes on is float32.
    """
    model = read(content)
    subgraph = model.subgraphs[0]
    float32 = dtype_name_code("float32")
    found = []
    for operator in subgraph.operators:
        name = op_name(model, operator)
        if name in _CASTS:
            continue
        tensors = [subgraph.tensors[int(i)] for i in list(operator.inputs) + list(operator.outputs)
                   if int(i) >= 0]
        if any(t.type == float32 for t in tensors):
            output = subgraph.tensors[int(operator.outputs[0])]
            found.append(f"{name} ({tensor_name(output)})")
    return found


def dtype_name_code(name):
    schema, _ = _modules()
    return getattr(schema.TensorType, name.upper())
