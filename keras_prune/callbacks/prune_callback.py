"""`PruneCallback`: advances the pruning step and updates masks during `fit`."""

import keras

from keras_prune.callbacks import mask_updater
from keras_prune.callbacks.summaries import SummaryWriter


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

    Steps count batches, as in tfmot. With `steps_per_execution=K`, masks can only
    change between executions: a pruning step falling inside an execution is
    applied at its start (at most K - 1 steps early).

    Custom training loops call the same hooks:

    ```python
    callback = PruneCallback()
    callback.set_model(model)
    callback.on_train_begin()
    for step, (x, y) in enumerate(dataset):
        callback.on_train_batch_begin(step)
        train_step(x, y)              # uses model(x, training=True)
        callback.on_train_batch_end(step)
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
        self._summaries = SummaryWriter(log_dir) if log_dir else None
        self._wrappers = []
        self._groups = []
        self._step = None
        self._sparsity = 0.0

    def get_config(self):
        return {"log_dir": self.log_dir, "verbose": self.verbose}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # Public state -------------------------------------------------------------

    @property
    def step(self):
        """The pruning step of the next batch (None before training starts)."""
        return self._step

    @property
    def sparsity(self):
        """Fraction of pruned weights over all pruned layers after the last update."""
        return self._sparsity

    # Training hooks -----------------------------------------------------------

    def on_train_begin(self, logs=None):
        model = self.model
        self._wrappers = mask_updater.collect_wrappers(model)
        if not self._wrappers:
            raise _no_wrappers_error(model)
        self._groups = mask_updater.make_groups(self._wrappers)
        for wrapper in self._wrappers:
            wrapper._pruning_active = True
        # The step is read at the first batch, after callbacks such as
        # BackupAndRestore have restored the model in their on_train_begin.
        self._step = None

    def on_epoch_begin(self, epoch, logs=None):
        self._ensure_step()
        self._epoch_start = (self._step, self._iterations())

    def on_train_batch_begin(self, batch, logs=None):
        self._ensure_step()
        self._batch_begin = batch
        steps = max(int(getattr(self._model, "steps_per_execution", 1) or 1), 1)
        due = []
        for group in self._groups:
            pruning_steps = [
                t for t in range(self._step, self._step + steps) if group.is_pruning_step(t)
            ]
            if pruning_steps:
                due.append((group, pruning_steps[-1]))
        if due:
            self._update(due)

    def on_train_batch_end(self, batch, logs=None):
        begin = getattr(self, "_batch_begin", batch)
        self._step += max(batch - begin + 1, 1)
        if logs is not None:
            logs["sparsity"] = self._sparsity

    def on_epoch_end(self, epoch, logs=None):
        if self._step is None:
            return
        # A last, partial execution (steps_per_execution > 1) reports more steps than
        # it ran; the optimizer's iteration count is exact.
        start_step, start_iterations = self._epoch_start
        iterations = self._iterations()
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
        for wrapper in self._wrappers:
            wrapper._pruning_active = False
        if self._summaries is not None:
            self._summaries.close()

    # Internals ------------------------------------------------------------------

    def _optimizer(self):
        return getattr(self._model, "optimizer", None)

    def _iterations(self):
        optimizer = self._optimizer()
        if optimizer is None:
            return 0
        return int(keras.ops.convert_to_numpy(optimizer.iterations))

    def _ensure_step(self):
        if self._step is None:
            self._step = self._restore_step()
            self._sparsity = mask_updater.mask_sparsity(self._wrappers)
            self._epoch_start = (self._step, self._iterations())

    def _restore_step(self):
        """tfmot's step, made exact for checkpoints taken between two syncs.

        The wrappers store the step and the optimizer's iteration count at the last
        sync; the optimizer's count is saved with every checkpoint, so the step of a
        restored model is `stored_step + (iterations_now - iterations_then)`.
        """
        self.model  # noqa: B018 (on JAX, attaches the training state to the model)
        first = self._wrappers[0]
        stored = int(keras.ops.convert_to_numpy(first.pruning_step))
        if stored < 0:
            return 0
        then = int(keras.ops.convert_to_numpy(first.synced_iteration))
        now = self._iterations()
        return stored + (now - then) if now >= then else stored

    def _sync_step_variables(self):
        self.model  # noqa: B018 (on JAX, attaches the training state to the model)
        iterations = self._iterations()
        for wrapper in self._wrappers:
            wrapper.pruning_step.assign(self._step)
            wrapper.synced_iteration.assign(iterations)

    def _update(self, due):
        self.model  # noqa: B018 (on JAX, attaches the training state to the model)
        optimizer = self._optimizer()
        for group, step in due:
            updates = group.compute(group.schedule.sparsity_at(step))
            mask_updater.apply_masks(updates, optimizer)
        self._sparsity = mask_updater.mask_sparsity(self._wrappers)
        self._sync_step_variables()
        if self.verbose:
            print(f"\nkeras_prune: step {self._step}: masks updated, sparsity {self._sparsity:.3f}")


@keras.saving.register_keras_serializable(package="keras_prune")
class UpdatePruningStep(PruneCallback):
    """tfmot's name for `PruneCallback` (no logging), so migrating code runs as is."""

    def __init__(self):
        super().__init__(log_dir=None)

    def get_config(self):
        return {}


@keras.saving.register_keras_serializable(package="keras_prune")
class PruningSummaries(keras.callbacks.Callback):
    """tfmot's logging callback: TensorBoard pruning scalars every epoch.

    Use it next to `UpdatePruningStep` (or use `PruneCallback(log_dir=...)`, which
    does both). It reads masks and thresholds; it never changes them.

    Args:
        log_dir: Folder for the TensorBoard event files.
        update_freq: "epoch" (the only value supported, as in most tfmot code).
    """

    def __init__(self, log_dir, update_freq="epoch", **kwargs):
        super().__init__()
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

    def on_epoch_end(self, epoch, logs=None):
        model = self.model
        wrappers = mask_updater.collect_wrappers(model)
        if not wrappers:
            raise _no_wrappers_error(model)
        sparsity = mask_updater.mask_sparsity(wrappers)
        step = int(keras.ops.convert_to_numpy(wrappers[0].pruning_step))
        self._summaries.write(wrappers, step, sparsity)

    def on_train_end(self, logs=None):
        self._summaries.close()
