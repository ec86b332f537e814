"""Which axis of which variable holds heads, units or residual channels.

Found by building the same keras_hub model with one config field changed (a
probe) and comparing variable shapes, in order: an axis that changes size with
`intermediate_dim` holds feed-forward units, with the head count heads, with
`hidden_dim` residual channels. Nothing is guessed from names or sizes, so a new
keras_hub family needs no rule as long as its config holds its widths.

A fused axis holds two kinds' worth of one width side by side (a mixture of
experts' gate and up projections in one `(experts, hidden, 2 * units)` weight):
its size moves by twice the step of the plain axes. keras_hub concatenates the
halves (`ops.split(gate_up, 2)`), except where `_INTERLEAVED` says the halves
alternate (GPT-OSS's `gate_up[..., ::2]`, `gate_up[..., 1::2]`).
"""

import dataclasses

import keras
import numpy as np

HEADS, KV_HEADS, UNITS, HIDDEN, HEAD_DIM = "heads", "kv_heads", "units", "hidden", "head_dim"
EXPERTS = "experts"
_INTERLEAVED = ("gate_up_proj", "gate_up_proj_bias")  # GPT-OSS: gate, up alternate


def per_block(kind):
    """Every kind but the residual width is chosen block by block."""
    return kind != HIDDEN


def is_units(kind):
    """The feed-forward kinds: `units`, and a second width field such as an MoE's
    `moe_intermediate_dim`, which is its own kind named after the field."""
    return kind not in (HEADS, KV_HEADS, HIDDEN, HEAD_DIM, EXPERTS)


@dataclasses.dataclass
class Labels:
    """{variable index: {axis: kind}} over `model.weights`, plus each variable's block."""

    axes: dict
    blocks: list  # block index of each variable, or None outside the blocks
    sizes: dict  # kind -> size of its axes before pruning (the first block's)
    fused: dict = dataclasses.field(default_factory=dict)  # (index, axis) -> (factor, layout)
    block_sizes: dict = dataclasses.field(default_factory=dict)  # (kind, block) -> size
    # (index, axis) -> [(kind or None, size), ...]: an axis that concatenates the channels
    # of several kinds (and unpruned channels, None), in order (HGNetV2's aggregation).
    segments: dict = dataclasses.field(default_factory=dict)

    def size_of(self, kind, block):
        """The size of `kind` in `block` (Swin's stages differ), else the model's."""
        return self.block_sizes.get((kind, block), self.sizes[kind])

    def of_kind(self, kind, block=None):
        """(variable index, axis) pairs that hold `kind` (in `block`, for per-block kinds)."""
        return [
            (index, axis)
            for index, axes in self.axes.items()
            for axis, label in axes.items()
            if label == kind and (block is None or self.blocks[index] == block)
        ]

    def segments_of(self, kind):
        """(variable index, axis, offset) of every part of a concatenated axis that
        holds `kind`'s channels (model-wide kinds only)."""
        found = []
        for (index, axis), parts in self.segments.items():
            offset = 0
            for part, size in parts:
                if part == kind:
                    found.append((index, axis, offset))
                offset += size
        return found


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
    # A weight outside the blocks belongs to its top-level layer, which chooses its own
    # per-block widths as a block does (SigLIP's pooling head); model-wide kinds ignore it.
    labels = Labels(axes={}, blocks=[owner.get(id(v), v.path.split("/")[0]) for v in old],
                    sizes={})
    for name, (changes, kinds) in probes.items():
        probe = hub.build(changes)
        new = probe.weights
        if len(new) != len(old):
            raise ProbeError(
                f"Changing {name} ({changes}) changes the number of weights of "
                f"{hub.name} ({len(old)} -> {len(new)}), so they cannot be matched."
            )
        moved = []  # (index, axis, before, after)
        for index, (a, b) in enumerate(zip(old, new)):
            if len(a.shape) != len(b.shape):
                raise ProbeError(f"Changing {name} changes the rank of weight `{a.path}`.")
            moved += [(index, axis, before, after)
                      for axis, (before, after) in enumerate(zip(a.shape, b.shape))
                      if before != after]
        if not moved:
            continue
        if isinstance(kinds, str):  # one kind: in each block, its size is the smallest
            _label_one_kind(labels, old, moved, kinds)  # axis it moves; twice that: fused
            continue
        for index, axis, before, after in moved:
            if before not in kinds:
                raise ProbeError(
                    f"Changing {name} ({changes}) also resizes axis {axis} of weight "
                    f"`{old[index].path}` ({before} -> {after})."
                )
            labels.axes.setdefault(index, {})[axis] = kinds[before]
            labels.sizes[kinds[before]] = before
    return labels


