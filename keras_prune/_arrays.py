"""Tensors to NumPy on every backend, including JAX arrays spread over several processes."""

import keras
import numpy as np


def to_numpy(value):
    """`keras.ops.convert_to_numpy`, and a JAX array sharded over several processes
    (`keras.distribution.initialize`) gathered first.

    Gathering is collective: every process must call this for the same array, as
    every process runs the same program under `keras.distribution`.
    """
    array = getattr(value, "value", value)  # a Keras variable's backend array
    if spans_processes(array) and not array.is_fully_replicated:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(array, tiled=True))
    return keras.ops.convert_to_numpy(array)


def spans_processes(value):
    """True for a JAX array laid out over devices of several processes."""
    array = getattr(value, "value", value)
    return keras.backend.backend() == "jax" and not getattr(array, "is_fully_addressable", True)


def values_to_copy(variables):
    """The values of `variables`, to load into a new model's variables.

    NumPy arrays, except under a multi-process `keras.distribution`: there the
    backend arrays themselves, which a variable with the same layout takes without a
    round trip through the host. (A round trip fails there: a replicated value can
    differ in its last bits between processes after a sharded computation, and JAX
    refuses to place a host value that differs between processes.)
    """
    if any(spans_processes(v) for v in variables):
        return [v.value for v in variables]
    return [to_numpy(v) for v in variables]
