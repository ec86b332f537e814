"""`ConstantSparsity`: one target sparsity, applied every `frequency` steps."""

import keras
from keras import ops

from keras_prune import _validation
from keras_prune.schedules.base import PruningSchedule


@keras.saving.register_keras_serializable(package="keras_prune")
class ConstantSparsity(PruningSchedule):
    """Prunes to `target_sparsity` every `frequency` steps in [begin_step, end_step].

    Example:

    ```python
    schedule = ConstantSparsity(0.5, begin_step=0, frequency=100)
    should_prune, sparsity = schedule(200)  # (True, 0.5)
    ```

    Args:
        target_sparsity: Fraction of weights set to zero, in [0, 1).
        begin_step: First step at which masks are computed. Defaults to 0.
        end_step: Last step at which masks may change; -1 (the default) prunes
            for as long as training runs.
        frequency: Masks are recomputed every `frequency` steps. Defaults to 100.

    Raises:
        ValueError: for a sparsity outside [0, 1), a negative `begin_step`,
            `end_step < begin_step` (other than -1) or `frequency <= 0`.
    """

    def __init__(self, target_sparsity, begin_step=0, end_step=-1, frequency=100):
        self.target_sparsity = _validation.check_fraction("target_sparsity", target_sparsity)
        self.begin_step, self.end_step, self.frequency = self._validate_steps(
            begin_step, end_step, frequency, allow_endless=True
        )

    def __call__(self, step):
        sparsity = ops.convert_to_tensor(self.target_sparsity, "float32")
        return self._should_prune_in_step(step), sparsity

    def is_pruning_step(self, step):
        return self._python_should_prune(step)

    def sparsity_at(self, step):
        return self.target_sparsity

    def with_final_sparsity(self, sparsity):
        """The same schedule with `target_sparsity=sparsity`."""
        return type(self)(**{**self._arguments(), "target_sparsity": sparsity})

    def get_config(self):
        return self._nested_config({
            "target_sparsity": self.target_sparsity,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "frequency": self.frequency,
        })
