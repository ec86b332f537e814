"""Training callbacks: PruneCallback (and tfmot's UpdatePruningStep, PruningSummaries)."""

from keras_prune.callbacks.prune_callback import (
    PruneCallback,
    PruningSummaries,
    UpdatePruningStep,
)

__all__ = ["PruneCallback", "PruningSummaries", "UpdatePruningStep"]
