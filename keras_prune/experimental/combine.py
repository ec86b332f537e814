"""The names of `tfmot.experimental.combine` that keras_prune provides."""

from keras_prune.quantization.apply import Default8BitPrunePreserveQuantizeScheme

__all__ = ["Default8BitPrunePreserveQuantizeScheme"]
