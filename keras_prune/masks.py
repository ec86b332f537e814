"""Reading and writing the masks of a pruned (wrapped) model, by weight name.

Masks chosen outside training (pruning at initialization, lottery tickets) are
written here: each mask is assigned and the weight it covers is zeroed, so a
pruned weight is exactly zero from the start. Keys are `"<layer>/<weight>"`,
e.g. `"dense_1/kernel"`, the names a user sees in `model.summary()`.
"""

import dataclasses

import keras
import numpy as np
from keras import ops

from keras_prune._arrays import to_numpy
from keras_prune._models import flatten_layers
from keras_prune.layers import registry
from keras_prune.layers.wrapper import PruneLowMagnitude, collect_wrappers


@dataclasses.dataclass(eq=False)
class MaskedWeight:
    """One prunable weight of a wrapped model, with its mask variable."""

    key: str
    layer_name: str
    wrapper: object
    weight: object
    mask: object

    @property
    def size(self):
        return int(np.prod(self.weight.shape))


def masked_weights(model):
    """Every masked weight of `model` (wrappers in nested models included), in order."""
    entries, seen = [], {}
    for wrapper in collect_wrappers(model):
        if not wrapper.built:
            continue
        for weight, mask in zip(wrapper.prunable_weights, wrapper.masks):
            key = f"{wrapper.layer.name}/{weight.path.split('/')[-1]}"
            seen[key] = seen.get(key, 0) + 1
            if seen[key] > 1:
                key = f"{key}_{seen[key] - 1}"
            entries.append(MaskedWeight(key, wrapper.layer.name, wrapper, weight, mask))
    if not entries:
        raise ValueError(
            f"Model `{model.name}` has no built pruning wrappers. Wrap it with "
            "keras_prune.prune_low_magnitude(model) first."
        )
    return entries


def get_masks(model):
    """{weight key: boolean mask as a NumPy array} for every masked weight."""
    return {e.key: to_numpy(e.mask).astype(bool) for e in masked_weights(model)}


def set_masks(model, masks):
    """Assigns `masks` ({weight key: array}) and zeroes the weights they prune, in place.

    Every key must name a masked weight of `model` and every mask must have that
    weight's shape; weights not named keep their masks.
    """
    entries = {e.key: e for e in masked_weights(model)}
    unknown = sorted(set(masks) - set(entries))
    if unknown:
        raise ValueError(
            f"Argument `masks` names weights that model `{model.name}` does not prune: "
            f"{unknown[:5]}. Its masked weights: {sorted(entries)[:10]}."
        )
    for key, value in masks.items():
        entry = entries[key]
        value = np.asarray(value)
        if tuple(value.shape) != tuple(entry.weight.shape):
            raise ValueError(
                f"Mask `{key}` must have the weight's shape {tuple(entry.weight.shape)}. "
                f"Received shape {tuple(value.shape)}."
            )
        mask = ops.convert_to_tensor(value.astype(bool).astype(entry.mask.dtype))
        entry.mask.assign(mask)
        weight = ops.convert_to_tensor(entry.weight)
        entry.weight.assign(weight * ops.cast(mask, entry.weight.dtype))


def prunable_layers(model):
    """[(layer, [weights])] for every layer of `model` with weights to prune.

    Works on plain and on wrapped models (a wrapper's inner layer is listed under
    its own name); nested models and layers inside custom layers are included.
    """
    found, seen = [], set()
    for layer in flatten_layers(model):
        if isinstance(layer, (keras.Model, PruneLowMagnitude)) or not registry.is_prunable(layer):
            continue
        if registry.has_nothing_to_prune(layer) or not layer.built:
            continue
        weights = [w for w in registry.get_prunable_weights(layer) if id(w) not in seen]
        seen.update(id(w) for w in weights)
        if weights:  # an RNN cell's weights are listed once, under its RNN layer
            found.append((layer, weights))
    if not found:
        raise ValueError(
            f"Model `{model.name}` has no layer with weights to prune "
            f"({registry.supported_layer_names()[:6]} ...)."
        )
    return found
