"""`prune_at_init`: choose masks before training (SNIP, SynFlow, random, magnitude).

The returned model is wrapped with the `FixedMask` schedule: train it with `fit`
and `PruneCallback` and the masks stay as chosen, pruned weights exactly zero.

- "snip" (Lee et al. 2019): |dL/dw * w| on a batch of labelled data.
- "synflow" (Tanaka et al. 2020): data-free. Every weight is replaced by its
  absolute value, the input by ones, and R = sum of the outputs; the score is
  |dR/dw * w|. Pruning happens in `iterations` rounds with the sparsity growing
  exponentially, the scores recomputed after each (so no layer collapses).
- "magnitude": |w| of the weights as they are.
- "random": uniform random scores, ranked within each layer.

SNIP, SynFlow and magnitude rank all weights of the model together (as in the
papers); random ranks each layer at `sparsity`. `layer_sparsity` fixes each
layer's sparsity instead (e.g. the densities of another mask, for a fair random
control).
"""

import keras
import numpy as np
from keras import ops

from keras_prune import _autodiff, _models, _validation
from keras_prune._data import samples
from keras_prune.layers.wrapper import collect_wrappers
from keras_prune.masking.scores import global_masks, kept_scores, layer_masks
from keras_prune.masks import masked_weights, set_masks
from keras_prune.prune import prune_low_magnitude
from keras_prune.schedules import FixedMask

METHODS = ("snip", "synflow", "magnitude", "random")


def prune_at_init(
    model,
    method="snip",
    sparsity=0.9,
    data=None,
    *,
    loss=None,
    layer_sparsity=None,
    iterations=100,
    batch_size=256,
    seed=None,
    filters=None,
):
    """Returns a pruned copy of `model` whose masks are chosen now and stay fixed.

    Example:

    ```python
    pruned = keras_prune.prune_at_init(model, "synflow", sparsity=0.9)
    pruned.compile(...)
    pruned.fit(x, y, callbacks=[keras_prune.callbacks.PruneCallback()])
    ```

    Args:
        model: A built Keras 3 model (usually freshly initialized).
        method: "snip", "synflow", "magnitude" or "random".
        sparsity: Fraction of the prunable weights to remove, in [0, 1).
        data: `(x, y)` samples; required by "snip", ignored by the others.
        loss: The loss for "snip"; defaults to the model's compiled loss.
        layer_sparsity: Optional {layer name: sparsity}: rank within each named
            layer at its own sparsity (layers not named use `sparsity`).
        iterations: SynFlow's pruning rounds. Defaults to 100, as in the paper.
        batch_size: Samples per gradient computation for "snip".
        seed: Seed of the "random" scores.
        filters: Which layers to prune, as in `prune_low_magnitude`.

    Returns:
        A new wrapped model (`FixedMask` schedule) with its masks set and its
        pruned weights zero. The input model is unchanged.
    """
    if method not in METHODS:
        raise ValueError(
            f"Argument `method` must be one of {list(METHODS)}. Received: method={method!r}."
        )
    sparsity = _validation.check_fraction("sparsity", sparsity)
    iterations = _validation.check_int("iterations", iterations, minimum=1)
    batch_size = _validation.check_int("batch_size", batch_size, minimum=1)
    if method == "snip":
        found = samples(model, data, labels=True)
        data = (found.x, found.y)
        loss = _autodiff.resolve_loss(model, loss, "method='snip'")
    pruned = prune_low_magnitude(model, pruning_schedule=FixedMask(), filters=filters)
    entries = masked_weights(pruned)
    targets = _layer_targets(entries, sparsity, layer_sparsity)
    if method == "synflow":
        masks = _synflow(pruned, entries, sparsity, targets if layer_sparsity else None, iterations)
    else:
        scores = _scores(method, pruned, entries, data, loss, batch_size, seed)
        ranked_globally = method != "random" and layer_sparsity is None
        masks = global_masks(scores, sparsity) if ranked_globally else layer_masks(scores, targets)
    set_masks(pruned, {entry.key: mask for entry, mask in zip(entries, masks)})
    return pruned


