"""`PruneCallback`: advances the pruning step and updates masks during `fit`."""

import os
import warnings

import keras

from keras_prune._models import flatten_layers
from keras_prune.callbacks.summaries import SummaryWriter
from keras_prune.layers.wrapper import collect_wrappers
from keras_prune.masking.groups import apply_masks, make_groups, mask_sparsity


def _no_wrappers_error(model):
    return ValueError(
        f"PruneCallback found no pruned layers in model `{model.name}`. Wrap the model with "
        "`keras_prune.prune_low_magnitude(model)` before compiling and fitting it."
    )


@keras.saving.register_keras_serializable(package="keras_prune")
class PruneCallback(keras.callbacks.Callback):
    """The one callback to add to `model.fit` when training a pruned model.

    At every batch it advances the pruning step; when a layer's schedule says so it
    recomputes that layer's masks (eagerly, outside the compiled train step), zeroes
    the pruned weights and their optimizer slots, and it puts the model's current
    sparsity into `logs["sparsity"]` (shown by the progress bar, kept by History).

    Steps are numbered as in tfmot: the first training batch is pruning step 1,
    and the wrappers' `pruning_step` holds the number of batches trained (saved
    with the model, so training resumes at the right step). With
    `steps_per_execution=K`, masks can only change between executions: a pruning
    step falling inside an execution is applied at its start (at most K - 1 steps
    early).

    Custom training loops call the same hooks (`on_train_batch_begin` alone is
    enough, as in tfmot's recipe):

    ```python
    callback = PruneCallback()
    callback.set_model(model)
    callback.on_train_begin()
    for x, y in dataset:
        callback.on_train_batch_begin(batch=-1)
        train_step(x, y)              # uses model(x, training=True)
    callback.on_train_end()
    ```

    Args:
        log_dir: Optional folder for TensorBoard scalars (model sparsity, and per
            pruned weight its sparsity and threshold), written every epoch.
        verbose: 1 prints a line whenever masks are updated. Defaults to 0.
    """

    def __init__(self, log_dir=None, verbose=0):
        super().__init__()
        self.log_dir = log_dir
        self.verbose = verbose
        self._summaries = None if log_dir is None else SummaryWriter(_check_log_dir(log_dir))
        self._all_wrappers = []  # every wrapper of the model, built or not
        self._wrappers = []  # the built ones with weights to mask
        self._groups = []
        self._missed = []  # pruning steps begun but not yet checked against schedules
        self._warned_short = False
        self._step = None
        self._sparsity = 0.0
        self._last_update = None
        self._batch_start = None

    def get_config(self):
        return {"log_dir": self.log_dir, "verbose": self.verbose}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # Public state -------------------------------------------------------------

    @property
    def step(self):
        """Batches trained so far: tfmot's `pruning_step` (None before training starts)."""
        return self._step

    @property
    def sparsity(self):
        """Fraction of pruned weights over all pruned layers after the last update."""
        return self._sparsity

    # Training hooks -----------------------------------------------------------

    def on_train_begin(self, logs=None):
        model = self.model
        self._all_wrappers = collect_wrappers(model)
        self._wrappers, self._groups, self._missed = [], [], []
        self._step = None
        self._warned_short = False  # per run: a callback may serve several fits
        if not self._all_wrappers:
            self._on_no_wrappers(model)
            return
        for wrapper in self._all_wrappers:
            wrapper.set_pruning_active(True)
        self._bind()
        # The step is read at the first batch, after callbacks such as
        # BackupAndRestore have restored the model in their on_train_begin.
        self._updated = set()
        self._last_update = None
        self._warned_idle = False
        self._warn_if_no_update_in_fit()
        if not self._warned_idle:  # one warning: nothing pruned says more than too short
            self._warn_if_schedule_cannot_finish()

    def on_epoch_begin(self, epoch, logs=None):
        if self._ensure_step():
            self._epoch_start = (self._step, self._iterations())

    def on_train_batch_begin(self, batch, logs=None):
        if not self._ensure_step():
            return
        steps = self._steps_per_execution()
        self._missed.extend(range(self._step + 1, self._step + steps + 1))
        self._apply_due_updates()
        # As in tfmot, the step advances when a batch begins, so hooks-only custom
        # loops (no on_train_batch_end) count every batch.
        self._batch_start = (self._step, batch)
        self._step += steps

    def on_train_batch_end(self, batch, logs=None):
        if self._missed:  # an unbuilt model was built by this batch: catch up
            self._apply_due_updates()
        if self._batch_start is not None:
            start, begin = self._batch_start
            if batch >= begin >= 0:  # an execution of (batch - begin + 1) steps
                self._step = start + batch - begin + 1
            self._batch_start = None
        if logs is not None and self._step is not None:
            logs["sparsity"] = self._sparsity

    def on_epoch_end(self, epoch, logs=None):
        if self._step is None:
            return
        # A last, partial execution (steps_per_execution > 1) reports more steps than
        # it ran; the optimizer's iteration count is exact.
        start_step, start_iterations = getattr(self, "_epoch_start", (None, None))
        iterations = self._iterations()
        if self._steps_per_execution() > 1 and start_step is not None:
            if iterations >= start_iterations and self._optimizer() is not None:
                self._step = start_step + (iterations - start_iterations)
        self._sync_step_variables()
        if logs is not None:
            logs["sparsity"] = self._sparsity
        if self._summaries is not None:
            self._summaries.write(self._wrappers, self._step, self._sparsity)

    def on_train_end(self, logs=None):
        if self._step is not None:
            self._sync_step_variables()
            self._warn_if_target_missed()
            self._warn_if_never_updated()
            self._warn_if_batchnorm_stale()
        for wrapper in self._all_wrappers:
            wrapper.set_pruning_active(False)
        if self._summaries is not None:
            self._summaries.close()

    # Internals ------------------------------------------------------------------

    def _on_no_wrappers(self, model):
        raise _no_wrappers_error(model)

    def _synced_model(self):
        """The model with up-to-date variables (on JAX, `fit` keeps them in its state
        and the `model` property writes them back)."""
        return self.model

    def _optimizer(self):
        return getattr(self._model, "optimizer", None)

    def _steps_per_execution(self):
        return max(int(getattr(self._model, "steps_per_execution", 1) or 1), 1)

    def _iterations(self):
        optimizer = self._optimizer()
        if optimizer is None:
            return 0
        return int(keras.ops.convert_to_numpy(optimizer.iterations))

    def _bind(self):
        """Finds the masks to update once every wrapper is built (an unbuilt
        Sequential builds inside its first training step). A wrapper still unbuilt in a
        built model (a layer its owner creates and never calls, such as a block's unused
        squeeze-excite) will never be: it is left out. True when bound."""
        model_built = getattr(self._model, "built", False)
        if not self._wrappers and (model_built or all(w.built for w in self._all_wrappers)):
            self._wrappers = [w for w in self._all_wrappers if w.built and w.prunable_weights]
            self._groups = make_groups(self._wrappers)
        return bool(self._wrappers)

    def _ensure_step(self):
        """Reads the step at the first hook of a run; False when nothing is pruned."""
        if not self._all_wrappers:
            return False
        if self._step is None:
            self._step = self._restore_step() if self._bind() else 0
            self._sparsity = mask_sparsity(self._wrappers)
            self._epoch_start = (self._step, self._iterations())
        return True

    def _apply_due_updates(self):
        """Updates the groups whose schedule prunes at one of the steps not yet
        handled (one step, or an execution of several), at the last such step."""
        if not self._bind():
            return
        due = []
        for group in self._groups:
            pruning_steps = [t for t in self._missed if group.is_pruning_step(t)]
            if pruning_steps:
                due.append((group, pruning_steps[-1]))
        self._missed = []
        if due:
            self._update(due, max(step for _, step in due))

    def _restore_step(self):
        """tfmot's step, made exact for checkpoints taken between two syncs.

        The wrappers store the step and the optimizer's iteration count at the last
        sync; the optimizer's count is saved with every checkpoint, so the step of a
        restored model is `stored_step + (iterations_now - iterations_then)`. A new
        model stores -1 (no batch trained yet), as in tfmot.
        """
        self._synced_model()
        first = self._wrappers[0]
        stored = int(keras.ops.convert_to_numpy(first.pruning_step))
        if stored < 0:
            return 0
        then = int(keras.ops.convert_to_numpy(first.synced_iteration))
        now = self._iterations()
        return stored + (now - then) if now >= then else stored

    def _sync_step_variables(self):
        if not self._bind():
            return
        self._synced_model()
        iterations = self._iterations()
        for wrapper in self._wrappers:
            wrapper.pruning_step.assign(self._step)
            wrapper.synced_iteration.assign(iterations)

    def _update(self, due, step):
        self._synced_model()
        optimizer = self._optimizer()
        for group, pruning_step in due:
            updates = group.compute(group.schedule.sparsity_at(pruning_step))
            apply_masks(updates, optimizer)
            self._updated.update(id(wrapper) for wrapper in group.wrappers)
        self._sparsity = mask_sparsity(self._wrappers)
        self._last_update = step
        self._sync_step_variables()
        if self.verbose:
            print(f"\nkeras_prune: step {step}: masks updated, sparsity {self._sparsity:.3f}")

    def _warn_if_batchnorm_stale(self):
        """BatchNormalization's moving statistics need ~1 / (1 - momentum) steps to follow
        a mask change; masks that changed later leave inference-mode outputs off."""
        if self._last_update is None or not self._sparsity:
            return
        norms = [layer for layer in flatten_layers(self.model)
                 if isinstance(layer, keras.layers.BatchNormalization)]
        if not norms:
            return
        settle = max(int(round(1.0 / max(1.0 - float(n.momentum), 1e-3))) for n in norms)
        since = self._step - self._last_update
        if since >= 2 * settle:
            return
        warnings.warn(
            f"keras_prune: the masks last changed at step {self._last_update}, {since} step(s) "
            f"before training ended, but the model's {len(norms)} BatchNormalization layer(s) "
            f"need about {settle} steps (momentum) to follow a change: their moving "
            "statistics are stale, so evaluate() and the converted model can be far less "
            "accurate than training suggests. End the schedule earlier (end_step at about "
            f"two thirds of the steps, at least {2 * settle} before the end), or re-estimate "
            "them after strip_pruning: "
            "keras_prune.structured.update_batchnorm_statistics(model, x_train).",
            stacklevel=2,
        )

    def _schedule_ends(self):
        return [w.pruning_schedule.end for w in self._all_wrappers if w.pruning_schedule.end >= 0]

    def _warn_if_schedule_cannot_finish(self):
        params = self.params or {}
        epochs, steps = params.get("epochs"), params.get("steps")
        ends = self._schedule_ends()
        if not (epochs and steps and ends):
            return
        start = self._restore_step() if self._wrappers else 0
        last = start + epochs * steps
        self._warned_short = last < max(ends)
        if self._warned_short:
            warnings.warn(
                f"keras_prune: this fit runs {epochs} epochs x {steps} steps, so pruning stops "
                f"at step {last}, before the schedule's end_step={max(ends)}: the model will "
                "not reach the schedule's final sparsity. Train for more epochs, or set "
                f"end_step <= {last}.",
                stacklevel=2,
            )

    def _warn_if_no_update_in_fit(self):
        """tfmot's step 1 is the first batch, so `begin_step=0` with the default
        frequency=100 first prunes at batch 100: a shorter fit prunes nothing."""
        params = self.params or {}
        epochs, steps = params.get("epochs"), params.get("steps")
        if not (epochs and steps):
            return
        start = self._restore_step() if self._wrappers else 0
        last = start + epochs * steps
        idle = {}
        for wrapper in self._all_wrappers:
            schedule = wrapper.pruning_schedule
            ever = schedule.first_pruning_step(after=0)
            if ever is not None and ever <= start:
                continue  # masks were computed in an earlier fit; past end_step they stay
            first = schedule.first_pruning_step(after=start)
            if (first is None or first > last) and schedule.sparsity_at(max(first or last, 1)):
                idle.setdefault(repr(schedule), (schedule, first))
        if not idle:
            return
        self._warned_idle = True
        schedule, first = next(iter(idle.values()))
        when = (f"first updates masks at step {first}" if first is not None else
                "never updates masks (no begin_step + k * frequency falls in 1..end_step)")
        warnings.warn(
            f"keras_prune: nothing will be pruned in this fit. It runs steps {start + 1}..{last} "
            f"({epochs} epochs x {steps} steps; the first batch is step 1, as in tfmot), but "
            f"the schedule {schedule!r} {when}. Fix: a smaller `frequency` (e.g. "
            f"frequency={steps}, once an epoch) and end_step <= {last}, or train longer.",
            stacklevel=2,
        )

    def _warn_if_never_updated(self):
        if self._warned_idle:
            return
        never = [w.name for w in self._wrappers if id(w) not in self._updated
                 and (w.pruning_schedule.first_pruning_step(after=0) or 0) > self._step]
        if never:
            warnings.warn(
                f"keras_prune: the masks of {len(never)} pruned layer(s) ({', '.join(never[:3])}"
                f"{', ...' if len(never) > 3 else ''}) were never updated: training ended at "
                f"step {self._step}, before their schedule's first mask update, so they are "
                "not pruned. Use a smaller `frequency` or train longer.",
                stacklevel=2,
            )

    def _warn_if_target_missed(self):
        """Warns when training stopped early (e.g. EarlyStopping) short of the schedule."""
        ends = self._schedule_ends()
        if ends and self._step < max(ends) and not self._warned_short:
            warnings.warn(
                f"keras_prune: training stopped at pruning step {self._step}, before the "
                f"schedule's end_step={max(ends)}; the model's sparsity is "
                f"{self._sparsity:.3f}, short of the final sparsity. Fit again to go on.",
                stacklevel=2,
            )


