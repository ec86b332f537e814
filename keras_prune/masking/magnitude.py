"""Magnitude masks: keep the largest |w|, per tensor or across many tensors.

The threshold is the k-th largest magnitude, found in linear time on the CPU
(NumPy's introselect) and with a partial selection elsewhere (`top_k` on the smaller
side of the split), never a full sort of the tensor. A
kernel sharded over several JAX devices is ranked where it lies, by bisection on
counts (see `_sharded_kth_largest`): `top_k` would gather the whole kernel onto
every device first.
"""

import functools

import keras
import numpy as np
from keras import ops


def num_kept(size, sparsity):
    """tfmot's count of surviving weights: max(round(size * (1 - sparsity)), 1)."""
    return max(int(round(size * (1.0 - float(sparsity)))), 1)


def kth_largest(values, k):
    """The k-th largest entry of the 1-D tensor `values` (1 <= k <= len).

    On the CPU, eagerly, a linear-time selection (NumPy's introselect); elsewhere
    (accelerators, traced functions) a partial `top_k` on the short side.
    """
    n = int(values.shape[0])
    host = _host_array(values)
    if host is not None:
        return ops.convert_to_tensor(_host_kth_largest(host, k), values.dtype)
    if k <= n // 2 + 1:
        return ops.min(ops.top_k(values, k, sorted=False)[0])
    # The k-th largest is the (n - k + 1)-th smallest: select on the short side.
    return -ops.min(ops.top_k(-values, n - k + 1, sorted=False)[0])


def _host_kth_largest(values, k):
    """k-th largest of a NumPy vector by introselect. Magnitudes after a mask update are
    mostly exact zeros, whose ties slow the selection down ~8x: select among the
    positive ones (the answer is 0 when fewer than k are positive)."""
    if values.min() >= 0:
        positive = values[values > 0]
        if k > len(positive):
            return values.dtype.type(0)
        values = positive
    n = len(values)
    return np.partition(values, n - k)[n - k]


def _host_array(values):
    """`values` as a NumPy array when it is a concrete tensor on the CPU, else None."""
    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            if "CPU" not in values.device.upper():
                return None
        elif backend == "jax":
            if any(device.platform != "cpu" for device in values.devices()):
                return None
        elif backend == "torch":
            if values.device.type != "cpu":
                return None
        return np.asarray(ops.convert_to_numpy(values))
    except (AttributeError, TypeError, ValueError, NotImplementedError):
        return None  # symbolic (traced) tensors have no device or value: use top_k


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
    magnitudes = ops.abs(ops.convert_to_tensor(weight))
    if sparsity > 0.0 and _is_sharded(magnitudes):
        threshold = _sharded_kth_largest(magnitudes, num_kept(int(ops.size(magnitudes)), sparsity))
        return ops.cast(ops.greater_equal(magnitudes, threshold), magnitudes.dtype), threshold
    return threshold_mask(magnitudes, sparsity)


def _is_sharded(values):
    """True for a float32 JAX array split over several devices (not replicated)."""
    if keras.backend.backend() != "jax" or str(values.dtype) != "float32":
        return False
    sharding = getattr(values, "sharding", None)
    return (sharding is not None and len(sharding.device_set) > 1
            and not sharding.is_fully_replicated)


def _sharded_kth_largest(magnitudes, k):
    """The k-th largest of non-negative float32 `magnitudes`, without gathering them.

    For non-negative floats the order of the values is the order of their bit
    patterns read as int32, so the k-th largest value is the largest pattern `b`
    with count(bits >= b) >= k: 31 halvings of [0, +inf]. Each step reduces a count
    on every shard and all-reduces one scalar. The result equals `kth_largest`'s.
    """
    return _bisection()(magnitudes, k)


@functools.cache
def _bisection():
    """The jitted bisection (built on first use, JAX only)."""
    import jax
    import jax.numpy as jnp

    @jax.jit
    def bisect(values, k):
        bits = jax.lax.bitcast_convert_type(values, jnp.int32)

        def halve(state):
            low, high = state
            middle = low + (high - low) // 2
            enough = jnp.sum(bits >= middle) >= k
            return jnp.where(enough, middle, low), jnp.where(enough, high, middle)

        low, _ = jax.lax.while_loop(lambda state: state[1] - state[0] > 1, halve,
                                    (jnp.int32(0), jnp.int32(0x7F800001)))
        return jax.lax.bitcast_convert_type(low, jnp.float32)

    return bisect


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
