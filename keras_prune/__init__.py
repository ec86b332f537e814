"""keras_prune: neural-network pruning for Keras 3, on every backend.

tfmot's pruning API (`prune_low_magnitude`, `strip_pruning`, schedules,
`UpdatePruningStep`) for Keras 3, plus `PruneCallback`, global and M:N masks,
sparsity reports, TFLite export (`keras_prune.tflite`) and structured pruning
(`keras_prune.structured`).
"""

import importlib

from keras_prune import (
    callbacks,
    errors,
    experimental,
    layers,
    masking,
    quantization,
    schedules,
    sparsity,
)
from keras_prune.at_init import prune_at_init
from keras_prune.layers import PrunableLayer, PruneLowMagnitude, register_prunable_layer
from keras_prune.masks import get_masks, set_masks
from keras_prune.oneshot import OneShotReport, prune_one_shot
from keras_prune.prune import prune_low_magnitude
from keras_prune.pruning_policy import PruneForLatencyOnXNNPack, PruningPolicy
from keras_prune.report import PruningReport, SparsityReport, sparsity_report
from keras_prune.strip import strip_pruning
from keras_prune.xnnpack import SparseLayoutReport, rewrite_for_xnnpack_sparse

__version__ = "0.1.0"

# Submodules that import heavy or optional packages (TensorFlow, matplotlib) load
# on first attribute access: `keras_prune.tflite.convert(...)` works after a plain
# `import keras_prune`, which itself never imports TensorFlow.
_LAZY_SUBMODULES = ("entropy", "lottery", "plot", "sensitivity", "structured", "tflite")


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"keras_prune.{name}")
    raise AttributeError(f"module 'keras_prune' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY_SUBMODULES))


__all__ = [
    "OneShotReport",
    "PrunableLayer",
    "PruneForLatencyOnXNNPack",
    "PruneLowMagnitude",
    "PruningPolicy",
    "PruningReport",
    "SparseLayoutReport",
    "SparsityReport",
    "callbacks",
    "errors",
    "experimental",
    "get_masks",
    "layers",
    "masking",
    "prune_at_init",
    "prune_low_magnitude",
    "prune_one_shot",
    "quantization",
    "register_prunable_layer",
    "rewrite_for_xnnpack_sparse",
    "schedules",
    "set_masks",
    "sparsity",
    "sparsity_report",
    "strip_pruning",
]
