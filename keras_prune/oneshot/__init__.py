"""One-shot pruning of trained models from calibration data: SparseGPT, Wanda, magnitude."""

from keras_prune.oneshot.prune import OneShotLayer, OneShotReport, prune_one_shot

__all__ = ["OneShotLayer", "OneShotReport", "prune_one_shot"]
