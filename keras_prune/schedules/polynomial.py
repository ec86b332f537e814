"""`PolynomialDecay`: Zhu & Gupta's gradual pruning schedule."""

import keras
from keras import ops

from keras_prune import _validation
from keras_prune.schedules.base import PruningSchedule


@keras.saving.register_keras_serializable(package="keras_prune")
class PolynomialDecay(PruningSchedule):
    """Raises sparsity from `initial_sparsity` to `final_sparsity` polynomially.

    With `p = clip((step - begin_step) / (end_step - begin_step), 0, 1)`, the
    target is `final + (initial - final) * (1 - p) ** power` (Zhu & Gupta, 2017),
    so sparsity rises fast at first and levels off. Masks are recomputed every
    `frequency` steps in [begin_step, end_step] and no longer change afterwards.

    Example:

    ```python
    schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=1000)
    schedule.sparsity_at(1000)  # 0.8
    ```

    Args:
        initial_sparsity: Sparsity at `begin_step`, in [0, 1).
        final_sparsity: Sparsity from `end_step` on, in [0, 1).
        begin_step: First pruning step (>= 0).
        end_step: Step at which `final_sparsity` is reached (>= begin_step).
        power: Exponent of the decay. Defaults to 3.
        frequency: Masks are recomputed every `frequency` steps. Defaults to 100.

    Raises:
        ValueError: for sparsities outside [0, 1), `end_step < begin_step`,
            a negative `begin_step` or `frequency <= 0`.
    """

    def __init__(
        self, initial_sparsity, final_sparsity, begin_step, end_step, power=3, frequency=100
    ):
        self.initial_sparsity = _validation.check_fraction("initial_sparsity", initial_sparsity)
        self.final_sparsity = _validation.check_fraction("final_sparsity", final_sparsity)
        self.begin_step, self.end_step, self.frequency = self._validate_steps(
            begin_step, end_step, frequency, allow_endless=False
        )
        if isinstance(power, bool) or not isinstance(power, (int, float)):
            raise TypeError(f"Argument `power` must be a number. Received: power={power!r}.")
        self.power = power

    def _progress(self, step):
        span = max(self.end_step - self.begin_step, 1)
        return ops.clip(ops.cast(step - self.begin_step, "float32") / float(span), 0.0, 1.0)

    def __call__(self, step):
        step = ops.cast(step, "int32")
        remaining = ops.power(1.0 - self._progress(step), float(self.power))
        sparsity = self.final_sparsity + (self.initial_sparsity - self.final_sparsity) * remaining
        return self._should_prune_in_step(step), ops.cast(sparsity, "float32")

    def is_pruning_step(self, step):
        return self._python_should_prune(step)

    def with_final_sparsity(self, sparsity):
        """The same schedule ending at `sparsity` (the start scaled in proportion)."""
        start = self.initial_sparsity * sparsity / self.final_sparsity if self.final_sparsity else 0.0
        return type(self)(**{**self._arguments(), "initial_sparsity": min(start, sparsity),
                             "final_sparsity": sparsity})

    def get_config(self):
        return self._nested_config({
            "initial_sparsity": self.initial_sparsity,
            "final_sparsity": self.final_sparsity,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "power": self.power,
            "frequency": self.frequency,
        })
