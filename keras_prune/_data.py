"""User data's one door: every `data=` argument of keras_prune goes through `samples`.

As Keras' `data_adapters/` do for `fit`, one function turns what users pass into
in-memory samples the model takes, with one set of errors:

- an array (or tensor) of samples for a one-input model;
- a list (or a tuple with one entry per input) of arrays, or a dict of arrays by
  input name, for a model of several inputs;
- a tuple `(x, y)` or `(x, y, sample_weight)` of any of those, as `fit` takes;
- a `tf.data.Dataset`, a generator or any other iterable of such batches;
- strings, tokenized by the model's preprocessor (a keras_hub Task's).

Calibration and importance data are small (hundreds to a few thousand samples), so
they are gathered into NumPy arrays once and batched from there; every pass over
them (several verbs read the data more than once) sees the same samples.
"""

import dataclasses

import keras
import numpy as np

_TEXT_BATCH = 8
_FORMS = ("an array of samples, a list or dict of arrays (one per model input), a tuple "
          "(x, y), a tf.data.Dataset or a generator of batches, or strings for a keras_hub "
          "Task with a preprocessor")


@dataclasses.dataclass
class Samples:
    """Samples in the structure the model takes (`x`) and their labels (`y`, or None)."""

    x: object  # an array, a list of arrays (one per input) or a dict of arrays
    y: object = None

    def __len__(self):
        return len(keras.tree.flatten(self.x)[0])

    def input_arrays(self):
        """One array per model input, in the order of `model.inputs`."""
        return keras.tree.flatten(self.x)

    def batches(self, batch_size):
        """The samples `batch_size` at a time, in the structure the model takes."""
        for start in range(0, len(self), batch_size):
            yield keras.tree.map_structure(lambda a: a[start:start + batch_size], self.x)

    def input_batches(self, batch_size):
        """Lists of input arrays (one per model input), `batch_size` samples at a time."""
        for start in range(0, len(self), batch_size):
            yield [a[start:start + batch_size] for a in self.input_arrays()]

    def head(self, limit):
        """The first `limit` samples (all of them when `limit` is None)."""
        if limit is None or len(self) <= limit:
            return self
        return Samples(*(None if part is None else keras.tree.map_structure(
            lambda a: a[:limit], part) for part in (self.x, self.y)))


def samples(model, data, *, argument="data", labels=False, limit=None):
    """`data` as `Samples` for `model`, checked: not empty, finite, shaped like the inputs.

    Args:
        model: the Keras model the samples are for (its inputs give the expected shapes).
        data: any of the forms in the module docstring.
        argument: the argument's name, for error messages.
        labels: the caller needs labels: `data` must be `(x, y)` or yield such pairs.
        limit: keep at most this many samples (a dataset or generator is read only that far).

    Raises:
        ValueError: for no data, no samples, non-finite values, samples shaped unlike
            the model's inputs, or missing labels when `labels=True`.
        TypeError: for a kind of data not listed above.
    """
    if isinstance(data, Samples):
        return data.head(limit)
    if data is None:
        wanted = "labelled samples, `(x, y)` or a dataset of (x, y) batches" if labels else _FORMS
        raise ValueError(f"Argument `{argument}` is required here: pass {wanted}. "
                         f"Received: {argument}=None.")
    if _is_iterator(data):
        x, y = _gather(data, argument, limit)
    elif _is_text(data):
        x, y = _tokenize(model, list(data), argument), None
    else:
        x, y = _split_labels(model, data)
        x = _as_arrays(x, argument)
        y = None if y is None else _as_arrays(y, f"{argument}[1]")
    if labels and y is None:
        raise ValueError(
            f"Argument `{argument}` must hold labelled samples here: pass `{argument}=(x, y)` "
            "(arrays, e.g. a batch of training data) or a dataset of (x, y) batches. "
            f"Received: {_describe(data)}."
        )
    result = Samples(x, y).head(limit)
    _check(model, result, argument)
    return result


def _is_iterator(data):
    return hasattr(data, "as_numpy_iterator") or (
        hasattr(data, "__iter__")
        and not isinstance(data, (dict, list, tuple, np.ndarray, str, bytes))
        and not hasattr(data, "__array__") and not keras.ops.is_tensor(data)
    )


def _is_text(data):
    if isinstance(data, np.ndarray):
        return data.dtype.kind in "US" or (data.dtype == object and data.size > 0
                                          and isinstance(data.flat[0], str))
    return isinstance(data, (list, tuple)) and bool(data) and isinstance(data[0], str)


def _split_labels(model, data):
    """(x, y) from `fit`-style data; a tuple with one array per input is inputs only."""
    if not isinstance(data, tuple) or len(data) not in (2, 3):
        return data, None
    inputs = len(getattr(model, "inputs", None) or [None])
    per_input = inputs == len(data) and all(_is_array(part) for part in data)
    return (data, None) if per_input else (data[0], data[1])


def _is_array(value):
    return isinstance(value, np.ndarray) or keras.ops.is_tensor(value) or hasattr(
        value, "__array__")


