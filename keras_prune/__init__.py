"""keras_prune: neural-network pruning for Keras 3, on every backend.

tfmot's pruning API (`prune_low_magnitude`, `strip_pruning`, schedules,
`UpdatePruningStep`) for Keras 3, plus `PruneCallback`, global and M:N masks,
sparsity reports, TFLite export (`keras_prune.tflite`) and structured pruning
(`keras_prune.structured`).
"""

from keras_prune import callbacks, layers, masking, schedules, sparsity
from keras_prune.layers import PrunableLayer, PruneLowMagnitude, register_prunable_layer
from keras_prune.prune import PruningReport, prune_low_magnitude
from keras_prune.report import SparsityReport, sparsity_report
from keras_prune.strip import strip_pruning

__version__ = "0.1.0"

__all__ = [
    "PrunableLayer",
    "PruneLowMagnitude",
    "PruningReport",
    "SparsityReport",
    "callbacks",
    "layers",
    "masking",
    "prune_low_magnitude",
    "register_prunable_layer",
    "schedules",
    "sparsity",
    "sparsity_report",
    "strip_pruning",
]
