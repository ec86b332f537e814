"""`FixedMask`: a schedule that never recomputes masks (they were chosen before)."""

import keras
from keras import ops

from keras_prune.schedules.base import PruningSchedule


@keras.saving.register_keras_serializable(package="keras_prune")
class FixedMask(PruningSchedule):
    """Keeps the masks a wrapper already holds for the whole of training.

    Used by `prune_at_init` and lottery tickets, whose masks are chosen once,
    outside training: `PruneCallback` still counts steps, but no mask changes, and
    masked weights stay exactly zero (their gradients are zero).

    Example:

    ```python
    model = keras_prune.prune_low_magnitude(model, pruning_schedule=FixedMask())
    keras_prune.set_masks(model, masks)
    ```
    """

    end_step = 0  # nothing left to reach: fit never warns that the schedule is too long

    def __call__(self, step):
        return ops.convert_to_tensor(False), ops.convert_to_tensor(0.0, "float32")

    def is_pruning_step(self, step):
        return False

    def sparsity_at(self, step):
        return 0.0

    def get_config(self):
        return self._nested_config({})
