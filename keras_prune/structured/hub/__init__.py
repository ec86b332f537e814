"""Structured pruning of keras_hub models at the config level: a smaller config of the same
class, the surviving weights copied (heads, units, residual width, depth)."""

from keras_prune.structured.hub.depth import remove_transformer_blocks
from keras_prune.structured.hub.pruner import TransformerPruner

__all__ = ["TransformerPruner", "remove_transformer_blocks"]