@keras.saving.register_keras_serializable(package="keras_prune")
class UpdatePruningStep(PruneCallback):
    """tfmot's name for `PruneCallback` (no logging), so migrating code runs as is.

    As in tfmot, a model without pruned layers is not an error (a warning says
    nothing will be pruned), and `on_epoch_end(batch=-1)` from tfmot's custom
    training loop recipe is accepted.
    """

    def __init__(self):
        super().__init__(log_dir=None)

    def get_config(self):
        return {}

    def on_epoch_end(self, batch=None, logs=None):  # tfmot names this argument `batch`
        super().on_epoch_end(batch, logs)

    def _on_no_wrappers(self, model):
        warnings.warn(_no_wrappers_error(model).args[0] + " Nothing will be pruned.", stacklevel=3)


def _check_log_dir(log_dir):
    if isinstance(log_dir, os.PathLike):
        log_dir = os.fspath(log_dir)
    if not isinstance(log_dir, str) or not log_dir:
        raise ValueError(
            "Argument `log_dir` must be a non-empty string (a folder for TensorBoard's "
            f"event files), as in tfmot. Received: log_dir={log_dir!r}."
        )
    return log_dir


@keras.saving.register_keras_serializable(package="keras_prune")
class PruningSummaries(keras.callbacks.Callback):
    """tfmot's logging callback: TensorBoard pruning scalars every epoch.

    Use it next to `UpdatePruningStep` (or use `PruneCallback(log_dir=...)`, which
    does both). It reads masks and thresholds; it never changes them. As in tfmot
    it writes when an epoch begins (so tfmot's custom-loop recipe,
    `on_epoch_begin(epoch=-1)`, logs), and once more when training ends.

    Args:
        log_dir: Folder for the TensorBoard event files (a non-empty string).
        update_freq: "epoch" (the only value supported, as in most tfmot code).
    """

    def __init__(self, log_dir, update_freq="epoch", **kwargs):
        super().__init__()
        log_dir = _check_log_dir(log_dir)
        if update_freq != "epoch":
            raise ValueError(
                "Argument `update_freq` must be 'epoch' in keras_prune's PruningSummaries. "
                f"Received: update_freq={update_freq!r}."
            )
        self.log_dir = log_dir
        self.update_freq = update_freq
        self._summaries = SummaryWriter(log_dir)

    def get_config(self):
        return {"log_dir": self.log_dir, "update_freq": self.update_freq}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def on_epoch_begin(self, epoch, logs=None):
        self._write()

    def on_train_end(self, logs=None):
        self._write()
        self._summaries.close()

    def _write(self):
        model = self.model
        wrappers = [w for w in collect_wrappers(model) if w.prunable_weights]
        if not wrappers:
            warnings.warn(_no_wrappers_error(model).args[0], stacklevel=3)
            return
        step = max(int(keras.ops.convert_to_numpy(wrappers[0].pruning_step)), 0)
        self._summaries.write(wrappers, step, mask_sparsity(wrappers))
