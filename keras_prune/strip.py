"""`strip_pruning`: remove the wrappers, keeping the pruned weights exactly zero."""

import keras
from keras import ops

from keras_prune import _models
from keras_prune.layers.wrapper import PruneLowMagnitude


def strip_layer(wrapper, layer=None):
    """The wrapped layer of `wrapper` as a plain layer, with `weight * mask` as weights.

    `layer` is a copy of `wrapper.layer` to write into (default: a new copy).
    """
    layer = _models.copy_layer(wrapper.layer) if layer is None else layer
    if not wrapper.built:
        return layer
    masks = {id(w): m for w, m in zip(wrapper.prunable_weights, wrapper.masks)}
    for original, target in zip(wrapper.layer.weights, layer.weights):
        if id(original) in masks:
            value = ops.convert_to_tensor(original) * ops.cast(masks[id(original)], original.dtype)
            target.assign(value)
    return layer


def strip_pruning(model):
    """Returns a plain Keras model: wrappers removed, pruned weights exactly zero.

    The result contains only standard Keras layers, so its `.keras` file loads
    with `keras.saving.load_model` where keras_prune is not installed. The input
    model is unchanged.

    Example:

    ```python
    final = keras_prune.strip_pruning(pruned)
    final.save("model.keras")
    ```

    Args:
        model: A model returned by `prune_low_magnitude` (or a single wrapper).

    Returns:
        A new model (or layer) without pruning wrappers.
    """
    _models.check_keras3(model, "model")
    if isinstance(model, PruneLowMagnitude):
        return strip_layer(model)
    if not isinstance(model, keras.Model):
        raise TypeError(
            "Argument `model` must be a Keras model or a PruneLowMagnitude layer. "
            f"Received: model={model!r} of type {type(model).__name__}."
        )

    def transform(layer, copier):
        if not isinstance(layer, PruneLowMagnitude):
            return None
        return copier.copy(layer.layer, then=lambda copy: strip_layer(layer, copy))

    if _models.is_graph_model(model) or isinstance(model, keras.Sequential):
        return _models.rewrite_graph_model(model, transform)[0]
    return _strip_subclassed(model)


def _strip_subclassed(model):
    # A pruned subclassed model cannot be rebuilt from its config (its config makes
    # plain layers), so the wrappers are swapped for their layers while it is copied.
    def unwrap(layer):
        return layer.layer if isinstance(layer, PruneLowMagnitude) else None

    swapped = _models.swap_layers(model, unwrap)
    try:
        new = _models.copy_model(model)
    finally:
        originals = {id(inner): wrapper for _, wrapper, inner in swapped}
        _models.swap_layers(model, lambda layer: originals.get(id(layer)))
    for path, wrapper, _ in swapped:
        strip_layer(wrapper, _models.resolve_path(new, path))
    return new
