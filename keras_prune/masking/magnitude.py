"""Magnitude masks: keep the largest |w|, per tensor or across many tensors.

The threshold is the k-th largest magnitude, found with a partial selection
(`top_k` on the smaller side of the split), never a full sort of the tensor.
"""

from keras import ops


def num_kept(size, sparsity):
    """tfmot's count of surviving weights: max(round(size * (1 - sparsity)), 1)."""
    return max(int(round(size * (1.0 - float(sparsity)))), 1)


def kth_largest(values, k):
    """The k-th largest entry of the 1-D tensor `values` (1 <= k <= len)."""
    n = int(values.shape[0])
    if k <= n // 2 + 1:
        return ops.min(ops.top_k(values, k, sorted=False)[0])
    # The k-th largest is the (n - k + 1)-th smallest: select on the short side.
    return -ops.min(ops.top_k(-values, n - k + 1, sorted=False)[0])


def threshold_mask(scores, sparsity):
    """Mask keeping the `num_kept` highest `scores`; returns (mask, threshold)."""
    flat = ops.reshape(scores, (-1,))
    size = int(flat.shape[0])
    if sparsity <= 0.0:
        return ops.ones_like(scores), ops.convert_to_tensor(0.0, scores.dtype)
    threshold = kth_largest(flat, num_kept(size, sparsity))
    return ops.cast(ops.greater_equal(scores, threshold), scores.dtype), threshold


def magnitude_mask(weight, sparsity):
    """Per-tensor magnitude mask of `weight` at `sparsity`: (mask, threshold).

    Example:

    ```python
    mask, threshold = magnitude_mask(kernel, 0.8)  # keeps the top 20% of |kernel|
    ```
    """
    return threshold_mask(ops.abs(ops.convert_to_tensor(weight)), sparsity)


def global_magnitude_masks(weights, sparsity):
    """One threshold across all `weights`, so layers end up with different sparsities.

    Returns a list of masks (one per weight) and the shared threshold.
    """
    magnitudes = [ops.abs(ops.convert_to_tensor(w)) for w in weights]
    if sparsity <= 0.0:
        return [ops.ones_like(m) for m in magnitudes], ops.convert_to_tensor(0.0)
    flat = ops.concatenate([ops.reshape(ops.cast(m, "float32"), (-1,)) for m in magnitudes])
    threshold = kth_largest(flat, num_kept(int(flat.shape[0]), sparsity))
    masks = [
        ops.cast(ops.greater_equal(ops.cast(m, "float32"), threshold), m.dtype) for m in magnitudes
    ]
    return masks, threshold
