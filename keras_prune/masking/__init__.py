"""Mask computation (keras.ops only): magnitude, block, M:N and global threshold."""

from keras_prune.masking.block import POOLING_TYPES, block_mask, check_block_fits, is_blockable
from keras_prune.masking.groups import MaskGroup, apply_masks, make_groups, mask_sparsity
from keras_prune.masking.m_by_n import check_m_by_n, m_by_n_mask
from keras_prune.masking.scores import erk_densities, global_masks, layer_masks
from keras_prune.masking.magnitude import (
    global_magnitude_masks,
    kth_largest,
    magnitude_mask,
    num_kept,
    threshold_mask,
)

__all__ = [
    "MaskGroup",
    "erk_densities",
    "global_masks",
    "layer_masks",
    "apply_masks",
    "make_groups",
    "mask_sparsity",
    "POOLING_TYPES",
    "block_mask",
    "check_block_fits",
    "check_m_by_n",
    "global_magnitude_masks",
    "is_blockable",
    "kth_largest",
    "m_by_n_mask",
    "magnitude_mask",
    "num_kept",
    "threshold_mask",
]
