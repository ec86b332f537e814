"""Exception types that satisfy both tfmot's and Python's conventions.

tfmot raises ValueError for a layer it cannot prune and for an object that is
not a layer; Python's convention is NotImplementedError and TypeError. The
classes here are both, so `except ValueError` (tfmot code) and `except
NotImplementedError` / `except TypeError` (keras_prune code) all catch them.
"""


class UnsupportedLayerError(ValueError, NotImplementedError):
    """A layer keras_prune does not know how to prune."""


class NotALayerError(ValueError, TypeError):
    """An argument that should be a Keras 3 layer or model is something else."""
