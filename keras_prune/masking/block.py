"""Block masks: prune whole (rows x cols) blocks of a rank-2 weight."""

from keras import ops

from keras_prune.masking.magnitude import magnitude_mask, threshold_mask

POOLING_TYPES = ("AVG", "MAX")


def _squeezed(shape):
    return tuple(d for d in shape if d != 1)


def is_blockable(shape):
    """True when blocks can tile a weight of `shape`: rank 2 after squeezing, as in tfmot."""
    return len(_squeezed(shape)) == 2


def check_block_fits(block_size, shape, weight_name):
    """Raises a ValueError when blocks cannot tile a weight.

    As in tfmot, a weight is squeezed first (a 1x1 convolution kernel counts as
    rank 2) and block sparsity needs a rank-2 weight.
    """
    if tuple(block_size) == (1, 1):
        return
    if not is_blockable(shape):
        raise ValueError(
            f"Argument `block_size`={tuple(block_size)} needs 2-dimensional weights (after "
            f"dropping size-1 dimensions), as in tfmot, but weight `{weight_name}` has shape "
            f"{tuple(_squeezed(shape))}. Use block_size=(1, 1) for this layer, or prune only rank-2 "
            "layers (Dense, 1x1 convolutions) with blocks."
        )
    shape = _squeezed(shape)
    if block_size[0] > shape[0] or block_size[1] > shape[1]:
        raise ValueError(
            f"Argument `block_size`={tuple(block_size)} does not fit weight "
            f"`{weight_name}` of shape {tuple(shape)}: each block dimension must be at "
            "most the weight's. Use a smaller block_size, or (1, 1) for unstructured pruning."
        )


def block_mask(weight, sparsity, block_size, pooling_type="AVG"):
    """Mask that keeps or drops whole blocks of `weight`, ranked by pooled |w|.

    The weight is squeezed to rank 2 first (see `check_block_fits`). Edges that do
    not fill a block are padded with zeros before pooling.

    Returns:
        (mask, threshold), the threshold in pooled-magnitude units.
    """
    weight = ops.convert_to_tensor(weight)
    rows_per_block, cols_per_block = block_size
    if (rows_per_block, cols_per_block) == (1, 1):
        return magnitude_mask(weight, sparsity)
    check_block_fits(block_size, weight.shape, "weight")
    shape = tuple(weight.shape)
    weight = ops.reshape(weight, _squeezed(shape))
    rows, cols = weight.shape
    pad_rows = -rows % rows_per_block
    pad_cols = -cols % cols_per_block
    magnitudes = ops.pad(ops.abs(weight), ((0, pad_rows), (0, pad_cols)))
    grid_rows = (rows + pad_rows) // rows_per_block
    grid_cols = (cols + pad_cols) // cols_per_block
    blocks = ops.reshape(magnitudes, (grid_rows, rows_per_block, grid_cols, cols_per_block))
    reduce = ops.mean if pooling_type == "AVG" else ops.max
    pooled = reduce(blocks, axis=(1, 3))
    pooled_mask, threshold = threshold_mask(pooled, sparsity)
    full = ops.repeat(ops.repeat(pooled_mask, rows_per_block, axis=0), cols_per_block, axis=1)
    return ops.reshape(full[:rows, :cols], shape), threshold
