"""Importance criteria: callables that score the channels of a group.

A criterion is any callable `criterion(group) -> scores` (one score per channel of
the group; higher means keep). Criteria that need data also have
`prepare(graph, data)`, which the pruner calls once before scoring. Scores of
coupled layers are combined with the group's `reduce` ("mean" by default).

Built in, by name: "l1", "l2" (filter norms, Li et al. 2017), "bn_scale" (|gamma|
of BatchNormalization, Liu et al. 2017), "activation" (mean |activation|), "apoz"
(1 - average percentage of zeros, Hu et al. 2016), "entropy" (entropy of each
channel's pooled activation over the data, Luo & Wu 2017), "taylor"
(|sum of gradient x weight| per channel, Molchanov et al. 2019) and "random".
"""

import warnings

import keras
import numpy as np

from keras_prune._autodiff import resolve_loss, summed_loss_gradients
from keras_prune._data import samples
from keras_prune._models.graph import run_graph
from keras_prune.structured.rules import Producer, to_numpy

_ACTIVATIONS = (
    keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU, keras.layers.PReLU,
    keras.layers.Activation, keras.layers.BatchNormalization, keras.layers.LayerNormalization,
    keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D,
)


def _weight_rows(group, read=to_numpy):
    """(ids inside the group, rows) for every layer that writes this group's channels."""
    graph = group.graph
    for layer in group.layers:  # every layer that writes (or reads) the group's channels
        key = id(layer)
        spaces = graph.layer_spaces.get(key, {})
        rule = graph.rule_for(layer)
        for ids, rows in rule.channel_weights(layer, graph.layer_inputs[key], spaces, read):
            inside = group.contains(ids)
            if inside.any():
                yield ids[inside], rows[inside]


class Magnitude:
    """The p-norm of the weights that write each channel (p=1: "l1", p=2: "l2")."""

    needs_data = False

    def __init__(self, p=1, reduction="mean"):
        self.p = p
        self.reduction = reduction

    def __call__(self, group):
        ids, scores = [], []
        for layer_ids, rows in _weight_rows(group):
            ids.append(layer_ids)
            scores.append(np.linalg.norm(rows.astype(np.float64), ord=self.p, axis=1))
        return group.reduce(np.concatenate(ids), np.concatenate(scores), self.reduction)

    def __repr__(self):
        return f"Magnitude(p={self.p})"


class BatchNormScale:
    """|gamma| of the BatchNormalization layers on the group's channels.

    A group without BatchNormalization falls back to `fallback` (L1 by default).
    """

    needs_data = False

    def __init__(self, reduction="mean", fallback=None):
        self.reduction = reduction
        self.fallback = fallback or Magnitude(1)

    def prepare(self, graph, data):
        if not any(isinstance(layer, keras.layers.BatchNormalization)
                   for layer in graph.layers.values()):
            warnings.warn(
                "importance='bn_scale' ranks channels by BatchNormalization's |gamma|, but "
                f"this model has no BatchNormalization layer: every channel is ranked by "
                f"{self.fallback!r} instead. Pass importance='l1' to say so, or use a "
                "data-based criterion such as 'activation'.",
                stacklevel=4,
            )

    def __call__(self, group):
        ids, scores = [], []
        graph = group.graph
        for layer in group.layers:
            if not isinstance(layer, keras.layers.BatchNormalization) or layer.gamma is None:
                continue
            layer_ids = graph.layer_inputs[id(layer)][0]
            inside = group.contains(layer_ids)
            if inside.any():
                ids.append(layer_ids[inside])
                scores.append(np.abs(to_numpy(layer.gamma))[inside])
        if not ids:
            return self.fallback(group)
        return group.reduce(np.concatenate(ids), np.concatenate(scores), self.reduction)


class RandomImportance:
    """Random scores: the baseline every criterion should beat."""

    needs_data = False

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)

    def __call__(self, group):
        return self.rng.random(group.size)


class _ActivationBased:
    """Shared plumbing: per-channel statistics of activations over `data`.

    Each channel is measured on the last activation that carries it before it is
    mixed with others (after its BatchNormalization and nonlinearity). Groups with
    no measured channel (attention heads) fall back to L1.
    """

    needs_data = True

    def __init__(self, batch_size=32, reduction="mean"):
        self.batch_size = batch_size
        self.reduction = reduction
        self.id_scores = None
        self.fallback = Magnitude(1)

    def prepare(self, graph, data):
        found = samples(graph.model, data)
        stats = {}  # id(step) -> accumulated statistics, in step order

        def watch(step, outputs):
            operation = step.operation
            if not (isinstance(operation, _ACTIVATIONS)
                    or isinstance(graph.rule_for(operation), Producer)):
                return
            value = np.asarray(keras.ops.convert_to_numpy(outputs[0]), dtype=np.float64)
            if value.ndim >= 2:
                self.accumulate(stats.setdefault(id(step), {"step": step}), value)

        for batch in found.input_batches(self.batch_size):
            run_graph(graph.model, graph.steps, batch, watch)
        scores = np.full(len(graph.roots), np.nan)
        for entry in stats.values():  # steps are in order: later ones overwrite
            ids = graph.tensor_ids[id(entry["step"].outputs[0])]
            scores[ids] = self.finish(entry)
        self.id_scores = scores

    def __call__(self, group):
        if self.id_scores is None:
            raise RuntimeError(f"{type(self).__name__} needs data: call prepare(graph, data).")
        measured = ~np.isnan(self.id_scores[group.ids])
        if not measured.any():
            return self.fallback(group)
        ids = group.ids[measured]
        scores = group.reduce(ids, self.id_scores[ids], self.reduction)
        return np.where(np.isnan(scores), np.nanmax(scores), scores)


