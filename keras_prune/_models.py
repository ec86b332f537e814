"""Model plumbing shared by pruning and stripping: type checks, copies, rewrites.

Every use of Keras' private model API (`_flatten_layers`, `_run_through_graph`)
lives here, so a Keras upgrade that moves one of them is fixed in one place.
"""

import inspect

import keras
import numpy as np
from keras.src.models.functional import functional_like_constructor  # what clone_model uses

from keras_prune._arrays import values_to_copy


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


def _custom_objects(obj):
    """The classes of every layer under `obj`, by name, for deserializing copies."""
    classes = {type(layer) for layer in flatten_layers(obj, include_self=True)}
    return {cls.__name__: cls for cls in classes}


def _fits(values, layer):
    """True when `values` (arrays or variables) have the shapes of `layer.weights`."""
    return [tuple(v.shape) for v in values] == [tuple(w.shape) for w in layer.weights]


class LayerCopier:
    """Copies the layers of one model, in memory: config round trip, then weights.

    A copy is made with the model's own classes as custom objects and unsafe
    deserialization allowed (the config never leaves this process), so Lambda
    layers and unregistered custom layers copy too. Weights are loaded by
    `load_weights()`, after the new model has been called, which builds layers
    that only create their sub-layers' weights when first called. A layer that
    cannot be copied is reused (shared with the input model) and listed in
    `shared` with the reason.
    """

    def __init__(self, model):
        self.custom_objects = _custom_objects(model)
        self._model = model
        self._whole = None  # a copy of the whole model, made when a layer fails alone
        self.from_whole = set()  # id(layer) whose copy came from the whole copy
        self.whole_failed = set()  # ... and did not take the layer's weights either
        self.shared = []  # (layer name, reason)
        self.reuse = {}  # id(layer) -> reason: layers to share instead of copying
        self._pending = []  # (original, copy, then, weights)

    def copy(self, layer, then=None, weights=None):
        """A copy of `layer` (weights loaded later), or `layer` itself if it cannot be.

        `then(copy)` runs after the weights are loaded; `weights()` returns the
        values to load, when they are not `layer.get_weights()`.
        """
        if id(layer) in self.reuse:
            new = None if id(layer) in self.whole_failed else self._from_whole_copy(layer)
            if new is not None:  # built as the whole model builds it
                self._pending.append((layer, new, then, weights))
                return new
            self.shared.append((layer.name, self.reuse[id(layer)]))
            return layer
        try:
            new = keras.saving.deserialize_keras_object(
                keras.saving.serialize_keras_object(layer),
                custom_objects=self.custom_objects,
                safe_mode=False,
            )
            # A layer without its own build() (sub-layers made in __init__) is built
            # by the new model's first call instead.
            if layer.built and not new.built and type(new).build is not keras.layers.Layer.build:
                build_config = layer.get_build_config()
                if build_config:
                    new.build_from_config(build_config)
        except Exception as error:  # noqa: BLE001 (user layer code can raise anything)
            new = self._from_whole_copy(layer)
            if new is None:
                reason = f"could not be copied ({type(error).__name__}: {error}"[:200] + ")"
                self.reuse[id(layer)] = reason
                self.shared.append((layer.name, reason))
                return layer
        self._pending.append((layer, new, then, weights))
        return new

    def forget_whole_copy(self):
        self._whole = None

    def _from_whole_copy(self, layer):
        """`layer`'s counterpart in a copy of the whole model, or None.

        Some layers do not survive a config round trip on their own (keras_hub's Llama
        decoder blocks: their get_config() reads attributes they never set), while the
        model that builds them does: its config holds the constructor's arguments.
        """
        if self._whole is None:
            record = getattr(self._model, "_keras_prune_class", None)  # e.g. a pruned Llama
            try:
                config = (record.config if record is not None
                          else keras.saving.serialize_keras_object(self._model))
                self._whole = keras.saving.deserialize_keras_object(
                    config, custom_objects=self.custom_objects, safe_mode=False)
            except Exception:  # noqa: BLE001
                self._whole = False
        if self._whole is False:
            return None
        path = _layer_path(self._model, layer)
        if path is None:
            return None
        try:
            new = resolve_path(self._whole, path)
        except (AttributeError, IndexError, TypeError):
            return None
        same = type(new) is type(layer) and [tuple(w.shape) for w in new.weights] == [
            tuple(w.shape) for w in layer.weights]
        if not same:
            return None
        self.from_whole.add(id(layer))
        return new

    def load_weights(self):
        """Copies weights into every copy made. Returns the layers that did not fit."""
        failed = []
        for original, new, then, weights in self._pending:
            if not original.built:
                continue
            values = _weights_of(original) if weights is None else weights()
            if not _fits(values, new):
                failed.append(original)
                continue
            new.set_weights(values)
            if then is not None:
                then(new)
        self._pending = []
        return failed


