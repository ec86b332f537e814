"""Lottery tickets: iterative magnitude pruning with rewinding.

Frankle & Carbin (2019) found that a dense network contains a sparse subnetwork
(a "winning ticket") that, reset to its initial weights, trains to the dense
accuracy; Frankle et al. (2020) showed that for larger networks the weights must
be rewound to an early training step instead. `find_ticket` runs the procedure:

1. train the dense model (saving the weights at `rewind_step`),
2. prune `prune_rate` of the remaining weights by magnitude (globally or per layer),
3. reset the surviving weights (`retrain`), train again, and repeat from 2
   until `target_sparsity`.

`retrain="rewind"` resets to the rewind point (the lottery ticket);
"lr_rewind" keeps the trained weights and replays the learning-rate schedule
with a fresh optimizer (Renda et al. 2020); "finetune" keeps weights and
optimizer and trains on. With a `directory`, every round is saved and a call
with the same folder resumes (also with a higher `target_sparsity`).
"""

import dataclasses
import json
import os
import time
import warnings

import keras
import numpy as np
from keras import ops

from keras_prune import _io, _models, _training, _validation
from keras_prune.layers.wrapper import collect_wrappers
from keras_prune.masking.scores import global_masks, kept_scores, layer_masks, sparsity_of
from keras_prune.masks import masked_weights, set_masks
from keras_prune.prune import prune_low_magnitude
from keras_prune.schedules import FixedMask

RETRAIN_MODES = ("rewind", "lr_rewind", "finetune")
RANKINGS = ("global", "layer")


@dataclasses.dataclass
class Round:
    """One round of iterative pruning: its sparsity and the metrics after training."""

    round: int
    sparsity: float
    metrics: dict
    seconds: float = 0.0

    @property
    def accuracy(self):
        """The first accuracy metric (None when the model has none)."""
        name, value = _training.headline(self.metrics)
        return value if name != "loss" else None


class Ticket:
    """The result of `find_ticket`.

    Attributes:
        model: The pruned model, compiled like the input. For retrain="rewind" its
            weights are at the rewind point, ready to train (`fit` with
            `PruneCallback`; masks stay fixed); otherwise the trained result of
            the last round.
        masks: {weight key: boolean mask}, the intersection of every round's masks.
        rounds: One `Round` per training run (round 0 is the dense model).
        sparsity: The fraction of prunable weights the masks remove.
    """

    def __init__(self, model, masks, rounds, source, compile_config, filters):
        self.model = model
        self.masks = masks
        self.rounds = rounds
        self._source = source
        self._compile_config = compile_config
        self._filters = filters

    @property
    def sparsity(self):
        return sparsity_of(self.masks.values())

    def reinitialized(self, seed=None):
        """The same masks on freshly initialized weights: the control experiment.

        A winning ticket trains better than this (Frankle & Carbin 2019).
        """
        if seed is not None:
            keras.utils.set_random_seed(seed)
        fresh = _models.fresh_copy(self._source)
        model = prune_low_magnitude(fresh, pruning_schedule=FixedMask(), filters=self._filters)
        # By position: a subclassed model's fresh layers get new automatic names.
        entries, masks = masked_weights(model), list(self.masks.values())
        shapes = [tuple(e.weight.shape) for e in entries]
        if shapes != [mask.shape for mask in masks]:
            raise ValueError(
                f"The fresh copy of `{self._source.name}` has prunable weights shaped "
                f"{shapes}, the ticket's masks {[mask.shape for mask in masks]}; its "
                "config does not rebuild the same model."
            )
        set_masks(model, {entry.key: mask for entry, mask in zip(entries, masks)})
        return _training.compile_from(model, self._compile_config)

    def table(self):
        lines = ["round  sparsity  " + _training.headline(self.rounds[0].metrics)[0]]
        for entry in self.rounds:
            value = _training.headline(entry.metrics)[1]
            lines.append(f"{entry.round:5d}  {entry.sparsity:8.1%}  {value:.4f}")
        return "\n".join(lines)

    def __repr__(self):
        return (f"Ticket(sparsity={self.sparsity:.3f}, rounds={len(self.rounds)}, "
                f"last={self.rounds[-1].metrics})")


