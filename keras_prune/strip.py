"""`strip_pruning`: remove the wrappers, keeping the pruned weights exactly zero."""

import contextlib
import warnings

import keras
import numpy as np
from keras import ops

from keras_prune import _models
from keras_prune._arrays import to_numpy, values_to_copy
from keras_prune.layers.wrapper import PruneLowMagnitude, collect_wrappers


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
    _warn_if_never_pruned([model] if isinstance(model, PruneLowMagnitude)
                          else collect_wrappers(model) if isinstance(model, keras.Model) else [])
    if isinstance(model, PruneLowMagnitude):
        return strip_layer(model)
    if not isinstance(model, keras.Model):
        raise TypeError(
            "Argument `model` must be a Keras model or a PruneLowMagnitude layer. "
            f"Received: model={model!r} of type {type(model).__name__}."
        )

    def transform(layer, copier):
        if isinstance(layer, PruneLowMagnitude):
            return copier.copy(layer.layer, then=lambda copy: strip_layer(layer, copy))
        if collect_wrappers(layer):  # a custom layer with wrapped sub-layers
            with _unwrapped(layer):
                return copier.copy(layer, weights=lambda: _unwrapped_weights(layer))
        return None

    if _models.is_graph_model(model) or isinstance(model, keras.Sequential):
        # A keras_hub Task (or another Functional subclass) gets its class back.
        return _models.restore_class(_models.rewrite_graph_model(model, transform)[0])
    with _unwrapped(model) as masks:
        return _models.copy_model(model, weights=lambda: _masked_weights(model, masks))


def _never_pruned(wrapper):
    """True when the wrapper's schedule wants to prune but its masks were never computed:
    training (if any) ended before the schedule's first mask update."""
    if not wrapper.built or not wrapper.masks:
        return False
    schedule = wrapper.pruning_schedule
    first = schedule.first_pruning_step(after=0)
    if not schedule.sparsity_at(first or max(schedule.end, 1)):
        return False  # a schedule that never means to prune (FixedMask)
    step = int(ops.convert_to_numpy(wrapper.pruning_step))
    before_first = first is None or step < first
    return before_first and all(bool(np.all(to_numpy(mask))) for mask in wrapper.masks)


def _warn_if_never_pruned(wrappers):
    uncalled = [wrapper.name for wrapper in wrappers if not wrapper.built]
    if uncalled:
        warnings.warn(
            f"keras_prune: {len(uncalled)} wrapped layer(s) were never called "
            f"({', '.join(uncalled[:3])}{', ...' if len(uncalled) > 3 else ''}): the layer "
            "that owns them builds them but does not use them (e.g. a block's optional "
            "squeeze-excite layers), so they have no masks and stay dense. They do not "
            "affect the model's outputs.",
            stacklevel=3,
        )
    never = [wrapper.name for wrapper in wrappers if _never_pruned(wrapper)]
    if never:
        warnings.warn(
            f"keras_prune: strip_pruning removes {len(never)} wrapper(s) whose masks were never "
            f"computed ({', '.join(never[:3])}{', ...' if len(never) > 3 else ''}): their "
            "schedule's first mask update comes after the last trained step, so these layers "
            "are not pruned at all. Train with PruneCallback past the first update (tfmot's "
            "steps start at 1: begin_step=0 with frequency=100 first prunes at step 100).",
            stacklevel=3,
        )


@contextlib.contextmanager
def _unwrapped(owner):
    """Swaps the wrappers inside `owner` (a custom layer or subclassed model) for
    their layers, and back on exit; yields {id(variable): mask}."""
    swapped = _models.swap_layers(
        owner, lambda layer: layer.layer if isinstance(layer, PruneLowMagnitude) else None
    )
    masks = {
        id(weight): mask
        for _, wrapper, _ in swapped
        if wrapper.built  # a layer that its owner builds but never calls has no masks
        for weight, mask in zip(wrapper.prunable_weights, wrapper.masks)
    }
    try:
        yield masks
    finally:
        originals = {id(inner): wrapper for _, wrapper, inner in swapped}
        _models.swap_layers(owner, lambda layer: originals.get(id(layer)))


def _masked_weights(owner, masks):
    """`owner.get_weights()` with `masks` ({id(variable): mask}) applied."""
    values = values_to_copy(owner.weights)
    for index, variable in enumerate(owner.weights):
        mask = masks.get(id(variable))
        if mask is None:
            continue
        if isinstance(values[index], np.ndarray):
            values[index] = values[index] * to_numpy(mask)
        else:  # a JAX array over several processes: masked where it lies
            mask = getattr(mask, "value", mask)
            values[index] = values[index] * ops.cast(mask, values[index].dtype)
    return values


def _unwrapped_weights(owner):
    """`owner.get_weights()` as if its wrappers were their layers, pruned weights zero."""
    with _unwrapped(owner) as masks:
        return _masked_weights(owner, masks)