def _layer_path(model, layer):
    """How to reach `layer` from `model` by layer lists: ("layers", i, "layers", j...)."""
    for index, child in enumerate(getattr(model, "layers", [])):
        if child is layer:
            return ("layers", index)
        if isinstance(child, keras.Model):
            inner = _layer_path(child, layer)
            if inner is not None:
                return ("layers", index) + inner
    return None


def load_copied_weights(copier):
    """`copier.load_weights()`, raising if a copy did not take its layer's weights."""
    failed = copier.load_weights()
    if failed:
        names = ", ".join(f"`{layer.name}` ({type(layer).__name__})" for layer in failed)
        raise ValueError(
            f"Could not copy the weights of {names}: the copy builds different weights. "
            "Build each such layer by calling it on its inputs first."
        )


def _weights_of(layer):
    """`layer.get_weights()`, also for weights spread over several JAX processes."""
    return values_to_copy(layer.weights)


def copy_layer(layer):
    """A new layer with the same config and the same weights (built if `layer` is)."""
    copier = LayerCopier(layer)
    new = copier.copy(layer)
    if new is layer:
        raise ValueError(f"Layer `{layer.name}` {copier.shared[-1][1]}.")
    if copier.load_weights():
        raise ValueError(
            f"Layer `{layer.name}` ({type(layer).__name__}) could not be copied: its copy "
            "has different weights. Build it by calling it on its inputs first."
        )
    return new


def input_like(tensor):
    """A new `keras.Input` like `tensor`, keeping its input layer's name."""
    operation = getattr(getattr(tensor, "_keras_history", None), "operation", None)
    name = operation.name if isinstance(operation, keras.layers.InputLayer) else tensor.name
    return keras.Input(
        batch_shape=tensor.shape,
        dtype=tensor.dtype,
        sparse=getattr(tensor, "sparse", False),
        name=name,
    )


def _rebuild_sequential(model, clone):
    layers = [clone(layer) for layer in model.layers]
    first = model._layers[0] if model._layers else None
    if isinstance(first, keras.layers.InputLayer):  # absent in an unbuilt Sequential
        layers.insert(0, input_like(first.output))
    return keras.Sequential(layers, name=model.name, trainable=model.trainable)


def _rebuild_functional(model, clone):
    inputs = keras.tree.map_structure(input_like, model._inputs_struct)
    outputs = model._run_through_graph(inputs, operation_fn=clone)
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


class ClassRecord:
    """The class and config of a Functional subclass that a rewrite turned into a plain
    Functional model (its constructor, like a keras_hub Task's, builds its own layers
    and cannot take a rewritten graph). `restore` builds the class again from the
    config once the rewritten model has the same weights (e.g. after stripping)."""

    def __init__(self, config, custom_objects):
        self.config = config
        self.custom_objects = custom_objects

    @classmethod
    def of(cls, model):
        if type(model) is keras.Model or not isinstance(model, keras.Model):
            return None
        try:
            config = keras.saving.serialize_keras_object(model)
        except Exception:  # noqa: BLE001 (a model without get_config cannot be rebuilt)
            return None
        config.pop("compile_config", None)  # compiled by the caller, if at all
        return cls(config, _custom_objects(model))

    def restore(self, model):
        """A model of the recorded class with `model`'s weights, or None when its
        config does not build the same weights (names and shapes, in order)."""
        try:
            new = keras.saving.deserialize_keras_object(
                self.config, custom_objects=self.custom_objects, safe_mode=False
            )
        except Exception:  # noqa: BLE001 (user model code can raise anything)
            return None
        if not isinstance(new, keras.Model) or _signature(new) != _signature(model):
            return None
        new.set_weights(_weights_of(model))
        new.trainable = model.trainable
        return new