class MeanActivation(_ActivationBased):
    """Mean |activation| of each channel over the data ("activation")."""

    def accumulate(self, entry, value):
        axes = tuple(range(value.ndim - 1))
        entry["sum"] = entry.get("sum", 0) + np.abs(value).sum(axis=axes)
        entry["count"] = entry.get("count", 0) + value.size // value.shape[-1]

    def finish(self, entry):
        return entry["sum"] / entry["count"]


class APoZ(MeanActivation):
    """1 - average percentage of zeros of each channel ("apoz"): dead ReLUs score 0."""

    def accumulate(self, entry, value):
        axes = tuple(range(value.ndim - 1))
        entry["sum"] = entry.get("sum", 0) + (value != 0).sum(axis=axes)
        entry["count"] = entry.get("count", 0) + value.size // value.shape[-1]


class Entropy(_ActivationBased):
    """Entropy of each channel's pooled activation over the data ("entropy").

    Each sample's activation is averaged over positions; the values of a channel
    across samples are binned into `bins` equal bins and the entropy (nats) of
    that histogram is its score. A channel that says the same for every input
    carries no information and scores 0.
    """

    def __init__(self, bins=16, **kwargs):
        super().__init__(**kwargs)
        self.bins = bins

    def accumulate(self, entry, value):
        pooled = value.reshape(value.shape[0], -1, value.shape[-1]).mean(axis=1)
        entry.setdefault("pooled", []).append(pooled)

    def finish(self, entry):
        pooled = np.concatenate(entry["pooled"])
        low, high = pooled.min(axis=0), pooled.max(axis=0)
        span = np.where(high > low, high - low, 1.0)
        bins = np.clip(((pooled - low) / span * self.bins).astype(int), 0, self.bins - 1)
        scores = np.empty(pooled.shape[1])
        for channel in range(pooled.shape[1]):
            counts = np.bincount(bins[:, channel], minlength=self.bins)
            p = counts[counts > 0] / len(pooled)
            scores[channel] = -(p * np.log(p)).sum()
        return scores


class Taylor:
    """|sum over a channel's weights of gradient x weight| (first-order Taylor).

    `data` is `(x, y)`; the loss is `loss` or the model's compiled loss.
    """

    needs_data = True

    def __init__(self, loss=None, batch_size=32, reduction="sum"):
        self.loss = loss
        self.batch_size = batch_size
        self.reduction = reduction
        self.products = None

    def prepare(self, graph, data):
        model = graph.model
        found = samples(model, data, labels=True)
        loss = resolve_loss(model, self.loss, "importance='taylor'")
        grads = summed_loss_gradients(model, found.input_arrays(), found.y, loss,
                                      self.batch_size)
        self.products = {
            id(v): grads[id(v)] * to_numpy(v) for v in model.trainable_variables if id(v) in grads
        }

    def __call__(self, group):
        if self.products is None:
            raise RuntimeError("Taylor needs data: call prepare(graph, (x, y)).")

        def read(variable):
            return self.products.get(id(variable), np.zeros(variable.shape))

        ids, scores = [], []
        for layer_ids, rows in _weight_rows(group, read):
            ids.append(layer_ids)
            scores.append(np.abs(rows.sum(axis=1)))
        return group.reduce(np.concatenate(ids), np.concatenate(scores), self.reduction)


CRITERIA = {
    "l1": lambda: Magnitude(1),
    "l2": lambda: Magnitude(2),
    "bn_scale": BatchNormScale,
    "activation": MeanActivation,
    "apoz": APoZ,
    "entropy": Entropy,
    "taylor": Taylor,
    "random": RandomImportance,
}


def get_importance(importance):
    """A criterion from its name, or the callable itself."""
    if isinstance(importance, str):
        if importance not in CRITERIA:
            raise ValueError(
                f"Argument `importance` must be one of {sorted(CRITERIA)} or a callable "
                f"(group -> scores). Received: importance={importance!r}."
            )
        return CRITERIA[importance]()
    if callable(importance):
        return importance
    raise TypeError(
        "Argument `importance` must be a criterion name or a callable (group -> scores). "
        f"Received: {importance!r} of type {type(importance).__name__}."
    )
