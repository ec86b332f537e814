"""Structured pruning of keras_hub transformers: heads, units, residual width, depth."""

from keras_prune.structured.transformers.depth import remove_transformer_blocks
from keras_prune.structured.transformers.model import HubModel, is_hub_model
from keras_prune.structured.transformers.pruner import TransformerPruner

__all__ = ["HubModel", "TransformerPruner", "is_hub_model", "remove_transformer_blocks"]
