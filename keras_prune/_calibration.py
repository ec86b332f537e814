"""Calibration data and eager layer hooks, shared by data-driven pruning.

`calibration_batches` turns what users pass (arrays, dicts of arrays, a
`tf.data.Dataset` or iterable of batches, strings for a keras_hub Task) into the
batches the model takes; `hooked` watches chosen layers' inputs and outputs while
the model runs eagerly.
"""

import contextlib

import keras
import numpy as np

_DEFAULT_BATCH = 8


def calibration_batches(model, data, batch_size=_DEFAULT_BATCH):
    """Batches `model` takes, from arrays, dicts of arrays, strings or a dataset.

    Strings are tokenized by the model's preprocessor (a keras_hub Task's).
    """
    if data is None:
        raise ValueError("Calibration `data` is required here. Received: data=None.")
    if hasattr(data, "as_numpy_iterator") or (
        hasattr(data, "__iter__") and not isinstance(data, (dict, list, tuple, np.ndarray))
    ):
        for batch in data:  # a tf.data.Dataset or a generator of batches
            batch = batch[0] if isinstance(batch, tuple) else batch
            yield keras.tree.map_structure(np.asarray, batch)  # any backend takes arrays
        return
    if _is_text(data):
        preprocessor = getattr(model, "preprocessor", None)
        if preprocessor is None:
            raise ValueError(
                f"Argument `data` holds strings, but {type(model).__name__} has no "
                "preprocessor to tokenize them. Pass token ids (a dict like the backbone's "
                "inputs), or a Task with its preprocessor."
            )
        texts = list(data)
        for start in range(0, len(texts), batch_size):
            batch = preprocessor(texts[start:start + batch_size])
            yield batch[0] if isinstance(batch, tuple) else batch
        return
    leaves = keras.tree.flatten(data)
    count = len(leaves[0])
    for start in range(0, count, batch_size):
        yield keras.tree.map_structure(lambda a: np.asarray(a[start:start + batch_size]), data)


def _is_text(data):
    if isinstance(data, np.ndarray):
        return data.dtype.kind in "US" or (data.dtype == object and len(data)
                                          and isinstance(data.flat[0], str))
    return isinstance(data, (list, tuple)) and bool(data) and isinstance(data[0], str)


@contextlib.contextmanager
def hooked(layers, hook):
    """Calls `hook(layer, args, kwargs, output)` after each call of each layer (eager runs only)."""
    originals = {}

    def wrap(layer, original):
        def call(*args, **kwargs):
            output = original(*args, **kwargs)
            hook(layer, args, kwargs, output)
            return output

        return call

    try:
        for layer in layers:
            originals[id(layer)] = (layer, layer.call)
            layer.call = wrap(layer, layer.call)
        yield
    finally:
        for layer, original in originals.values():
            del layer.call
            if layer.call != original:  # an instance attribute of its own, put it back
                layer.call = original
