"""Which weights of which layers get pruned.

`PrunableLayer` is the protocol for your own layers; `register_prunable_layer`
is the hook for layer classes you do not own. Lookups use `isinstance`, so
subclasses of a registered class are prunable too, and later registrations win.
"""

import abc

import keras

from keras_prune._models.checks import flatten_layers
from keras_prune.errors import UnsupportedLayerError


class PrunableLayer(abc.ABC):
    """Mixin for custom layers that know which of their weights to prune.

    Example:

    ```python
    class MyDense(keras.layers.Layer, keras_prune.PrunableLayer):
        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], 8))

        def call(self, x):
            return x @ self.kernel

        def get_prunable_weights(self):
            return [self.kernel]
    ```
    """

    @abc.abstractmethod
    def get_prunable_weights(self):
        """Returns the list of variables to prune."""


def _attribute_getter(names):
    names = tuple(names)

    def get_weights(layer):
        weights = []
        for name in names:
            value = layer
            for part in name.split("."):
                value = getattr(value, part)
            weights.append(value)
        return weights

    get_weights.weight_names = names
    return get_weights


_RNN_CELLS = (keras.layers.SimpleRNNCell, keras.layers.LSTMCell, keras.layers.GRUCell)


def _rnn_cells(layer):
    cell = layer.cell
    return list(cell.cells) if isinstance(cell, keras.layers.StackedRNNCells) else [cell]


def _rnn_supported(layer):
    """RNN layers whose every cell is a Keras cell or knows its prunable weights."""
    return all(
        isinstance(cell, _RNN_CELLS) or _own_getter(cell) is not None for cell in _rnn_cells(layer)
    )


def _rnn_weights(layer):
    weights = []
    for cell in _rnn_cells(layer):
        own = _own_getter(cell)
        weights.extend(own(cell) if own else (cell.kernel, cell.recurrent_kernel))
    return weights


def _mha_weights(layer):
    """The four projections' kernels, and the kernel of any other EinsumDense/Dense a
    subclass adds (XLNet's relative-position `_encoding_dense`)."""
    kernels = [
        layer.query_dense.kernel,
        layer.key_dense.kernel,
        layer.value_dense.kernel,
        layer.output_dense.kernel,
    ]
    known = {id(kernel) for kernel in kernels}
    for value in flatten_layers(layer):  # torch keeps sub-layers out of vars()
        if isinstance(value, (_L.EinsumDense, _L.Dense)) and value.built:
            if id(value.kernel) not in known:
                kernels.append(value.kernel)
                known.add(id(value.kernel))
    return kernels


def _bidirectional_weights(layer):
    return get_prunable_weights(layer.forward_layer) + get_prunable_weights(
        layer.backward_layer
    )


def _time_distributed_weights(layer):
    return get_prunable_weights(layer.layer)


def _nothing(layer):
    return []


_L = keras.layers
# Keras' own layers with nothing to prune (pooling, reshaping, merging, dropout,
# normalization, activations): as in tfmot, wrapping one gives a no-op wrapper.
_NOTHING_TO_PRUNE_MODULES = tuple(
    f"keras.src.layers.{group}."
    for group in (
        "pooling",
        "reshaping",
        "merging",
        "regularization",
        "normalization",
        "activations",
        "core.identity",
        "core.masking",
        "core.input_layer",
    )
)
_BUILTIN = [
    ((_L.Dense, _L.EinsumDense), _attribute_getter(["kernel"])),
    (
        (_L.Conv1D, _L.Conv2D, _L.Conv3D),
        _attribute_getter(["kernel"]),
    ),
    (
        (_L.Conv1DTranspose, _L.Conv2DTranspose, _L.Conv3DTranspose),
        _attribute_getter(["kernel"]),
    ),
    ((_L.DepthwiseConv1D, _L.DepthwiseConv2D), _attribute_getter(["kernel"])),
    (
        (_L.SeparableConv1D, _L.SeparableConv2D),
        _attribute_getter(["depthwise_kernel", "pointwise_kernel"]),
    ),
    ((_L.Embedding,), _attribute_getter(["embeddings"])),
    ((_L.RNN,), _rnn_weights),
    ((_L.MultiHeadAttention,), _mha_weights),
    ((_L.Bidirectional,), _bidirectional_weights),
    ((_L.TimeDistributed,), _time_distributed_weights),
]

