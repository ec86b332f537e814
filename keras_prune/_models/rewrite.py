"""Rewrites: a graph model rebuilt layer by layer, a subclassed model's layer
attributes swapped in place. Keras' private `_run_through_graph` is used here only."""

import keras
from keras.src.models.functional import functional_like_constructor  # what clone_model uses

from keras_prune._models.checks import is_graph_model
from keras_prune._models.class_record import ClassRecord
from keras_prune._models.copying import LayerCopier, copy_model


def input_like(tensor, shape=None):
    """A new `keras.Input` like `tensor` (or of `shape`), keeping its input layer's name."""
    operation = getattr(getattr(tensor, "_keras_history", None), "operation", None)
    name = operation.name if isinstance(operation, keras.layers.InputLayer) else tensor.name
    return keras.Input(
        batch_shape=tensor.shape if shape is None else shape,
        dtype=tensor.dtype,
        sparse=getattr(tensor, "sparse", False),
        name=name,
    )


def _in_order(layers):
    """A callable that applies a tuple of layers one after the other."""
    if not isinstance(layers, tuple):
        return layers

    def call(*args, **kwargs):
        outputs = layers[0](*args, **kwargs)
        for layer in layers[1:]:
            outputs = layer(outputs)
        return outputs

    return call


def _rebuild_sequential(model, clone):
    layers = []
    for layer in model.layers:
        new = clone(layer)
        layers += list(new) if isinstance(new, tuple) else [new]
    first = model._layers[0] if model._layers else None
    if isinstance(first, keras.layers.InputLayer):  # absent in an unbuilt Sequential
        layers.insert(0, input_like(first.output))
    return keras.Sequential(layers, name=model.name, trainable=model.trainable)


def _rebuild_functional(model, clone):
    inputs = keras.tree.map_structure(input_like, model._inputs_struct)
    outputs = model._run_through_graph(inputs, operation_fn=lambda op: _in_order(clone(op)))
    record = getattr(model, "_keras_prune_class", None)
    if functional_like_constructor(type(model)):
        new = type(model)(inputs, outputs, name=model.name)
    else:  # e.g. a keras_hub Task: its constructor builds its own layers
        new = keras.Model(inputs, outputs, name=model.name)
        record = record or ClassRecord.of(model)
    if record is not None:
        new._keras_prune_class = record
    new.trainable = model.trainable
    return new


def rewrite_graph_model(model, transform, restart=None):
    """Rebuilds a Sequential/Functional model, passing each layer through `transform`.

    `transform(layer, copier)` returns the layer to use in the new model, a tuple of
    layers to apply one after the other in its place, or None for a plain copy (same
    config and weights; see `LayerCopier`). Nested models
    are rebuilt recursively; a layer used in several places (also across nesting
    levels) stays one shared layer; keras.ops operations are reused; input names
    are kept; the new model is not compiled. Returns (new model, copier).
    """
    copier = LayerCopier(model)
    for _ in range(3):
        cache = {}
        if restart is not None:
            restart()  # e.g. a report filled by `transform`

        def clone(operation):
            if id(operation) in cache:
                return cache[id(operation)]
            if isinstance(operation, keras.Model) and is_graph_model(operation):
                new = rebuild(operation)
            elif not isinstance(operation, keras.layers.Layer):
                new = operation  # a keras.ops operation (Add, GetItem, ...): stateless
            else:
                new = transform(operation, copier)
                if new is None:
                    new = copier.copy(operation)
            cache[id(operation)] = new
            return new

        def rebuild(graph_model):
            if isinstance(graph_model, keras.Sequential):
                return _rebuild_sequential(graph_model, clone)
            return _rebuild_functional(graph_model, clone)

        new = rebuild(model)
        failed = copier.load_weights()
        if not failed:
            return new, copier
        for layer in failed:  # rebuilt differently when copied: try another way, or share it
            copier.reuse[id(layer)] = "its copy builds different weights"
            if id(layer) in copier.from_whole:
                copier.whole_failed.add(id(layer))
        copier.shared.clear()
        copier.forget_whole_copy()  # its layers may have been changed in place
    raise ValueError(f"Could not copy model `{model.name}`: layers {failed} keep changing.")


def rewrite_subclassed_model(model, transform):
    """Copies a subclassed model and swaps its layer attributes through `transform`.

    `transform(layer, copier)` returns a replacement, or None to keep the layer;
    the copier hands back the layer itself (the model is already a fresh copy).
    """
    new = copy_model(model)
    swap_layers(new, lambda layer: transform(layer, NO_COPY))
    return new


class _NoCopy:
    """A LayerCopier for layers that are already copies."""

    shared = ()

    @staticmethod
    def copy(layer, then=None, weights=None):
        if then is not None:
            then(layer)
        return layer


NO_COPY = _NoCopy()


def swap_layers(owner, transform):
    """Replaces layer attributes (and list items) of `owner` in place, recursively.

    Returns the list of (path, old_layer, new_layer) swapped, where a path is a
    tuple of attribute names and list indices from `owner`.
    """
    swapped = []
    _swap(owner, transform, set(), (), swapped)
    return swapped


def _swap(owner, transform, seen, path, swapped):
    if id(owner) in seen:
        return
    seen.add(id(owner))
    # Under the torch backend, layers live in torch's `_modules`, not in `__dict__`.
    names = list(vars(owner)) + list(getattr(owner, "_modules", None) or {})
    for name in dict.fromkeys(names):
        if name in ("_tracker", "_layers", "_operations", "_self_tracked_trackables"):
            continue  # Keras' own bookkeeping
        value = getattr(owner, name, None)
        if isinstance(value, keras.layers.Layer):
            if is_graph_model(value):
                continue  # its graph nodes call its layers, not attributes
            replacement = transform(value)
            if replacement is None:
                _swap(value, transform, seen, path + (name,), swapped)
                continue
            owner._tracker.replace_tracked_value("layers", value, replacement)
            setattr(owner, name, replacement)
            swapped.append((path + (name,), value, replacement))
        elif isinstance(value, (list, dict)) and not name.startswith("_"):  # dict: RetinaNet
            setitem = list.__setitem__ if isinstance(value, list) else dict.__setitem__
            items = enumerate(value) if isinstance(value, list) else list(value.items())
            for key, item in items:
                if not isinstance(item, keras.layers.Layer) or is_graph_model(item):
                    continue
                replacement = transform(item)
                if replacement is None:
                    _swap(item, transform, seen, path + (name, key), swapped)
                    continue
                owner._tracker.replace_tracked_value("layers", item, replacement)
                setitem(value, key, replacement)
                swapped.append((path + (name, key), item, replacement))
