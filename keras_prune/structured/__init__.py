"""Structured pruning: remove whole neurons, filters, channels, heads and blocks.

The model really gets smaller: `prune_structured` returns a new Keras model with
fewer channels (surviving weights copied), which saves as a plain .keras file and
converts with `keras_prune.tflite`. Channels that must change together (a conv,
its BatchNormalization, its consumers, every branch of a residual sum) form a
group in the `DependencyGraph`; an importance criterion scores each group's
channels and the lowest go.
"""

from keras_prune.structured.api import prune_structured, remove_blocks
from keras_prune.structured.blocks import ResidualBlock, find_residual_blocks
from keras_prune.structured.budget import BudgetReport, Candidate, prune_to_budget
from keras_prune.structured.collapse import CollapseReport, collapse_layers, linearizable_layers
from keras_prune.structured.distill import Distiller, distill
from keras_prune.structured.graph import DependencyGraph, Group, Space
from keras_prune.structured.hub import TransformerPruner
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
from keras_prune.structured.pruner import StructuredPruner
from keras_prune.structured.rebuild import count_flops
from keras_prune.structured.registry import register_rule
from keras_prune.structured.results import LayerWidth, StructuredReport
from keras_prune.structured.rules import Rule
from keras_prune.structured.training import (
    StructuredPruneCallback,
    prune_and_finetune,
    update_batchnorm_statistics,
)

__all__ = [
    "APoZ",
    "BatchNormScale",
    "BudgetReport",
    "Candidate",
    "CollapseReport",
    "DependencyGraph",
    "Distiller",
    "Entropy",
    "Group",
    "LayerWidth",
    "Magnitude",
    "MeanActivation",
    "RandomImportance",
    "ResidualBlock",
    "Rule",
    "Space",
    "StructuredPruneCallback",
    "StructuredPruner",
    "StructuredReport",
    "Taylor",
    "TransformerPruner",
    "collapse_layers",
    "count_flops",
    "distill",
    "find_residual_blocks",
    "get_importance",
    "linearizable_layers",
    "prune_and_finetune",
    "prune_structured",
    "prune_to_budget",
    "register_rule",
    "remove_blocks",
    "update_batchnorm_statistics",
]
