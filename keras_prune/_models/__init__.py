"""Model plumbing shared by pruning, stripping, quantization and structured pruning.

Each job has its module: `checks` (what a model is, its layers, paths and sample
inputs), `copying` (layers and models copied with their weights), `class_record`
(a Functional subclass's class, restored after a rewrite) and `rewrite` (graph
models rebuilt layer by layer, subclassed models' layers swapped). Every use of
Keras' private model API lives in these modules, so a Keras upgrade that moves one
is fixed in one place.
"""

from keras_prune._models.checks import (
    check_built,
    check_keras3,
    flatten_layers,
    input_sample,
    input_structure,
    is_graph_model,
    is_legacy_keras,
    resolve_path,
)
from keras_prune._models.class_record import ClassRecord, restore_class
from keras_prune._models.copying import (
    LayerCopier,
    copy_layer,
    copy_model,
    fresh_copy,
    load_copied_weights,
)
from keras_prune._models.rewrite import (
    NO_COPY,
    input_like,
    rewrite_graph_model,
    rewrite_subclassed_model,
    swap_layers,
)

__all__ = [
    "NO_COPY",
    "ClassRecord",
    "LayerCopier",
    "check_built",
    "check_keras3",
    "copy_layer",
    "copy_model",
    "flatten_layers",
    "fresh_copy",
    "input_like",
    "input_sample",
    "input_structure",
    "is_graph_model",
    "is_legacy_keras",
    "load_copied_weights",
    "resolve_path",
    "restore_class",
    "rewrite_graph_model",
    "rewrite_subclassed_model",
    "swap_layers",
]
