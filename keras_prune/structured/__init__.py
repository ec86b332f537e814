"""Structured pruning: remove whole neurons, filters, channels, heads and blocks.

The model really gets smaller: `prune_structured` returns a new Keras model with
fewer channels (surviving weights copied), which saves as a plain .keras file and
converts with `keras_prune.tflite`. Channels that must change together (a conv,
its BatchNormalization, its consumers, every branch of a residual sum) form a
group in the `DependencyGraph`; an importance criterion scores each group's
channels and the lowest go.
"""

from keras_prune.structured.graph import DependencyGraph, Group, Space
from keras_prune.structured.importance import (
    APoZ,
    BatchNormScale,
    Entropy,
    Magnitude,
    MeanActivation,
    RandomImportance,
    Taylor,
    get_importance,
)
from keras_prune.structured.pruner import (
    LayerWidth,
    StructuredPruner,
    StructuredReport,
    prune_structured,
)
from keras_prune.structured.rebuild import count_flops
from keras_prune.structured.rules import Rule, register_rule

__all__ = [
    "APoZ",
    "BatchNormScale",
    "DependencyGraph",
    "Entropy",
    "Group",
    "LayerWidth",
    "Magnitude",
    "MeanActivation",
    "RandomImportance",
    "Rule",
    "Space",
    "StructuredPruner",
    "StructuredReport",
    "Taylor",
    "count_flops",
    "get_importance",
    "prune_structured",
    "register_rule",
]
