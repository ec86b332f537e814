"""One-shot pruning of one weight matrix from its calibration statistics.

Matrices are (outputs, inputs), as in the papers (a Keras Dense kernel transposed).
`hessian` is X^T X over the calibration rows of the layer's input X (any positive
scale); Wanda reads its diagonal only.

- SparseGPT (Frantar & Alistarh 2023, arXiv 2301.00774): optimal-brain-surgeon
  pruning column by column with the inverse Hessian's Cholesky factor; the weights
  that stay are updated to make up for the ones removed.
- Wanda (Sun et al. 2023, arXiv 2306.11695): |W_ij| * ||X_j||, no weight update.
- Magnitude: |W_ij|.

A pattern is one of: unstructured at a sparsity, `m_by_n=(m, n)` (m zeros in every
n consecutive inputs of a row, tfmot's convention), or `block=k` (whole runs of k
consecutive inputs of a row, LiteRT's 1x4 float and 1x16 int8 blocks).
"""

import numpy as np

SCOPES = ("output", "layer")


def _groups_mask(scores, sparsity, m_by_n, block, scope):
    """Boolean mask (True = pruned) choosing the lowest `scores` under the pattern."""
    rows, cols = scores.shape
    if m_by_n is not None:
        m, n = m_by_n
        pad = -cols % n
        # A short last group is padded with the lowest scores, as tfmot pads with zeros.
        padded = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        groups = padded.reshape(rows, -1, n)
        order = np.argsort(groups, axis=-1, kind="stable")[..., :m]
        mask = np.zeros(groups.shape, dtype=bool)
        np.put_along_axis(mask, order, True, axis=-1)
        return mask.reshape(rows, -1)[:, :cols]
    width = block or 1
    grouped = scores.reshape(rows, cols // width, width).sum(-1)
    count = round((grouped.size if scope == "layer" else grouped.shape[1]) * sparsity)
    mask = np.zeros(grouped.shape, dtype=bool)  # C order: the flat indices below index it
    if count:
        if scope == "layer":
            flat = np.argsort(grouped, axis=None, kind="stable")[:count]
            mask[np.unravel_index(flat, grouped.shape)] = True
        else:
            order = np.argsort(grouped, axis=1, kind="stable")[:, :count]
            np.put_along_axis(mask, order, True, axis=1)
    return np.repeat(mask, width, axis=1)


def magnitude(weight, hessian, sparsity, *, m_by_n=None, block=None, scope="layer", **_):
    """(weight, pruned mask): |W| compared within the layer (or each output)."""
    mask = _groups_mask(np.abs(weight), sparsity, m_by_n, block, scope)
    return np.where(mask, 0.0, weight), mask


def wanda(weight, hessian, sparsity, *, m_by_n=None, block=None, scope="output", **_):
    """(weight, pruned mask): |W_ij| * ||X_j||, compared within each output (row)."""
    norms = np.sqrt(np.maximum(np.diag(hessian) if hessian.ndim == 2 else hessian, 0.0))
    mask = _groups_mask(np.abs(weight) * norms[None, :], sparsity, m_by_n, block, scope)
    return np.where(mask, 0.0, weight), mask


def sparsegpt(weight, hessian, sparsity, *, m_by_n=None, block=None, blocksize=128,
              percdamp=0.01, **_):
    """(updated weight, pruned mask) by SparseGPT.

    As the reference implementation: inputs that never fire get H_ii = 1 and a zero
    column; H += percdamp * mean(diag H) * I; U = upper Cholesky factor of H^-1;
    columns in blocks of `blocksize` with lazy updates; within a block the mask keeps
    the largest w^2 / U_ii^2 (unstructured: over the whole block, adaptively; m:n per
    row every n columns; `block`: runs of inputs scored by their summed OBS error).
    """
    w = np.array(weight, dtype=np.float64)
    h = np.array(hessian, dtype=np.float64)
    rows, cols = w.shape
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h[np.diag_indices(cols)] += percdamp * np.mean(np.diag(h))
    holder = [h]
    del h  # the holder's is the last reference: freed once its Cholesky factor exists
    hinv = _upper_cholesky_of_inverse(holder)
    step = block or (m_by_n[1] if m_by_n else 1)  # mask groups never straddle two blocks
    blocksize = -(-blocksize // step) * step
    mask = np.zeros((rows, cols), dtype=bool)
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        w1 = w[:, i1:i2].copy()
        q1 = np.zeros_like(w1)
        err1 = np.zeros_like(w1)
        hinv1 = hinv[i1:i2, i1:i2]
        diag = np.diag(hinv1)
        if m_by_n is None:
            mask1 = _groups_mask(w1 ** 2 / diag[None, :] ** 2, sparsity, None, block, "layer")
        else:
            mask1 = np.zeros_like(w1, dtype=bool)
        for i in range(i2 - i1):
            column = w1[:, i]
            if m_by_n is not None and i % m_by_n[1] == 0:  # the next n columns, per row
                scores = w1[:, i:i + m_by_n[1]] ** 2 / diag[None, i:i + m_by_n[1]] ** 2
                mask1[:, i:i + scores.shape[1]] = _groups_mask(scores, 0.0, m_by_n, None, "")
            kept = np.where(mask1[:, i], 0.0, column)
            q1[:, i] = kept
            error = (column - kept) / hinv1[i, i]
            w1[:, i:] -= np.outer(error, hinv1[i, i:])
            err1[:, i] = error
        w[:, i1:i2] = q1
        mask[:, i1:i2] = mask1
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    return w, mask


def _upper_cholesky_of_inverse(holder):
    """U with U^T U = H^-1 (the reference's cholesky_inverse, then an upper Cholesky).

    `holder` is [H], emptied here: each n x n intermediate is freed as soon as the next
    exists, so at most three live at once (a 3072-input layer's are 75 MB each in
    float64; all six at once made one-shot's peak memory)."""
    lower = np.linalg.cholesky(holder.pop())
    inverse_lower = np.linalg.solve(lower, np.eye(len(lower)))  # L^-1
    del lower
    inverse = inverse_lower.T @ inverse_lower  # H^-1 = L^-T L^-1
    del inverse_lower
    return np.linalg.cholesky(inverse).T


METHODS = {"sparsegpt": sparsegpt, "wanda": wanda, "magnitude": magnitude}
