"""The class of a Functional subclass (a keras_hub Task or Backbone) that a rewrite
turned into a plain Functional model, and how to get it back."""

import copy
import re

import keras

from keras_prune._models.copying import custom_objects_of, weights_of


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
        return cls(_serialized(config), custom_objects_of(model))

    def restore(self, model):
        """A model of the recorded class with `model`'s weights, or None when its
        config does not build the same weights (names and shapes in order, or layer by
        layer)."""
        try:
            new = keras.saving.deserialize_keras_object(  # a copy: from_config may edit it
                copy.deepcopy(self.config), custom_objects=self.custom_objects, safe_mode=False
            )
        except Exception:  # noqa: BLE001 (user model code can raise anything)
            return None
        if not isinstance(new, keras.Model):
            return None
        values = weights_of(model)
        if _signature(new) == _signature(model):
            new.set_weights(values)
        elif not _assign_by_layer(new, model, values):
            return None
        new.trainable = model.trainable
        return new


def _assign_by_layer(new, model, values):
    """Loads `values` (of `model.weights`) into `new`, matching layers by name (nested
    models recursively) and each layer's weights in order: a rewrite may list the same
    layers in another order (RWKV7, SegFormer). False unless every weight of both
    models is matched once, with its shape."""
    value_of = {id(v): value for v, value in zip(model.weights, values)}
    pairs = []

    def twins(new_owner, old_owner):
        """(new layer, old layer) by name; layers whose names differ (auto-named nested
        models, e.g. `functional_10` and `functional`) in order, among the same class."""
        new_layers = [layer for layer in new_owner.layers if layer.weights]
        old_layers = [layer for layer in old_owner.layers if layer.weights]
        old_names = {layer.name: layer for layer in old_layers}
        named = {id(layer): old_names.get(layer.name) for layer in new_layers}
        taken = {id(twin) for twin in named.values() if twin is not None}
        rest = iter([layer for layer in old_layers if id(layer) not in taken])
        for layer in new_layers:
            twin = named[id(layer)] or next(rest, None)
            if twin is None or type(twin) is not type(layer):
                yield layer, None
                return
            yield layer, twin

    def match(new_owner, old_owner):
        for layer, twin in twins(new_owner, old_owner):
            if twin is None:
                return False
            if isinstance(layer, keras.Model) and isinstance(twin, keras.Model):
                if not match(layer, twin):
                    return False
                continue
            if [tuple(w.shape) for w in layer.weights] != [tuple(w.shape) for w in twin.weights]:
                return False
            pairs.extend(zip(layer.weights, twin.weights))
        return True

    if not match(new, model) or len(pairs) != len(new.weights):
        return False
    if len({id(old) for _, old in pairs}) != len(value_of) or any(
            id(old) not in value_of for _, old in pairs):
        return False
    for variable, old in pairs:
        variable.assign(value_of[id(old)])
    return True


def _serialized(value):
    """`value` with any layer object left in it serialized (keras_hub's PARSeqBackbone
    returns its image encoder itself from `get_config()`)."""
    if isinstance(value, keras.layers.Layer):
        return keras.saving.serialize_keras_object(value)
    if isinstance(value, dict):
        return {key: _serialized(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_serialized(item) for item in value]
    return value


def _signature(model):
    """Names and shapes of the weights in order; auto-numbered names (`variable_3`, a
    second build's `variable_2`) count as one name."""
    return [(re.sub(r"_\d+$", "", v.name), tuple(v.shape)) for v in model.weights]


def restore_class(model):
    """`model` as the Functional subclass it was before a rewrite (see ClassRecord),
    or `model` itself where that class cannot rebuild it."""
    record = getattr(model, "_keras_prune_class", None)
    restored = record.restore(model) if record is not None else None
    return model if restored is None else restored
