"""Model plumbing shared by pruning and stripping: type checks, copies, rewrites."""

import copy

import keras


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


def is_graph_model(model):
    """Sequential and Functional models can be rebuilt layer by layer."""
    return isinstance(model, keras.Sequential) or getattr(model, "_is_graph_network", False) or (
        hasattr(model, "_operations") and hasattr(model, "_inputs_struct") and model.inputs
    )


def copy_layer(layer):
    """A new layer with the same config and the same weights (built if `layer` is)."""
    new = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    if layer.built and not new.built:
        build_config = layer.get_build_config()
        if build_config:
            new.build_from_config(build_config)
    if layer.built:
        new.set_weights(layer.get_weights())
    return new


def rewrite_graph_model(model, transform):
    """Clones a Sequential/Functional model, passing each (copied) layer through `transform`.

    `transform(layer)` returns the layer to use in the new model, or None for a
    plain copy (same config and weights). Nested models are rewritten recursively.
    """

    def clone(layer):
        if isinstance(layer, keras.Model) and is_graph_model(layer):
            return rewrite_graph_model(layer, transform)
        replacement = transform(layer)
        return copy_layer(layer) if replacement is None else replacement

    new = keras.models.clone_model(model, clone_function=clone)
    return new


def deep_copy_model(model):
    """A deep copy of a (subclassed) model, through Keras's own save/load."""
    classes = {type(layer) for layer in model._flatten_layers(include_self=True, recursive=True)}
    scope = {cls.__name__: cls for cls in classes}
    try:
        with keras.saving.custom_object_scope(scope):
            return copy.deepcopy(model)  # Keras copies a model by saving and loading it
    except Exception as error:  # noqa: BLE001 (user model code can raise anything)
        raise ValueError(
            f"Could not copy subclassed model `{model.name}` ({type(model).__name__}) to "
            f"return a new model: {error}\nA subclassed model is copied through "
            "get_config()/from_config(); make its get_config() return its constructor "
            "arguments, or wrap its layers yourself with keras_prune.prune_low_magnitude(layer) "
            "inside __init__."
        ) from None


def rewrite_subclassed_model(model, transform):
    """Deep-copies a subclassed model and swaps its layer attributes through `transform`.

    `transform(layer)` returns a replacement, or None to keep the (copied) layer.
    """
    new = deep_copy_model(model)
    swap_layers(new, transform)
    return new


def swap_layers(owner, transform):
    """Replaces layer attributes (and list items) of `owner` in place, recursively.

    Returns the list of (path, old_layer, new_layer) swapped, where a path is a
    tuple of attribute names and list indices from `owner`.
    """
    swapped = []
    _swap(owner, transform, set(), (), swapped)
    return swapped


def resolve_path(owner, path):
    for part in path:
        owner = owner[part] if isinstance(part, int) else getattr(owner, part)
    return owner


def _swap(owner, transform, seen, path, swapped):
    if id(owner) in seen:
        return
    seen.add(id(owner))
    # Under the torch backend, layers live in torch's `_modules`, not in `__dict__`.
    names = list(vars(owner)) + list(getattr(owner, "_modules", None) or {})
    for name in dict.fromkeys(names):
        if name.startswith("_"):
            continue
        value = getattr(owner, name, None)
        if isinstance(value, keras.layers.Layer):
            replacement = transform(value)
            if replacement is None:
                _swap(value, transform, seen, path + (name,), swapped)
                continue
            owner._tracker.replace_tracked_value("layers", value, replacement)
            setattr(owner, name, replacement)
            swapped.append((path + (name,), value, replacement))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if not isinstance(item, keras.layers.Layer):
                    continue
                replacement = transform(item)
                if replacement is None:
                    _swap(item, transform, seen, path + (name, index), swapped)
                    continue
                owner._tracker.replace_tracked_value("layers", item, replacement)
                list.__setitem__(value, index, replacement)
                swapped.append((path + (name, index), item, replacement))
