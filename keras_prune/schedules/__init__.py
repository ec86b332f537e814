"""Pruning schedules: when masks are recomputed and to what sparsity."""

from keras_prune.schedules.base import PruningSchedule
from keras_prune.schedules.constant import ConstantSparsity
from keras_prune.schedules.fixed import FixedMask
from keras_prune.schedules.polynomial import PolynomialDecay

__all__ = ["PruningSchedule", "ConstantSparsity", "FixedMask", "PolynomialDecay"]