def _signature(model):
    return [(v.name, tuple(v.shape)) for v in model.weights]


def restore_class(model):
    """`model` as the Functional subclass it was before a rewrite (see ClassRecord),
    or `model` itself where that class cannot rebuild it."""
    record = getattr(model, "_keras_prune_class", None)
    restored = record.restore(model) if record is not None else None
    return model if restored is None else restored


def rewrite_graph_model(model, transform, restart=None):
    """Rebuilds a Sequential/Functional model, passing each layer through `transform`.

    `transform(layer, copier)` returns the layer to use in the new model, or None
    for a plain copy (same config and weights; see `LayerCopier`). Nested models
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


def _build_like(new, model):
    """Builds `new` the way `model` was built (build config, else a call on zeros)."""
    config = model.get_build_config() or {}
    if not new.built and config:
        try:
            new.build_from_config(config)
        except Exception:  # noqa: BLE001 (falls through to a call on data)
            pass
    sample = None if _fits(model.weights, new) else input_sample(model)
    if sample is not None:
        new(sample)
    if model.built and not new.built and _fits(model.weights, new):
        # It holds every weight of `model`, but Keras leaves the flag down when build()
        # made them without finishing (a model without its own build()); prune_low_magnitude
        # and JAX's stateless_call refuse a model that says it is not built.
        new.built = True


def copy_model(model, weights=None):
    """A copy of a (subclassed) model with the same weights, not compiled.

    `weights()` returns the values to load when they are not `model.get_weights()`.

    The copy goes through get_config()/from_config() with the model's own classes.
    A model whose `__init__` takes no arguments (the style of TensorFlow's
    tutorials) is created by calling its class with none.
    """
    custom_objects = _custom_objects(model)
    try:
        new = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(model),
            custom_objects=custom_objects,
            safe_mode=False,
        )
    except Exception as error:  # noqa: BLE001 (user model code can raise anything)
        new = _construct_without_arguments(model, error)
    _build_like(new, model)
    values = _weights_of(model) if weights is None else weights()
    if not _fits(values, new):
        raise ValueError(
            f"Could not copy subclassed model `{model.name}` ({type(model).__name__}): the "
            f"copy has {len(new.weights)} weights, the model {len(values)}. Build the "
            "model by calling it on a batch of data before pruning it."
        )
    new.set_weights(values)
    return new


def _construct_without_arguments(model, error):
    cls = type(model)
    try:
        inspect.signature(cls).bind()
    except TypeError:
        raise ValueError(
            f"Could not copy subclassed model `{model.name}` ({cls.__name__}) to return a "
            f"new model: {error}\nA subclassed model is copied through get_config()/"
            "from_config(); make its get_config() return its constructor arguments, or wrap "
            "its layers yourself with keras_prune.prune_low_magnitude(layer) inside __init__."
        ) from None
    new = cls()
    new.name = model.name
    return new


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
        elif isinstance(value, list) and not name.startswith("_"):
            for index, item in enumerate(value):
                if not isinstance(item, keras.layers.Layer) or is_graph_model(item):
                    continue
                replacement = transform(item)
                if replacement is None:
                    _swap(item, transform, seen, path + (name, index), swapped)
                    continue
                owner._tracker.replace_tracked_value("layers", item, replacement)
                list.__setitem__(value, index, replacement)
                swapped.append((path + (name, index), item, replacement))


def fresh_copy(model):
    """A copy of `model` (same config) with newly initialized weights, not compiled."""
    if is_graph_model(model):
        custom_objects = _custom_objects(model)

        def fresh(layer):  # unsafe mode: a Lambda layer's function never leaves this process
            return keras.saving.deserialize_keras_object(
                keras.saving.serialize_keras_object(layer), custom_objects=custom_objects,
                safe_mode=False)

        return keras.models.clone_model(model, clone_function=fresh)
    try:
        new = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(model),
            custom_objects=_custom_objects(model),
            safe_mode=False,
        )
    except Exception as error:  # noqa: BLE001 (user model code can raise anything)
        new = _construct_without_arguments(model, error)
    _build_like(new, model)
    return new
