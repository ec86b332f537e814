"""Which axis of which variable holds heads, units or residual channels.

Found by building the same keras_hub model with one config field changed (a
probe) and comparing variable shapes, in order: an axis that changes size with
`intermediate_dim` holds feed-forward units, with the head count heads, with
`hidden_dim` residual channels. Nothing is guessed from names or sizes, so a new
keras_hub family needs no rule as long as its config holds its widths.
"""

import dataclasses

import keras
import numpy as np

HEADS, KV_HEADS, UNITS, HIDDEN, HEAD_DIM = "heads", "kv_heads", "units", "hidden", "head_dim"
PER_BLOCK = (HEADS, KV_HEADS, UNITS, HEAD_DIM)


@dataclasses.dataclass
class Labels:
    """{variable index: {axis: kind}} over `model.weights`, plus each variable's block."""

    axes: dict
    blocks: list  # block index of each variable, or None outside the blocks
    sizes: dict  # kind -> size of its axes before pruning

    def of_kind(self, kind, block=None):
        """(variable index, axis) pairs that hold `kind` (in `block`, for per-block kinds)."""
        return [
            (index, axis)
            for index, axes in self.axes.items()
            for axis, label in axes.items()
            if label == kind and (block is None or self.blocks[index] == block)
        ]


class ProbeError(ValueError):
    """A config change moved axes that the pruning plan cannot follow."""


def label_axes(hub, probes):
    """Labels every axis that a probe moves.

    Args:
        hub: the `HubModel`.
        probes: {name: (config changes, {old size: kind} or a kind)}: each probe is
            built, and every axis whose size changes is labelled with the kind its
            old size maps to (or with the one kind given); an axis of another old
            size raises `ProbeError` naming the probe.
    """
    old = hub.model.weights
    owner = hub.block_of()
    labels = Labels(axes={}, blocks=[owner.get(id(v)) for v in old], sizes={})
    for name, (changes, kinds) in probes.items():
        probe = hub.build(changes)
        new = probe.weights
        if len(new) != len(old):
            raise ProbeError(
                f"Changing {name} ({changes}) changes the number of weights of "
                f"{hub.name} ({len(old)} -> {len(new)}), so they cannot be matched."
            )
        for index, (a, b) in enumerate(zip(old, new)):
            if len(a.shape) != len(b.shape):
                raise ProbeError(f"Changing {name} changes the rank of weight `{a.path}`.")
            for axis, (before, after) in enumerate(zip(a.shape, b.shape)):
                if before == after:
                    continue
                if isinstance(kinds, str):
                    kinds = {before: kinds}  # one kind: its size is read off the probe
                if before not in kinds:
                    raise ProbeError(
                        f"Changing {name} ({changes}) also resizes axis {axis} of weight "
                        f"`{a.path}` ({before} -> {after})."
                    )
                labels.axes.setdefault(index, {})[axis] = kinds[before]
                labels.sizes[kinds[before]] = before
    for index, axes in labels.axes.items():
        for axis, kind in axes.items():
            if kind in PER_BLOCK and labels.blocks[index] is None:
                raise ProbeError(
                    f"Weight `{old[index].path}` has {kind} on axis {axis} but belongs to no "
                    "transformer block, so it is unclear which block's choice to follow."
                )
    return labels


def slice_weights(hub, labels, keep, new_model):
    """Assigns every variable of `new_model` the surviving slice of its old value.

    `keep[(kind, block)]` (block None for model-wide kinds) gives the indices kept.
    """
    old, new = hub.model.weights, new_model.weights
    if len(old) != len(new):
        raise ValueError(f"The smaller {hub.name} has {len(new)} weights, not {len(old)}.")
    for index, (a, b) in enumerate(zip(old, new)):
        value = surviving(labels, keep, index, np.asarray(keras.ops.convert_to_numpy(a)))
        if tuple(value.shape) != tuple(b.shape):
            raise ValueError(
                f"Internal error: the surviving slice of `{a.path}` has shape {value.shape}, "
                f"but the smaller model's weight has {tuple(b.shape)}."
            )
        b.assign(value)


def _kept_per_axis(labels, keep, index):
    """(axis, kept indices) for every labelled axis of the model's weight number `index`."""
    for axis, kind in labels.axes.get(index, {}).items():
        block = labels.blocks[index] if kind in PER_BLOCK else None
        yield axis, keep[(kind, block)]


def surviving(labels, keep, index, value):
    """The part of `value` (the model's weight number `index`) that the smaller model keeps."""
    for axis, kept in _kept_per_axis(labels, keep, index):
        value = np.take(value, kept, axis=axis)
    return value


def zero_removed(hub, labels, keep, target):
    """Zeroes, in `target` (a same-shape copy of the model), every removed slice."""
    for index, variable in enumerate(target.weights):
        axes = labels.axes.get(index)
        if not axes:
            continue
        value = np.array(keras.ops.convert_to_numpy(variable))
        for axis, kept in _kept_per_axis(labels, keep, index):
            removed = np.setdiff1d(np.arange(value.shape[axis]), kept)
            index_tuple = [slice(None)] * value.ndim
            index_tuple[axis] = removed
            value[tuple(index_tuple)] = 0
        variable.assign(value)
