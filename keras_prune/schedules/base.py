"""The `PruningSchedule` base class: when to prune and to what sparsity."""

import abc

import keras
from keras import ops

from keras_prune import _validation


@keras.saving.register_keras_serializable(package="keras_prune")
class PruningSchedule(abc.ABC):
    """Base class for pruning schedules, with tfmot's interface.

    A schedule is a pure function of the training step. Calling it returns a pair
    `(should_prune, sparsity)` of backend tensors: whether masks are recomputed at
    this step and the target sparsity they are recomputed to.

    Subclasses implement `__call__` and `get_config`. They may also override
    `is_pruning_step`, a plain-Python version of `should_prune` that
    `PruneCallback` calls at every batch (the default evaluates `__call__`, which
    is correct but slower).

    Example:

    ```python
    class EveryEpochTo50(keras_prune.schedules.PruningSchedule):
        def __init__(self, steps_per_epoch):
            self.steps_per_epoch = steps_per_epoch

        def __call__(self, step):
            should_prune = ops.equal(ops.mod(step, self.steps_per_epoch), 0)
            return should_prune, ops.convert_to_tensor(0.5, "float32")

        def get_config(self):
            return {"steps_per_epoch": self.steps_per_epoch}
    ```
    """

    @abc.abstractmethod
    def __call__(self, step):
        """Returns `(should_prune, sparsity)` for `step` as backend tensors."""

    @abc.abstractmethod
    def get_config(self):
        """Returns the constructor's arguments as a dict."""

    def _arguments(self):
        """The constructor's arguments, from either form of `get_config()`."""
        config = self.get_config()
        return config["config"] if set(config) == {"class_name", "config"} else config

    def _nested_config(self, arguments):
        """tfmot's form, `{"class_name": ..., "config": {arguments}}`: tfmot code that calls
        `keras.utils.deserialize_keras_object(schedule.get_config(), custom_objects=...)`
        gets a schedule back (`from_config` takes both forms)."""
        return {"class_name": type(self).__name__, "config": dict(arguments)}

    @classmethod
    def from_config(cls, config):
        if set(config) == {"class_name", "config"}:  # tfmot's schedules nest their config
            config = config["config"]
        return cls(**config)

    def is_pruning_step(self, step):
        """Plain-Python `should_prune(step)`; `step` is a Python int."""
        should_prune, _ = self(ops.convert_to_tensor(step, "int32"))
        return bool(ops.convert_to_numpy(should_prune))

    def sparsity_at(self, step):
        """The target sparsity at `step` as a Python float."""
        _, sparsity = self(ops.convert_to_tensor(step, "int32"))
        return float(ops.convert_to_numpy(sparsity))

    def with_final_sparsity(self, sparsity):
        """The same schedule with a different final sparsity (per-layer allocation).

        Built-in schedules implement it; a custom schedule raises until it does.
        """
        raise TypeError(
            f"Schedule {type(self).__name__} cannot be rescaled to a per-layer sparsity: it "
            "does not implement with_final_sparsity(sparsity). Implement it, or pass a "
            "schedule per layer: layer_sparsity={'dense': MySchedule(...), ...}."
        )

    def first_pruning_step(self, after=0, *, search=10_000):
        """The first step > `after` at which masks are updated, or None if there is none.

        Steps are numbered from 1 (the first training batch), so with tfmot's rule a
        `begin_step` of 0 first prunes at `frequency`. Built-in schedules answer
        exactly; a custom one is asked step by step, up to `search` steps ahead.
        """
        begin = getattr(self, "begin_step", None)
        frequency = getattr(self, "frequency", None)
        if isinstance(begin, int) and isinstance(frequency, int) and frequency > 0:
            step = max(after + 1, begin)
            step = begin + -(-(step - begin) // frequency) * frequency
            end = self.end
            return None if end >= 0 and step > end else step
        for step in range(after + 1, after + 1 + search):
            if self.is_pruning_step(step):
                return step
        return None

    @property
    def end(self):
        """The last step at which masks may change, or -1 for never-ending."""
        return getattr(self, "end_step", -1)

    # Helpers shared by the built-in schedules ---------------------------------

    @staticmethod
    def _validate_steps(begin_step, end_step, frequency, *, allow_endless):
        begin_step = _validation.check_int("begin_step", begin_step, minimum=0)
        allowed = (-1,) if allow_endless else ()
        end_step = _validation.check_int("end_step", end_step, minimum=0, allowed=allowed)
        frequency = _validation.check_int("frequency", frequency, minimum=1)
        if end_step != -1 and end_step < begin_step:
            raise ValueError(
                "Argument `end_step` must be >= `begin_step`"
                + (" or -1 (prune until training ends)" if allow_endless else "")
                + f". Received: begin_step={begin_step}, end_step={end_step}."
            )
        return begin_step, end_step, frequency

    def _should_prune_in_step(self, step):
        """tfmot's rule, as backend tensors (usable inside a compiled function)."""
        step = ops.cast(step, "int32")
        begin, end, freq = self.begin_step, self.end_step, self.frequency
        is_in_range = ops.greater_equal(step, begin)
        if end != -1:
            is_in_range = ops.logical_and(is_in_range, ops.less_equal(step, end))
        is_on_frequency = ops.equal(ops.mod(step - begin, freq), 0)
        return ops.logical_and(is_in_range, is_on_frequency)

    def _python_should_prune(self, step):
        """The same rule on Python ints (no tensors, for per-batch checks)."""
        begin, end, freq = self.begin_step, self.end_step, self.frequency
        in_range = step >= begin and (end == -1 or step <= end)
        return in_range and (step - begin) % freq == 0

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._arguments().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self._arguments() == other._arguments()

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(self._arguments().items()))))
