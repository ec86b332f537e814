"""Structured pruning around training: iterative (a callback) and one-shot + fine-tune."""

import keras
import numpy as np

from keras_prune._data import samples
from keras_prune._models import flatten_layers
from keras_prune._validation import check_fraction, check_int
from keras_prune.structured.api import prune_structured
from keras_prune.structured.graph import check_graph_model
from keras_prune.structured.pruner import StructuredPruner


class StructuredPruneCallback(keras.callbacks.Callback):
    """Removes channels at chosen epochs while the model trains (iterative pruning).

    Args:
        schedule: {epoch: ratio}, e.g. {1: 0.25, 3: 0.5}: at the start of each listed
            epoch, the channels that a `StructuredPruner` with that ratio would remove
            are silenced (their weights, and every weight that reads them, are held
            at zero), and training goes on with the channels that are left. Ratios
            must not decrease; channels silenced earlier stay silenced.
        importance, data, round_to, ignore, global_ranking: as in `StructuredPruner`.

    After `fit`, `pruned_model` holds the smaller model (the silenced channels
    physically removed; it computes what the trained model computes) and `report`
    its `StructuredReport`. The trained model keeps its shapes: Keras cannot swap
    the model `fit` is training, so the silenced channels still cost compute until
    `pruned_model` replaces it.
    """

    def __init__(self, schedule, importance="l1", *, data=None, round_to=None, ignore=None,
                 global_ranking=False):
        super().__init__()
        self.schedule = self._check_schedule(schedule)
        self.importance = importance
        self.options = dict(data=data, round_to=round_to, ignore=ignore,
                            global_ranking=global_ranking)
        self.pruned_model = None
        self.report = None
        self._pruner = None
        self._masks = []

    @staticmethod
    def _check_schedule(schedule):
        if not isinstance(schedule, dict) or not schedule:
            raise TypeError(
                "Argument `schedule` must be a non-empty dict {epoch: ratio}, e.g. "
                f"{{1: 0.25, 3: 0.5}}. Received: {schedule!r}."
            )
        checked = {}
        for epoch, ratio in sorted(schedule.items()):
            checked[check_int("schedule epoch", epoch, minimum=0)] = check_fraction(
                f"schedule[{epoch}]", ratio
            )
        ratios = list(checked.values())
        if any(later < earlier for earlier, later in zip(ratios, ratios[1:])):
            raise ValueError(
                "Argument `schedule` must not lower the ratio at a later epoch (removed "
                f"channels do not come back). Received: {schedule!r}."
            )
        return checked

    def on_train_begin(self, logs=None):
        check_graph_model(self.model, "model")

    def on_epoch_begin(self, epoch, logs=None):
        if epoch not in self.schedule:
            return
        self._sync()
        previous = self._pruner.groups if self._pruner is not None else None
        pruner = StructuredPruner(self.model, self.schedule[epoch], self.importance,
                                  **self.options)
        pruner.plan()
        if previous is not None:  # keep what is already gone, add the weakest of the rest
            for group, before in zip(pruner.groups, previous):
                count = max(len(group.remove), len(before.remove))
                if count:
                    scores = np.array(group.scores if group.scores is not None
                                      else np.zeros(group.size), dtype=np.float64)
                    scores[before.remove] = -np.inf
                    group.remove = np.sort(np.argsort(scores, kind="stable")[:count])
        self._pruner = pruner
        self._masks = [(v, keras.ops.convert_to_tensor(m, dtype=v.dtype))
                       for v, m in pruner.masks()]
        self._apply_masks()

    def on_train_batch_end(self, batch, logs=None):
        if self._masks:
            self._sync()
            self._apply_masks()

    def on_train_end(self, logs=None):
        if self._pruner is None:
            return
        self._sync()
        self._apply_masks()
        self.pruned_model, self.report = self._pruner.apply()

    def _sync(self):
        if hasattr(self.model, "jax_state_sync"):  # JAX keeps weights outside variables in fit
            self.model.jax_state_sync()

    def _apply_masks(self):
        for variable, mask in self._masks:
            variable.assign(variable * mask)


