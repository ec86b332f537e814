"""The names of `tfmot.sparsity.keras`, backed by keras_prune (Keras 3, any backend)."""

import contextlib

import keras as _keras

from keras_prune.callbacks import PruningSummaries, UpdatePruningStep
from keras_prune.layers import PrunableLayer, PruneLowMagnitude
from keras_prune.prune import prune_low_magnitude
from keras_prune.pruning_policy import PruneForLatencyOnXNNPack, PruningPolicy
from keras_prune.schedules import ConstantSparsity, PolynomialDecay, PruningSchedule
from keras_prune.strip import strip_pruning

__all__ = [
    "ConstantSparsity",
    "PolynomialDecay",
    "PrunableLayer",
    "PruneForLatencyOnXNNPack",
    "PruneLowMagnitude",
    "PruningPolicy",
    "PruningSchedule",
    "PruningSummaries",
    "UpdatePruningStep",
    "prune_low_magnitude",
    "prune_scope",
    "strip_pruning",
]


@contextlib.contextmanager
def prune_scope():
    """tfmot's loading scope. Not needed with keras_prune (its classes are registered
    with Keras, so `keras.saving.load_model` finds them); kept so tfmot code runs."""
    scope = {cls.__name__: cls for cls in (PruneLowMagnitude, ConstantSparsity, PolynomialDecay)}
    with _keras.saving.custom_object_scope(scope):
        yield
