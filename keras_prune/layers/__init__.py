"""Pruning wrapper and the registry of prunable layers."""

from keras_prune.layers.registry import (
    PrunableLayer,
    get_prunable_weights,
    is_prunable,
    register_prunable_layer,
    supported_layer_names,
)
from keras_prune.layers.wrapper import PruneLowMagnitude, collect_wrappers

__all__ = [
    "PrunableLayer",
    "PruneLowMagnitude",
    "collect_wrappers",
    "get_prunable_weights",
    "is_prunable",
    "register_prunable_layer",
    "supported_layer_names",
]