def _layer_targets(entries, sparsity, layer_sparsity):
    if layer_sparsity is None:
        return [sparsity] * len(entries)
    if not isinstance(layer_sparsity, dict):
        raise TypeError(
            "Argument `layer_sparsity` must be a dict {layer name: sparsity}. "
            f"Received: {type(layer_sparsity).__name__}."
        )
    names = {entry.layer_name for entry in entries}
    unknown = sorted(set(layer_sparsity) - names)
    if unknown:
        raise ValueError(
            f"Argument `layer_sparsity` names layers that are not pruned: {unknown[:5]}. "
            f"Pruned layers: {sorted(names)[:10]}."
        )
    return [
        _validation.check_fraction(f"layer_sparsity['{e.layer_name}']",
                                   layer_sparsity.get(e.layer_name, sparsity))
        for e in entries
    ]


def _scores(method, model, entries, data, loss, batch_size, seed):
    weights = [np.abs(ops.convert_to_numpy(e.weight)) for e in entries]
    if method == "magnitude":
        return weights
    if method == "random":
        rng = np.random.default_rng(seed)
        return [rng.random(w.shape) for w in weights]
    x, y = data
    grads = _autodiff.summed_loss_gradients(model, x, y, loss, batch_size)
    return [np.abs(grads.get(id(e.weight), 0.0) * w) for e, w in zip(entries, weights)]


def _ones_like_input(model):
    """SynFlow's input: one all-ones sample per model input (unknown sizes become 1)."""
    ones = _models.input_sample(model, 1.0)
    if ones is None:
        raise ValueError(
            f"method='synflow' feeds `model` ({model.name}) an all-ones input shaped like its "
            "input, but this subclassed model does not record its input shape. Build it "
            "with model.build((None, ...)) or call it on a batch before pruning."
        )
    return ones


def _synflow(model, entries, sparsity, targets, iterations):
    """Iterative SynFlow on |weights| and an all-ones input; weights restored after.

    `targets` (per-layer sparsities) ranks within layers; None ranks globally.
    """
    bookkeeping = {id(v) for w in collect_wrappers(model) for v in w.masks + w.thresholds}
    floats = [v for v in model.variables
              if "float" in str(v.dtype) and id(v) not in bookkeeping]
    saved = [ops.convert_to_numpy(v) for v in floats]
    ones = _ones_like_input(model)
    trainable = model.trainable_variables
    masks = [np.ones(e.weight.shape, bool) for e in entries]
    try:
        for variable, value in zip(floats, saved):
            variable.assign(np.abs(value))
        for k in range(1, iterations + 1):
            grads = _autodiff.gradients(
                model, ones, lambda out: sum(ops.sum(o) for o in keras.tree.flatten(out))
            )
            grad_of = {id(v): g for v, g in zip(trainable, grads)}
            scores = []
            for entry, mask in zip(entries, masks):
                grad = grad_of.get(id(entry.weight))
                grad = 0.0 if grad is None else ops.convert_to_numpy(grad)
                score = kept_scores(np.abs(grad * ops.convert_to_numpy(entry.weight)), mask)
                scores.append(score)
            if not all(np.all(np.isfinite(s)) for s in scores):
                raise ValueError(
                    "SynFlow's scores overflowed (the product of |weights| through the "
                    "model is not finite in its dtype). Use method='snip' or 'magnitude' "
                    "for this model."
                )
            fraction = k / iterations
            if targets is None:
                step = 1.0 - (1.0 - sparsity) ** fraction
                new = global_masks(scores, step)
            else:
                new = layer_masks(scores, [1.0 - (1.0 - t) ** fraction for t in targets])
            masks = [m & n for m, n in zip(masks, new)]
            for entry, mask in zip(entries, masks):
                entry.mask.assign(mask.astype(entry.mask.dtype))
    finally:
        for variable, value in zip(floats, saved):
            variable.assign(value)
    return masks
