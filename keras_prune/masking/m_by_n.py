"""M:N masks: m zeros in every n consecutive weights along the input channels."""

from keras import ops

from keras_prune import _validation


def check_m_by_n(value):
    """Validates tfmot's `sparsity_m_by_n=(m, n)`: m zeros out of every n, 0 < m < n."""
    m, n = _validation.check_int_pair("sparsity_m_by_n", value, minimum=1)
    if m >= n:
        raise ValueError(
            "Argument `sparsity_m_by_n`=(m, n) means m zeros in every n consecutive "
            f"weights, so m must be smaller than n. Received: sparsity_m_by_n={tuple(value)}. "
            "For 2:4 sparsity pass (2, 4)."
        )
    return m, n


def m_by_n_mask(weight, m_by_n):
    """Mask with exactly m zeros in each group of n along axis -2 (input channels).

    For a Dense kernel (in, out) the groups run along `in`; for a Conv2D kernel
    (h, w, in, out) along `in` too, which is the innermost (channel_in) axis of
    the TFLite weight layout. A partial last group is padded, as in tfmot.

    Returns:
        (mask, threshold) with threshold 0 (M:N has no global threshold).
    """
    weight = ops.convert_to_tensor(weight)
    if len(weight.shape) < 2:
        raise ValueError(
            "`sparsity_m_by_n` needs a weight of rank >= 2 (it groups input channels). "
            f"Received a weight of shape {tuple(weight.shape)}."
        )
    num_zeros, group = m_by_n
    moved = ops.moveaxis(ops.abs(weight), -2, -1)
    moved_shape = tuple(moved.shape)
    channels = moved_shape[-1]
    pad = -channels % group
    widths = [(0, 0)] * (len(moved_shape) - 1) + [(0, pad)]
    groups = ops.reshape(ops.pad(moved, widths), (-1, group))
    _, keep = ops.top_k(groups, group - num_zeros, sorted=False)
    group_mask = ops.sum(ops.one_hot(keep, group, dtype=weight.dtype), axis=-2)
    mask = ops.reshape(group_mask, moved_shape[:-1] + (channels + pad,))[..., :channels]
    return ops.moveaxis(mask, -1, -2), ops.convert_to_tensor(0.0, weight.dtype)