class _Snapshot(keras.callbacks.Callback):
    """Saves the values of `variables` once the optimizer has made `step` updates."""

    def __init__(self, variables, step):
        super().__init__()
        self.variables, self.step, self.values = variables, step, None

    def on_train_batch_end(self, batch, logs=None):
        steps = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        if self.values is None and steps >= self.step:
            self.values = [ops.convert_to_numpy(v) for v in self.variables]


def find_ticket(
    model,
    data,
    target_sparsity,
    *,
    prune_rate=0.2,
    epochs=10,
    batch_size=32,
    rewind_step=0,
    retrain="rewind",
    ranking="global",
    validation_data=None,
    directory=None,
    filters=None,
    verbose=1,
):
    """Iterative magnitude pruning with rewinding; returns a `Ticket`.

    Example:

    ```python
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    ticket = keras_prune.lottery.find_ticket(model, (x, y), 0.9, epochs=20,
                                             validation_data=(x_val, y_val))
    print(ticket.table())
    ticket.model.fit(x, y, epochs=20, callbacks=[keras_prune.callbacks.PruneCallback()])
    ```

    Args:
        model: A compiled Keras model at its initial weights (it is not changed).
        data: Training data: `(x, y)` arrays or a dataset `fit` accepts.
        target_sparsity: The sparsity to reach, in (0, 1).
        prune_rate: Fraction of the remaining weights pruned per round (0.2).
        epochs: Training epochs per round.
        batch_size: Batch size for array data.
        rewind_step: 0 rewinds to the initialization; k > 0 to the weights after
            k optimizer steps of the dense training (Frankle et al. 2020).
        retrain: "rewind", "lr_rewind" or "finetune" (see the module doc).
        ranking: "global" (one magnitude threshold across layers) or "layer".
        validation_data: Data each round is evaluated on (default: `data`).
        directory: A folder to save every round in and resume from.
        filters: Which layers to prune, as in `prune_low_magnitude`.
        verbose: 0 silent, 1 one line per round, 2 also fit's progress bars.
    """
    target = _validation.check_fraction("target_sparsity", target_sparsity)
    prune_rate = _validation.check_fraction("prune_rate", prune_rate)
    if prune_rate == 0:
        raise ValueError("Argument `prune_rate` must be > 0, e.g. 0.2 (20% per round).")
    epochs = _validation.check_int("epochs", epochs, minimum=1)
    rewind_step = _validation.check_int("rewind_step", rewind_step, minimum=0)
    for name, value, allowed in (("retrain", retrain, RETRAIN_MODES),
                                 ("ranking", ranking, RANKINGS)):
        if value not in allowed:
            raise ValueError(
                f"Argument `{name}` must be one of {list(allowed)}. Received: {name}={value!r}."
            )
    config = _training.check_compiled(model, "find_ticket")
    search = _TicketSearch(
        model, config, data, data if validation_data is None else validation_data, filters,
        dict(prune_rate=prune_rate, epochs=epochs, batch_size=batch_size,
             rewind_step=rewind_step, retrain=retrain, ranking=ranking),
        directory, verbose)
    if not search.resume():
        search.first_round()
    search.warn_if_past(target)
    while search.rounds[-1].sparsity < target - search.slack:
        search.next_round(target)
    return search.ticket()


