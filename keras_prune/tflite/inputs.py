"""The model and the sample data `convert` works on: loading, stripping, fixed input
shapes, calibration and verification samples (one array per input, batch 1)."""

import os

import keras
import numpy as np

from keras_prune._io import load_keras_file
from keras_prune._models import check_built, check_keras3, flatten_layers, input_structure
from keras_prune.layers import collect_wrappers
from keras_prune.strip import strip_pruning


def load_model(model):
    if isinstance(model, (str, os.PathLike)):
        return load_keras_file(model, "model")
    check_keras3(model, "model")
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"Argument `model` must be a keras.Model or the path of a .keras file. "
            f"Received: {type(model).__name__}."
        )
    check_built(model, "model")
    return model


def strip_if_pruned(model):
    return strip_pruning(model) if collect_wrappers(model) else model


def input_names(model):
    """The name of each of `model.inputs`: its key in a dict-input model, else its own."""
    structure = input_structure(model)
    if isinstance(structure, dict):
        keys = {id(tensor): key for key, tensor in structure.items()}
        return [keys.get(id(t), t.name) for t in model.inputs]
    return [t.name for t in model.inputs]


def needs_fixed_batch(model):
    """RNN layers convert to TFLite builtins only with a fixed batch size (TensorFlow
    lowers their loop's tensor lists then); such files run one sample at a time."""
    has_rnn = any(isinstance(layer, keras.layers.RNN) for layer in flatten_layers(model))
    return has_rnn and any(t.shape[0] is None for t in model.inputs)


def with_fixed_inputs(model, input_shapes, batch_of_one=False):
    """`model` called on new inputs whose unknown dimensions are set by `input_shapes`
    (and whose batch is 1 if `batch_of_one`)."""
    names = input_names(model)
    if input_shapes is None:
        input_shapes = {}
    if not isinstance(input_shapes, dict):
        if len(names) != 1:
            raise ValueError(
                f"Argument `input_shapes` must be a dict from input name to shape for a model "
                f"with {len(names)} inputs ({names}). Received: input_shapes={input_shapes!r}."
            )
        input_shapes = {names[0]: input_shapes}
    unknown = sorted(set(input_shapes) - set(names))
    if unknown:
        raise ValueError(
            f"Argument `input_shapes` names inputs the model does not have: {unknown}. "
            f"Its inputs are {names}."
        )
    fixed = {}
    for name, tensor in zip(names, model.inputs):
        shape = tuple(input_shapes.get(name, tensor.shape[1:]))
        if len(shape) != len(tensor.shape) - 1:
            raise ValueError(
                f"Argument `input_shapes`[{name!r}]={shape} must have {len(tensor.shape) - 1} "
                f"dimension(s) (the input's shape {tuple(tensor.shape)} without the batch)."
            )
        fixed[id(tensor)] = keras.Input(
            shape, dtype=tensor.dtype, name=name, batch_size=1 if batch_of_one else None
        )
    inputs = keras.tree.map_structure(lambda t: fixed[id(t)], input_structure(model))
    return keras.Model(inputs, model(inputs), name=model.name)


def input_specs(model):
    specs = []
    for name, tensor in zip(input_names(model), model.inputs):
        shape = tuple(tensor.shape[1:])
        if any(d is None for d in shape):
            raise ValueError(
                f"Model input {name!r} has an unknown dimension in shape "
                f"{tuple(tensor.shape)}. TFLite needs fixed input shapes (except the batch): "
                f"pass input_shapes={{{name!r}: (...)}} to convert (e.g. a sequence length), "
                "or build the model with keras.Input(shape=...) fully specified."
            )
        specs.append((shape, str(tensor.dtype)))
    return specs


def _as_arrays(element, count):
    """One element of calibration data -> a list with one array per model input."""

    def inputs_of(value):
        if isinstance(value, dict):
            return list(value.values())
        return list(value) if isinstance(value, (tuple, list)) else [value]

    if isinstance(element, (tuple, list)) and len(element) in (2, 3):
        # `(x, y)` or `(x, y, sample_weight)` from a training dataset: keep x.
        if count == 1 or isinstance(element[0], (tuple, list, dict)):
            element = element[0]
    return [np.asarray(e.numpy() if hasattr(e, "numpy") else e) for e in inputs_of(element)]


def collect_samples(data, input_specs, limit, argument):
    """Up to `limit` samples, each a list (one array per input) with batch dimension 1."""
    count = len(input_specs)
    if isinstance(data, np.ndarray) or (
        isinstance(data, (list, tuple)) and data and all(isinstance(d, np.ndarray) for d in data)
        and count > 1
    ):
        source = [data if isinstance(data, np.ndarray) else list(data)]
    elif callable(data) and not hasattr(data, "__iter__"):
        source = data()
    else:
        source = data
    try:
        iterator = iter(source)
    except TypeError:
        raise TypeError(
            f"Argument `{argument}` must be a numpy array, a list of arrays (one per input), "
            f"a tf.data.Dataset or a generator of samples. Received: {type(data).__name__}."
        ) from None
    samples = []
    for element in iterator:
        arrays = _as_arrays(element, count)
        if len(arrays) != count:
            raise ValueError(
                f"Argument `{argument}`: the model has {count} input(s) but an element holds "
                f"{len(arrays)} array(s)."
            )
        for array, (shape, _) in zip(arrays, input_specs):
            _check_sample(array, shape, argument)
        batched = [a if a.ndim == len(shape) + 1 else a[None] for a, (shape, _) in zip(arrays, input_specs)]
        dtypes = [np.float32 if "float" in dtype else np.dtype(dtype) for _, dtype in input_specs]
        for i in range(len(batched[0])):
            samples.append([b[i : i + 1].astype(t) for b, t in zip(batched, dtypes)])
            if len(samples) >= limit:
                return samples
    if not samples:
        raise ValueError(f"Argument `{argument}` is empty: it yielded no samples.")
    return samples


def _check_sample(array, shape, argument):
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise TypeError(
            f"Argument `{argument}` must hold numbers. Received an array of dtype {array.dtype}."
        )
    if tuple(array.shape[-len(shape):]) != tuple(shape) or array.ndim not in (len(shape), len(shape) + 1):
        raise ValueError(
            f"Argument `{argument}` has samples of shape {tuple(array.shape)}; the model expects "
            f"{tuple(shape)} per sample (or (N, {', '.join(map(str, shape))}) for a batch). "
            "Pass data shaped like the model's training inputs."
        )
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        raise ValueError(f"Argument `{argument}` contains NaN or infinite values.")


def random_input(rng, shape, dtype):
    if "int" in dtype:  # token ids and other integer inputs: small valid values
        return rng.integers(0, 2, size=(1, *shape)).astype(dtype)
    return rng.standard_normal((1, *shape)).astype(np.float32)
