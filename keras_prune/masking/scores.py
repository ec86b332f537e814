"""Masks from per-weight scores, chosen once (outside training), in NumPy.

Pruning at initialization, lottery tickets and sensitivity allocation all end the
same way: every prunable weight has a score, and the lowest-scoring ones go,
either ranked across the whole model or within each layer at its own sparsity.
Exactly `size - num_kept(size, sparsity)` weights go, ties broken by position, so
masks are reproducible even where many scores are equal (e.g. zero).
"""

import numpy as np

from keras_prune.masking.magnitude import num_kept


def sparsity_of(masks):
    """The fraction of entries the boolean `masks` (an iterable of arrays) remove together."""
    masks = list(masks)
    return 1.0 - sum(int(m.sum()) for m in masks) / sum(m.size for m in masks)


def keep_top(flat, keep):
    """A boolean mask of the `keep` highest entries of the 1-D `flat` (0 keeps none)."""
    mask = np.zeros(flat.shape, bool)
    if keep > 0:
        # Stable order: among equal scores the earlier weight is kept.
        order = np.argsort(-flat, kind="stable")
        mask[order[:keep]] = True
    return mask


def kept_scores(score, mask):
    """`score` where `mask` keeps a weight, -1 where it is pruned.

    Ranking these (scores are >= 0) never prefers a pruned weight to a kept one,
    even a kept one scoring exactly 0: a new mask is then a subset of `mask` with
    exactly the count asked for. (Multiplying by the mask ties the two at 0.)
    """
    return np.where(mask, score, -1.0)


def layer_masks(scores, sparsities):
    """One boolean mask per score array, each at its own sparsity (a list)."""
    masks = []
    for score, sparsity in zip(scores, sparsities):
        score = np.asarray(score, np.float64)
        keep = score.size if sparsity <= 0 else num_kept(score.size, sparsity)
        masks.append(keep_top(score.ravel(), keep).reshape(score.shape))
    return masks


def global_masks(scores, sparsity):
    """Boolean masks keeping the highest scores across all arrays together."""
    scores = [np.asarray(s, np.float64) for s in scores]
    flat = np.concatenate([s.ravel() for s in scores])
    keep = flat.size if sparsity <= 0 else num_kept(flat.size, sparsity)
    kept = keep_top(flat, keep)
    masks, start = [], 0
    for score in scores:
        masks.append(kept[start:start + score.size].reshape(score.shape))
        start += score.size
    return masks


def erk_densities(shapes, sparsity, scale=1.0):
    """Erdős–Rényi-Kernel densities (Evci et al. 2020, RigL) reaching `sparsity` overall.

    A layer's density is proportional to sum(shape) / prod(shape) (raised to
    `scale`), so small layers keep more of their weights; layers that would exceed
    density 1 are kept dense and the rest rescaled.
    """
    sizes = np.array([float(np.prod(s)) for s in shapes])
    raw = np.array([(sum(s) / np.prod(s)) ** scale for s in shapes], np.float64)
    budget = (1.0 - sparsity) * sizes.sum()
    dense = np.zeros(len(shapes), bool)
    while True:
        free = ~dense
        remaining = budget - sizes[dense].sum()
        epsilon = remaining / np.sum(raw[free] * sizes[free]) if free.any() else 0.0
        densities = np.where(dense, 1.0, epsilon * raw)
        over = free & (densities > 1.0)
        if not over.any():
            return np.clip(densities, 0.0, 1.0)
        dense |= over