def update_batchnorm_statistics(model, x, batch_size=64):
    """Re-estimates every BatchNormalization's moving mean and variance from `x`, in place.

    After channels are removed the statistics the remaining layers see shift;
    recomputing them (a cumulative average over the batches of `x`, without
    touching any trained weight) recovers much of the accuracy before any
    fine-tuning. The model runs in training mode, so dropout is active meanwhile.
    Returns the number of BatchNormalization layers updated.
    """
    check_graph_model(model, "model")
    x = samples(model, x, argument="x").x
    check_int("batch_size", batch_size, minimum=1)
    layers = [layer for layer in flatten_layers(model)
              if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers:
        return 0
    momentum = [layer.momentum for layer in layers]
    for layer in layers:
        layer.moving_mean.assign(np.zeros(layer.moving_mean.shape, "float32"))
        layer.moving_variance.assign(np.ones(layer.moving_variance.shape, "float32"))
    try:
        n = len(keras.tree.flatten(x)[0])
        for index, start in enumerate(range(0, n, batch_size)):
            for layer in layers:  # running average: batch k gets weight 1 / (k + 1)
                layer.momentum = index / (index + 1)
            batch = keras.tree.map_structure(lambda a: np.asarray(a[start:start + batch_size]), x)
            model(batch, training=True)
    finally:
        for layer, value in zip(layers, momentum):
            layer.momentum = value
    return len(layers)


def prune_and_finetune(model, x, y, *, ratio=0.5, importance="l1", epochs=3, batch_size=32,
                       validation_data=None, round_to=None, ignore=None, global_ranking=False,
                       importance_samples=256, verbose=0):
    """One-shot structured pruning, BatchNorm re-estimation, then fine-tuning.

    `model` must be compiled: the pruned copy is compiled the same way (a fresh
    optimizer of the same kind and settings, the same loss and metrics). Data-based
    criteria score channels on the first `importance_samples` of `x` (and `y` for
    "taylor"). `model` is not changed.

    Example:

    ```python
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    pruned, report, history = prune_and_finetune(model, x, y, ratio=0.5, epochs=3)
    ```

    Args:
        model: a compiled Functional or Sequential model.
        x, y: training data for BatchNorm re-estimation and fine-tuning.
        ratio, importance, round_to, ignore, global_ranking: as in `prune_structured`.
        epochs: fine-tuning epochs (default 3; 0 skips fine-tuning).
        batch_size: fine-tuning batch size (default 32).
        validation_data: passed to `fit`.
        importance_samples: how many samples data-based criteria see (default 256).
        verbose: `fit`'s verbosity (default 0).

    Returns:
        `(pruned_model, StructuredReport, History)`.

    Raises:
        ValueError: for an uncompiled model, or bad arguments (see `prune_structured`).
    """
    if not getattr(model, "compiled", False):
        raise ValueError(
            "Argument `model` must be compiled: prune_and_finetune fine-tunes the pruned model "
            "with the same optimizer settings, loss and metrics. Call model.compile(...) first."
        )
    check_int("epochs", epochs, minimum=0)
    check_int("importance_samples", importance_samples, minimum=1)
    subset = keras.tree.map_structure(lambda a: a[:importance_samples], x)
    data = (subset, y[:importance_samples]) if importance == "taylor" else subset
    pruned, report = prune_structured(model, ratio, importance, data=data, round_to=round_to,
                                      ignore=ignore, global_ranking=global_ranking)
    update_batchnorm_statistics(pruned, x, batch_size=max(batch_size, 64))
    pruned.compile_from_config(model.get_compile_config())
    history = pruned.fit(x, y, epochs=epochs, batch_size=batch_size,
                         validation_data=validation_data, verbose=verbose)
    return pruned, report, history
