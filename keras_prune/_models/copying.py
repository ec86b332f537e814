"""Copies of layers and models with their weights (config round trips, in memory)."""

import copy
import inspect

import keras

from keras_prune._arrays import values_to_copy
from keras_prune._models.checks import (
    flatten_layers,
    input_sample,
    is_graph_model,
    layer_path,
    resolve_path,
)


def custom_objects_of(obj):
    """The classes of every layer under `obj`, by name, for deserializing copies."""
    classes = {type(layer) for layer in flatten_layers(obj, include_self=True)}
    return {cls.__name__: cls for cls in classes}


def _fits(values, layer):
    """True when `values` (arrays or variables) have the shapes of `layer.weights`."""
    return [tuple(v.shape) for v in values] == [tuple(w.shape) for w in layer.weights]


def _direct_copy(original, new):
    """True where weights can go variable to variable, with no host copy of each layer
    (a 150 MB embedding cost 150 MB more at its peak): TensorFlow and torch copy on
    assignment; JAX would share the buffer, which a donating train step then frees."""
    return (keras.backend.backend() in ("tensorflow", "torch")
            and _fits(original.weights, new)
            and all(v.dtype == w.dtype for v, w in zip(original.weights, new.weights)))


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
        self.custom_objects = custom_objects_of(model)
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
                self._whole = keras.saving.deserialize_keras_object(  # from_config may
                    copy.deepcopy(config), custom_objects=self.custom_objects,  # edit it
                    safe_mode=False)
            except Exception:  # noqa: BLE001
                self._whole = False
        if self._whole is False:
            return None
        path = layer_path(self._model, layer)
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
            if weights is None and _direct_copy(original, new):
                for target, source in zip(new.weights, original.weights):
                    target.assign(source.value)
                if then is not None:
                    then(new)
                continue
            values = weights_of(original) if weights is None else weights()
            if not _fits(values, new):
                failed.append(original)
                continue
            new.set_weights(values)
            if then is not None:
                then(new)
        self._pending = []
        return failed


def load_copied_weights(copier):
    """`copier.load_weights()`, raising if a copy did not take its layer's weights."""
    failed = copier.load_weights()
    if failed:
        names = ", ".join(f"`{layer.name}` ({type(layer).__name__})" for layer in failed)
        raise ValueError(
            f"Could not copy the weights of {names}: the copy builds different weights. "
            "Build each such layer by calling it on its inputs first."
        )


def weights_of(layer):
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
    custom_objects = custom_objects_of(model)
    try:
        new = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(model),
            custom_objects=custom_objects,
            safe_mode=False,
        )
    except Exception as error:  # noqa: BLE001 (user model code can raise anything)
        new = _construct_without_arguments(model, error)
    _build_like(new, model)
    values = weights_of(model) if weights is None else weights()
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


def fresh_copy(model):
    """A copy of `model` (same config) with newly initialized weights, not compiled."""
    if is_graph_model(model):
        custom_objects = custom_objects_of(model)

        def fresh(layer):  # unsafe mode: a Lambda layer's function never leaves this process
            return keras.saving.deserialize_keras_object(
                keras.saving.serialize_keras_object(layer), custom_objects=custom_objects,
                safe_mode=False)

        return keras.models.clone_model(model, clone_function=fresh)
    try:
        new = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(model),
            custom_objects=custom_objects_of(model),
            safe_mode=False,
        )
    except Exception as error:  # noqa: BLE001 (user model code can raise anything)
        new = _construct_without_arguments(model, error)
    _build_like(new, model)
    return new
