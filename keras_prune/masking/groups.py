"""Mask updates for groups of pruning wrappers, computed outside the train graph.

Masks change rarely (every `frequency` steps), so they are computed eagerly with
keras.ops when the schedule says so, instead of inside every training step. After
a mask changes, the pruned weights and the optimizer's slots for them (momentum,
Adam moments, ...) are set to zero, so pruned weights stay exactly zero.
"""

import collections

from keras import ops

from keras_prune.masking.block import block_mask
from keras_prune.masking.m_by_n import m_by_n_mask
from keras_prune.masking.magnitude import global_magnitude_masks, magnitude_mask


class MaskGroup:
    """Wrappers that share one schedule decision (and, if global, one threshold)."""

    def __init__(self, wrappers, is_global):
        self.wrappers = wrappers
        self.is_global = is_global
        self.schedule = wrappers[0].pruning_schedule

    def is_pruning_step(self, step):
        return self.schedule.is_pruning_step(step)

    def compute(self, sparsity):
        """Returns [(wrapper, [(weight, mask, threshold), ...]), ...]."""
        if self.is_global:
            weights = [w for wrapper in self.wrappers for w in wrapper.prunable_weights]
            masks, threshold = global_magnitude_masks(weights, sparsity)
            result, position = [], 0
            for wrapper in self.wrappers:
                count = len(wrapper.prunable_weights)
                items = [
                    (weight, mask, threshold)
                    for weight, mask in zip(
                        wrapper.prunable_weights, masks[position : position + count]
                    )
                ]
                result.append((wrapper, items))
                position += count
            return result
        result = []
        for wrapper in self.wrappers:
            items = []
            for weight in wrapper.prunable_weights:
                mask, threshold = _layer_mask(wrapper, weight, sparsity)
                items.append((weight, mask, threshold))
            result.append((wrapper, items))
        return result


def _layer_mask(wrapper, weight, sparsity):
    value = ops.convert_to_tensor(weight)
    if wrapper.sparsity_m_by_n is not None:
        return m_by_n_mask(value, wrapper.sparsity_m_by_n)
    if wrapper.block_size != (1, 1):
        return block_mask(value, sparsity, wrapper.block_size, wrapper.block_pooling_type)
    return magnitude_mask(value, sparsity)


def make_groups(wrappers):
    """Groups wrappers: one group per `pruning_group` name, else one per wrapper."""
    by_name = collections.OrderedDict()
    groups = []
    for wrapper in wrappers:
        if not wrapper.prunable_weights:
            continue  # a no-op wrapper (a layer with nothing to prune)
        if wrapper.pruning_group is None:
            groups.append(MaskGroup([wrapper], is_global=False))
        else:
            by_name.setdefault(wrapper.pruning_group, []).append(wrapper)
    for name, members in by_name.items():
        schedules = {repr(w.pruning_schedule) for w in members}
        if len(schedules) > 1:
            raise ValueError(
                f"Layers in pruning group {name!r} use different schedules ({sorted(schedules)}); "
                "a global threshold needs one schedule. Prune them with one "
                "prune_low_magnitude(..., global_pruning=True) call."
            )
        groups.append(MaskGroup(members, is_global=True))
    return groups


def optimizer_slots(optimizer, variable):
    """The optimizer variables created for `variable` (momentum, moments, ...)."""
    if optimizer is None:
        return []
    prefix = variable.path.replace("/", "_") + "_"
    shape = tuple(variable.shape)
    return [
        slot
        for slot in optimizer.variables
        if tuple(slot.shape) == shape and slot.name.startswith(prefix)
    ]


def apply_masks(updates, optimizer=None):
    """Assigns new masks and zeroes pruned weights and their optimizer slots."""
    for wrapper, items in updates:
        for index, (weight, mask, threshold) in enumerate(items):
            mask = ops.cast(mask, wrapper.masks[index].dtype)
            wrapper.masks[index].assign(mask)
            # A host scalar: a global threshold is one tensor, and JAX must not see one
            # buffer behind several variables.
            wrapper.thresholds[index].assign(float(ops.convert_to_numpy(threshold)))
            weight.assign(ops.convert_to_tensor(weight) * ops.cast(mask, weight.dtype))
            for slot in optimizer_slots(optimizer, weight):
                slot.assign(ops.convert_to_tensor(slot) * ops.cast(mask, slot.dtype))


def mask_sparsity(wrappers):
    """Fraction of masked-out weights across `wrappers` (a Python float)."""
    zeros = total = 0.0
    for wrapper in wrappers:
        for mask in wrapper.masks:
            size = float(ops.size(mask))
            zeros += size - float(ops.convert_to_numpy(ops.sum(ops.cast(mask, "float32"))))
            total += size
    return zeros / total if total else 0.0