class _TicketSearch:
    """The state of one `find_ticket` run: the wrapped model, its masks, the weights to
    rewind to, and the rounds so far (saved after each one when a directory is given)."""

    def __init__(self, model, config, data, evaluation, filters, settings, directory,
                 verbose):
        self.model, self.config, self.filters = model, config, filters
        self.data, self.evaluation, self.verbose = data, evaluation, verbose
        for name, value in settings.items():
            setattr(self, name, value)
        self.directory = directory
        self.pruned = prune_low_magnitude(model, pruning_schedule=FixedMask(), filters=filters)
        _training.compile_from(self.pruned, config)
        self.entries = masked_weights(self.pruned)
        bookkeeping = {id(v) for w in collect_wrappers(self.pruned) for v in w.variables
                       if not any(v is x for x in w.layer.variables)}
        self.state = [v for v in self.pruned.variables if id(v) not in bookkeeping]
        settings = {**settings,
                    "weights": [[e.key, list(e.weight.shape)] for e in self.entries]}
        self.store = _Store(directory, settings) if directory is not None else None
        self.masks = [np.ones(e.weight.shape, bool) for e in self.entries]
        # Counts are rounded per mask, so a round may end a few weights short of its goal.
        self.slack = (len(self.masks) + 1) / sum(m.size for m in self.masks)
        self.rounds, self.initial, self.rewind = [], None, None

    def resume(self):
        """Loads the rounds a directory holds; False when there are none."""
        resumed = self.store.load() if self.store is not None else None
        if resumed is None:
            return False
        self.rounds, self.initial, self.rewind, trained, self.masks = resumed
        _assign(self.state, trained)
        self._set_masks()
        if self.verbose:
            print(f"Resuming from {self.directory}: {len(self.rounds)} round(s) done, "
                  f"sparsity {self.rounds[-1].sparsity:.1%}.")
        return True

    def first_round(self):
        """Trains the dense model, keeping the weights to rewind to."""
        self.initial = _values(self.state)
        snapshot = _Snapshot(self.state, self.rewind_step) if self.rewind_step else None
        seconds = self._train([snapshot] if snapshot else [])
        if snapshot is not None and snapshot.values is None:
            raise ValueError(
                f"Argument `rewind_step` ({self.rewind_step}) is beyond the first round's "
                f"training ({int(ops.convert_to_numpy(self.pruned.optimizer.iterations))} "
                "steps). Use a smaller rewind_step (Frankle et al. use 0.1-7% of training) "
                "or more epochs."
            )
        self.rewind = snapshot.values if snapshot else self.initial
        self._record(0.0, seconds)

    def warn_if_past(self, target):
        if self.rounds[-1].sparsity > target + self.slack:
            warnings.warn(
                f"keras_prune: {self.directory} already holds a ticket at "
                f"{self.rounds[-1].sparsity:.1%} sparsity, past target_sparsity={target}: that "
                "ticket is returned (rounds never un-prune). Use a new directory to find a "
                "ticket at the lower sparsity.",
                stacklevel=3,
            )

    def next_round(self, target):
        """Prunes `prune_rate` of the remaining weights (the last round lands on
        `target`), rewinds or keeps the weights as `retrain` says, and trains."""
        current = self.rounds[-1].sparsity
        goal = min(1.0 - (1.0 - current) * (1.0 - self.prune_rate), target)
        if target - goal < 0.5 * (goal - current):
            goal = target  # no sliver of a round at the end
        scores = [kept_scores(np.abs(ops.convert_to_numpy(e.weight)), m)
                  for e, m in zip(self.entries, self.masks)]
        new = global_masks(scores, goal) if self.ranking == "global" else layer_masks(
            scores, [goal] * len(scores))
        self.masks = [old & fresh for old, fresh in zip(self.masks, new)]
        if self.retrain == "rewind":
            _assign(self.state, self.rewind)
        if self.retrain != "finetune":
            self._restart_optimizer()
        self._set_masks()
        self._record(sparsity_of(self.masks), self._train())

    def ticket(self):
        """The ticket: the final masks on the rewound weights (for `retrain="rewind"`)."""
        if self.retrain == "rewind":
            _assign(self.state, self.rewind)
            self._restart_optimizer()
            self._set_masks()
        return Ticket(self.pruned, self._mask_dict(), self.rounds, self.model, self.config,
                      self.filters)

    def _mask_dict(self):
        return {e.key: m for e, m in zip(self.entries, self.masks)}

    def _set_masks(self):
        set_masks(self.pruned, self._mask_dict())

    def _restart_optimizer(self):
        _training.compile_from(self.pruned, self.config)
        if self.retrain == "rewind" and self.rewind_step:
            self.pruned.optimizer.iterations.assign(self.rewind_step)

    def _train(self, callbacks=()):
        start = time.perf_counter()
        _training.fit(self.pruned, self.data, epochs=self.epochs, batch_size=self.batch_size,
                      callbacks=callbacks, verbose=1 if self.verbose >= 2 else 0)
        return time.perf_counter() - start

    def _record(self, sparsity, seconds):
        metrics = _training.evaluate(self.pruned, self.evaluation, self.batch_size)
        entry = Round(len(self.rounds), sparsity, metrics, seconds)
        self.rounds.append(entry)
        if self.verbose:
            name, value = _training.headline(entry.metrics)
            print(f"round {entry.round}: sparsity {entry.sparsity:.1%}, {name} {value:.4f} "
                  f"({entry.seconds:.0f} s)")
        if self.store is not None:
            self.store.save(self.rounds, self.initial, self.rewind, _values(self.state),
                            self.masks)


