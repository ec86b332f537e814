"""The class of a Functional subclass (a keras_hub Task or Backbone) that a rewrite
turned into a plain Functional model, and how to get it back."""

import keras

from keras_prune._models.copying import _custom_objects, _weights_of


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
