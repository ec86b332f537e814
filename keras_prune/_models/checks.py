"""What a model is and where its parts are: type checks, layer lists, paths, samples.

Every use of Keras' private model API for reading a model (`_flatten_layers`,
`_inputs_struct`, `_is_graph_network`) lives here.
"""

import keras
import numpy as np


def is_legacy_keras(obj):
    """True for tf_keras / Keras 2 objects, which keras_prune cannot handle."""
    module = type(obj).__module__ or ""
    legacy = ("tf_keras", "keras.src.engine", "tensorflow.python.keras", "keras.engine")
    return any(module.startswith(prefix) for prefix in legacy)


def check_keras3(obj, argument):
    if is_legacy_keras(obj):
        raise TypeError(
            f"Argument `{argument}` is a tf_keras (Keras 2) object ({type(obj).__name__} from "
            f"{type(obj).__module__}); keras_prune works with Keras 3 (`import keras`, "
            "keras>=3). Rebuild the model with Keras 3 layers, or save its weights with "
            "`model.save_weights('w.weights.h5')` and load them into the same architecture "
            "built with Keras 3. tfmot users: unset TF_USE_LEGACY_KERAS and import keras, "
            "not tf_keras."
        )


def check_built(model, argument="to_prune"):
    if not model.built or (isinstance(model, keras.Sequential) and not model.inputs):
        raise ValueError(
            f"Argument `{argument}` ({model.name}) is not built, so its weights do not exist "
            "yet. Give it an input shape (keras.Input(shape=...) as first layer), or call "
            "`model.build(input_shape)` or the model on a batch of data first."
        )


def flatten_layers(model, include_self=False):
    """Every layer reachable from `model` (nested models and sub-layers included)."""
    return list(model._flatten_layers(include_self=include_self, recursive=True))


def input_structure(model):
    """The model's inputs as it takes them (a tensor, list or dict of KerasTensors)."""
    structure = getattr(model, "_inputs_struct", None)
    if structure is None:
        structure = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return structure


def is_graph_model(model):
    """Sequential and Functional models can be rebuilt layer by layer."""
    return isinstance(model, keras.Sequential) or getattr(model, "_is_graph_network", False) or (
        hasattr(model, "_operations") and hasattr(model, "_inputs_struct") and model.inputs
    )


def input_sample(model, value=0.0):
    """One sample per input of `model`, filled with `value` (unknown sizes become 1).

    Shapes come from the graph inputs, else (a subclassed model) from the build
    config; None when neither records them.
    """
    if is_graph_model(model):
        arrays = [np.full([1] + [d or 1 for d in t.shape[1:]], value, t.dtype or "float32")
                  for t in model.inputs]
        return arrays[0] if len(arrays) == 1 else arrays
    shape = (model.get_build_config() or {}).get("input_shape")
    if shape is None:
        return None
    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple)):
        return [np.full([1] + [d or 1 for d in s[1:]], value, "float32") for s in shape]
    return np.full([1] + [d or 1 for d in shape[1:]], value, "float32")


def resolve_path(owner, path):
    for part in path:
        owner = owner[part] if isinstance(part, int) else getattr(owner, part)
    return owner


def layer_path(model, layer):
    """How to reach `layer` from `model` by layer lists: ("layers", i, "layers", j...)."""
    for index, child in enumerate(getattr(model, "layers", [])):
        if child is layer:
            return ("layers", index)
        if isinstance(child, keras.Model):
            inner = layer_path(child, layer)
            if inner is not None:
                return ("layers", index) + inner
    return None