def _values(variables):
    return [ops.convert_to_numpy(v) for v in variables]


def _assign(variables, values):
    for variable, value in zip(variables, values):
        variable.assign(value)


class _Store:
    """A folder holding every finished round.

    `lottery.npz` is the state (weights, masks and, as JSON text under `_meta`,
    the settings and rounds) in one file written atomically, so a run killed at
    any moment resumes from a consistent round. `lottery.json` is a readable
    copy of the settings and rounds, written after it.
    """

    def __init__(self, directory, settings):
        self.directory = os.fspath(directory)
        self.settings = settings
        self.json = os.path.join(self.directory, "lottery.json")
        self.npz = os.path.join(self.directory, "lottery.npz")

    def load(self):
        if not os.path.exists(self.npz):
            return None
        with np.load(self.npz) as arrays:
            if "_meta" in arrays:
                saved = json.loads(str(arrays["_meta"]))
            else:  # folders written before the state held its own metadata
                with open(self.json, encoding="utf-8") as handle:
                    saved = json.load(handle)
            changed = {k: (saved["settings"].get(k), v) for k, v in self.settings.items()
                       if saved["settings"].get(k) != v}
            if changed:
                raise ValueError(
                    f"Argument `directory` ({self.directory}) holds a run with other settings "
                    f"({', '.join(f'{k}: saved {a!r}, now {b!r}' for k, (a, b) in changed.items())}"
                    "). Use a new folder, or the saved settings to resume."
                )

            def group(prefix):
                return [arrays[f"{prefix}_{i}"] for i in range(saved[f"{prefix}_count"])]

            initial, rewind, trained = group("initial"), group("rewind"), group("trained")
            masks = [mask.astype(bool) for mask in group("mask")]
        rounds = [Round(**entry) for entry in saved["rounds"]]
        return rounds, initial, rewind, trained, masks

    def save(self, rounds, initial, rewind, trained, masks):
        meta = {
            "settings": self.settings,
            "rounds": [dataclasses.asdict(entry) for entry in rounds],
            "initial_count": len(initial), "rewind_count": len(rewind),
            "trained_count": len(trained), "mask_count": len(masks),
        }
        arrays = {"_meta": np.array(json.dumps(meta))}
        for prefix, values in (("initial", initial), ("rewind", rewind), ("trained", trained),
                               ("mask", masks)):
            arrays.update({f"{prefix}_{i}": value for i, value in enumerate(values)})
        with _io.atomic_path(self.npz) as temporary:
            with open(temporary, "wb") as handle:
                np.savez(handle, **arrays)
        _io.write_json(meta, self.json)