# User registrations, most recent first.
_REGISTERED = []


def register_prunable_layer(cls, weight_names):
    """Makes instances of `cls` (and its subclasses) prunable.

    Example:

    ```python
    keras_prune.register_prunable_layer(MyAttention, ["q.kernel", "k.kernel"])
    ```

    Args:
        cls: A `keras.layers.Layer` subclass.
        weight_names: Attribute names of the weights to prune (dotted paths such as
            `"cell.kernel"` reach into sub-layers), or a callable
            `layer -> list of variables`.

    Raises:
        TypeError: if `cls` is not a Layer subclass or `weight_names` is neither a
            list of strings nor a callable.
    """
    if not (isinstance(cls, type) and issubclass(cls, keras.layers.Layer)):
        raise TypeError(
            "Argument `cls` must be a keras.layers.Layer subclass. "
            f"Received: cls={cls!r}."
        )
    if callable(weight_names):
        getter = weight_names
    elif isinstance(weight_names, (list, tuple)) and all(
        isinstance(n, str) for n in weight_names
    ):
        getter = _attribute_getter(weight_names)
    else:
        raise TypeError(
            "Argument `weight_names` must be a list of attribute names (e.g. ['kernel']) "
            f"or a callable layer -> list of variables. Received: weight_names={weight_names!r}."
        )
    _REGISTERED.insert(0, ((cls,), getter))


def _own_getter(layer):
    """A layer's own `get_prunable_weights` (PrunableLayer, or any layer defining it)."""
    method = getattr(type(layer), "get_prunable_weights", None)
    if isinstance(layer, PrunableLayer) or callable(method):
        return method
    return None


def _find_getter(layer):
    own = _own_getter(layer)
    if own is not None:
        return own
    for classes, getter in _REGISTERED + _BUILTIN:
        if isinstance(layer, classes):
            if isinstance(layer, _L.RNN) and not _rnn_supported(layer):
                return None
            return getter
    if type(layer).__module__.startswith(_NOTHING_TO_PRUNE_MODULES):
        return _nothing
    return None


def has_nothing_to_prune(layer):
    """True for Keras' own layers without prunable weights (Dropout, Flatten, pooling)."""
    return _find_getter(layer) is _nothing


def is_prunable(layer):
    """True if keras_prune knows which weights of `layer` to prune."""
    return _find_getter(layer) is not None


def get_prunable_weights(layer):
    """The variables of `layer` that pruning masks (the layer must be built)."""
    getter = _find_getter(layer)
    if getter is None:
        raise UnsupportedLayerError(unsupported_layer_message(layer))
    return list(getter(layer))


def supported_layer_names():
    """Names of the built-in prunable layer classes."""
    return sorted({cls.__name__ for classes, _ in _BUILTIN for cls in classes})


def unsupported_layer_message(layer):
    if has_nothing_to_prune(layer):
        return (
            f"Layer `{layer.name}` of type {type(layer).__name__} has no weights to prune. "
            "Prune the model's Dense, convolution, embedding, RNN or attention layers."
        )
    return (
        f"Layer `{layer.name}` of type {type(layer).__name__} cannot be pruned: keras_prune "
        "does not know which of its weights to prune. Supported layers (and their "
        f"subclasses): {', '.join(supported_layer_names())}, RNN with Keras cells, and "
        "Keras' layers without weights to prune (no-op wrappers). For another layer, "
        "implement `get_prunable_weights()` on it (e.g. with the keras_prune.PrunableLayer "
        "mixin), or call "
        "`keras_prune.register_prunable_layer(LayerClass, ['kernel'])`."
    )
