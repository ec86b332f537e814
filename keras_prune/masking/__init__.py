"""Mask computation (keras.ops only): magnitude, block, M:N and global threshold."""

from keras_prune.masking.block import block_mask
from keras_prune.masking.groups import MaskGroup, apply_masks, make_groups, mask_sparsity
from keras_prune.masking.m_by_n import m_by_n_mask
from keras_prune.masking.magnitude import global_magnitude_masks, magnitude_mask, threshold_mask
from keras_prune.masking.scores import erk_densities, global_masks, layer_masks

__all__ = [
    "MaskGroup",
    "apply_masks",
    "block_mask",
    "erk_densities",
    "global_magnitude_masks",
    "global_masks",
    "layer_masks",
    "m_by_n_mask",
    "magnitude_mask",
    "make_groups",
    "mask_sparsity",
    "threshold_mask",
]