def _label_one_kind(labels, old, moved, kind):
    by_block = {}
    for entry in moved:
        by_block.setdefault(labels.blocks[entry[0]], []).append(entry)
    for block, entries in by_block.items():
        base = min(entries, key=lambda m: m[2])
        size, step = base[2], base[2] - base[3]
        for index, axis, before, after in entries:
            factor = before // size
            if before != size:
                if not (factor > 1 and before == factor * size and before - after == factor * step):
                    raise ProbeError(
                        f"Changing the {kind} also resizes axis {axis} of weight "
                        f"`{old[index].path}` ({before} -> {after}).")
                name = old[index].path.split("/")[-1]
                labels.fused[(index, axis)] = (factor, "interleave" if name in _INTERLEAVED
                                               else "concat")
            labels.axes.setdefault(index, {})[axis] = kind
        labels.block_sizes[(kind, block)] = size
        labels.sizes.setdefault(kind, size)


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
        block = labels.blocks[index] if per_block(kind) else None
        yield axis, fused_indices(labels, index, axis, keep[(kind, block)])
    for (at, axis), parts in labels.segments.items():
        if at == index:
            yield axis, _segment_indices(parts, keep)


def _segment_indices(parts, keep):
    """The kept positions of a concatenated axis: every part's kept channels at its offset;
    a part of no kind is kept whole."""
    kept, offset = [], 0
    for kind, size in parts:
        kept.append(offset + (np.arange(size) if kind is None else np.asarray(keep[(kind, None)])))
        offset += size
    return np.concatenate(kept)


def fused_indices(labels, index, axis, kept):
    """The positions on a (possibly fused) axis that hold the kept channels."""
    if (index, axis) not in labels.fused:
        return kept
    factor, layout = labels.fused[(index, axis)]
    kept = np.asarray(kept)
    if layout == "interleave":
        return (kept[:, None] * factor + np.arange(factor)).reshape(-1)
    size = labels.size_of(labels.axes[index][axis], labels.blocks[index])
    return np.concatenate([kept + part * size for part in range(factor)])


def fold_fused(labels, index, axis, scores):
    """Per-channel scores of a fused axis: its parts summed."""
    if (index, axis) not in labels.fused:
        return scores
    factor, layout = labels.fused[(index, axis)]
    if layout == "interleave":
        return scores.reshape(-1, factor).sum(axis=1)
    return scores.reshape(factor, -1).sum(axis=0)


def surviving(labels, keep, index, value):
    """The part of `value` (the model's weight number `index`) that the smaller model keeps."""
    for axis, kept in _kept_per_axis(labels, keep, index):
        value = np.take(value, kept, axis=axis)
    return value


def zero_removed(hub, labels, keep, target):
    """Zeroes, in `target` (a same-shape copy of the model), every removed slice."""
    segmented = {index for index, _ in labels.segments}
    for index, variable in enumerate(target.weights):
        if not labels.axes.get(index) and index not in segmented:
            continue
        value = np.array(keras.ops.convert_to_numpy(variable))
        for axis, kept in _kept_per_axis(labels, keep, index):
            removed = np.setdiff1d(np.arange(value.shape[axis]), kept)
            index_tuple = [slice(None)] * value.ndim
            index_tuple[axis] = removed
            value[tuple(index_tuple)] = 0
        variable.assign(value)