def _as_arrays(structure, argument):
    if isinstance(structure, tuple):
        structure = list(structure)
    try:
        return keras.tree.map_structure(_to_numpy, structure)
    except (TypeError, ValueError) as error:
        raise TypeError(f"Argument `{argument}` must be {_FORMS}. Received: "
                        f"{_describe(structure)} ({error}).") from None


def _to_numpy(value):
    if keras.ops.is_tensor(value):
        return keras.ops.convert_to_numpy(value)
    array = np.asarray(value)
    if array.dtype == object:
        raise TypeError("a ragged or mixed sequence cannot become one array")
    return array


def _gather(data, argument, limit):
    """Concatenates the batches of a dataset or generator (up to `limit` samples)."""
    cardinality = getattr(data, "cardinality", None)
    if callable(cardinality) and int(cardinality()) == -1:  # tf.data.INFINITE_CARDINALITY
        raise ValueError(
            f"Argument `{argument}` is an infinite tf.data.Dataset (it repeats). Pass a "
            f"finite one, e.g. `{argument}=dataset.take(32)`."
        )
    xs, ys, count = [], [], 0
    iterator = data.as_numpy_iterator() if hasattr(data, "as_numpy_iterator") else iter(data)
    for batch in iterator:
        x, y = (batch[0], batch[1]) if isinstance(batch, tuple) and len(batch) in (2, 3) else (
            batch, None)
        xs.append(_as_arrays(x, argument))
        ys.append(None if y is None else _as_arrays(y, argument))
        count += len(keras.tree.flatten(xs[-1])[0])
        if limit is not None and count >= limit:
            break
    if not xs:
        raise ValueError(f"Argument `{argument}` yielded no batches. Pass a dataset or "
                         "generator that yields at least one batch of samples.")
    x = keras.tree.map_structure(lambda *parts: np.concatenate(parts), *xs)
    y = None if any(part is None for part in ys) else keras.tree.map_structure(
        lambda *parts: np.concatenate(parts), *ys)
    return x, y


def _tokenize(model, texts, argument):
    preprocessor = getattr(model, "preprocessor", None)
    if preprocessor is None:
        raise ValueError(
            f"Argument `{argument}` holds strings, but {type(model).__name__} has no "
            "preprocessor to tokenize them. Pass token ids (a dict like the backbone's "
            "inputs), or a Task with its preprocessor."
        )
    parts = []
    for start in range(0, len(texts), _TEXT_BATCH):
        batch = preprocessor(texts[start:start + _TEXT_BATCH])
        batch = batch[0] if isinstance(batch, tuple) else batch
        parts.append(keras.tree.map_structure(_to_numpy, batch))
    return keras.tree.map_structure(lambda *p: np.concatenate(p), *parts)


def _check(model, found, argument):
    leaves = found.input_arrays()
    counts = {len(a) if a.ndim else 0 for a in leaves}
    if len(counts) != 1:
        raise ValueError(f"Argument `{argument}` holds inputs with different numbers of "
                         f"samples ({sorted(counts)}); every input needs one row per sample.")
    if not counts.pop():
        raise ValueError(
            f"Argument `{argument}` holds no samples (0 rows). Pass at least one sample, "
            f"e.g. {argument}=x_train[:256]."
        )
    for leaf in leaves + ([] if found.y is None else keras.tree.flatten(found.y)):
        if leaf.dtype.kind == "f" and not np.all(np.isfinite(leaf)):
            bad = int(np.size(leaf) - np.count_nonzero(np.isfinite(leaf)))
            raise ValueError(
                f"Argument `{argument}` holds {bad} NaN or infinite value(s); every pruning "
                "decision made from it would be NaN. Clean the data (e.g. np.nan_to_num) or "
                "pass other samples."
            )
    inputs = keras.tree.flatten(getattr(model, "inputs", None) or [])
    if not inputs:
        return  # a subclassed model: its call() decides what it takes
    if len(leaves) != len(inputs):
        raise ValueError(
            f"Argument `{argument}` must hold one array per model input ({len(inputs)}). "
            f"Received {len(leaves)}."
        )
    for array, tensor in zip(leaves, inputs):
        expected = tuple(tensor.shape[1:])
        if array.ndim != len(tensor.shape) or any(
            e is not None and e != s for e, s in zip(expected, array.shape[1:])
        ):
            raise ValueError(
                f"Argument `{argument}` must be an array of samples shaped "
                f"(n, {', '.join('?' if e is None else str(e) for e in expected)}) "
                f"for input `{tensor.name}`. Received: shape {array.shape}. Pass a batch of "
                f"training inputs, e.g. {argument}=x_train[:256]."
            )


def _describe(data):
    if isinstance(data, (tuple, list)):
        return f"a {type(data).__name__} of {len(data)}"
    shape = getattr(data, "shape", None)
    return f"{type(data).__name__}" + (f" of shape {tuple(shape)}" if shape is not None else "")
