"""`rewrite_for_xnnpack_sparse`: a MobileNet-style Keras model laid out the way XNNPACK's
sparse inference needs it.

XNNPACK runs a float CNN sparse on ARM CPUs only when its stride-2 convolutions are
padded exactly `kernel // 2` on every side (its NCHW rules; TF "same" padding at stride
2 pads 0 before and 1 after on even sizes, and fails), and when global average pooling
keeps its dimensions (tfmot's `PruneForLatencyOnXNNPack` asks for that). Keras'
MobileNet and MobileNetV2 break both rules. The rewrite:

- a 3x3 stride-2 `Conv2D` on 3 channels and stride-2 3x3/5x5 `DepthwiseConv2D` layers
  with "same" padding become `ZeroPadding2D(k // 2)` + the layer with "valid" padding;
- a `ZeroPadding2D` with uneven sides before such a layer (Keras' `correct_pad`) pads
  `k // 2` on every side;
- `GlobalAveragePooling2D()` becomes `GlobalAveragePooling2D(keepdims=True)` + `Flatten`.

Output sizes never change. Values do where the padding moves: on an even input size
the stride-2 grid shifts by one pixel, so a trained model computes something different
and loses accuracy (benchmarks/xnnpack_layout.py); rewrite before training where you
can. On odd sizes TF "same" already pads evenly and the rewrite is exact. The report
says which is which.
"""

import dataclasses

import keras

from keras_prune._models import is_graph_model
from keras_prune._models.graph import inbound_nodes, outbound_nodes
from keras_prune._models.rewrite import rewrite_graph_model
from keras_prune._text import table


@dataclasses.dataclass
class LayoutChange:
    layer: str
    change: str
    exact: bool | None  # None: depends on an input size the model does not fix


@dataclasses.dataclass
class SparseLayoutReport:
    """The layers `rewrite_for_xnnpack_sparse` changed, and whether each keeps its values."""

    changes: list

    @property
    def exact(self):
        """True when the new model computes exactly what the old one did."""
        return all(change.exact for change in self.changes)

    def __str__(self):
        if not self.changes:
            return "Nothing to change: the model already has XNNPACK's sparse layout."
        rows = [(c.layer, c.change, {True: "yes", False: "no (grid moves one pixel)",
                                     None: "for odd input sizes"}[c.exact])
                for c in self.changes]
        lines = table(("layer", "change", "same outputs"), rows)
        if not self.exact:
            lines.append("Outputs change where the padding moved, and a trained model loses "
                         "accuracy (a digits CNN: 0.94 -> 0.32, 0.91 after 5 epochs). Rewrite "
                         "before training where you can; else fine-tune.")
        return "\n".join(lines)


def rewrite_for_xnnpack_sparse(model):
    """Returns `(new_model, SparseLayoutReport)`: `model` with XNNPACK's sparse layout.

    Example:

    ```python
    model = keras.applications.MobileNetV2((96, 96, 3), weights=None)
    model, report = keras_prune.rewrite_for_xnnpack_sparse(model)
    pruned = keras_prune.prune_low_magnitude(
        model, pruning_policy=keras_prune.PruneForLatencyOnXNNPack())
    ```

    Args:
        model: a built Functional or Sequential Keras model (unchanged).

    Raises:
        ValueError: for a subclassed or unbuilt model.
    """
    if not (isinstance(model, keras.Sequential) or is_graph_model(model)):
        raise ValueError(f"Argument `model` must be a Functional or Sequential model; "
                         f"received a subclassed {type(model).__name__}. Build it with the "
                         "functional API to rewrite its layers.")
    if not model.built:
        raise ValueError("Argument `model` must be built. Call it on a batch (or build it "
                         "with an input shape) first.")
    changes = []

    def transform(layer, copier):
        if isinstance(layer, keras.layers.GlobalAveragePooling2D) and not layer.keepdims:
            changes.append(LayoutChange(layer.name, "keepdims=True, then Flatten", True))
            config = {**layer.get_config(), "keepdims": True}
            return (type(layer).from_config(config),
                    keras.layers.Flatten(name=f"{layer.name}_flatten"))
        if isinstance(layer, keras.layers.ZeroPadding2D):
            kernel = _strided_consumer_kernel(layer)
            if (kernel is None or _sides(layer) == ((kernel // 2,) * 2,) * 2
                    or not _same_size(_input_shape(layer), _sides(layer), kernel)):
                return None
            changes.append(LayoutChange(layer.name, f"padding {_sides(layer)} -> "
                                        f"{kernel // 2} on every side", False))
            return keras.layers.ZeroPadding2D(kernel // 2, name=layer.name)
        kernel = _strided_same_kernel(layer)
        if kernel is None:
            return None
        exact = _exact(_input_shape(layer), kernel)
        changes.append(LayoutChange(layer.name, f"'same' -> ZeroPadding2D({kernel // 2}) + "
                                    "'valid'", exact))
        config = {**layer.get_config(), "padding": "valid"}
        new = type(layer).from_config(config)
        new.build(_input_shape(layer))
        new.set_weights(layer.get_weights())
        return keras.layers.ZeroPadding2D(kernel // 2, name=f"{layer.name}_pad"), new

    new, _ = rewrite_graph_model(model, transform, restart=changes.clear)
    return new, SparseLayoutReport(list(changes))


_CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)


def _sides(padding_layer):
    return tuple(tuple(int(v) for v in side) for side in padding_layer.padding)


def _input_shape(layer):
    return tuple(inbound_nodes(layer)[0].input_tensors[0].shape)


def _strided(layer):
    """The kernel size of a stride-2 layer XNNPACK's sparse path may take, or None: the
    3x3 stem on 3 channels, or a 3x3/5x5 depthwise layer of multiplier 1."""
    if tuple(getattr(layer, "strides", ())) != (2, 2) or tuple(layer.dilation_rate) != (1, 1):
        return None
    size = tuple(layer.kernel_size)
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return size[0] if size in ((3, 3), (5, 5)) and layer.depth_multiplier == 1 else None
    if isinstance(layer, keras.layers.Conv2D) and layer.groups == 1 and size == (3, 3):
        return 3 if _input_shape(layer)[-1] == 3 else None
    return None


def _strided_same_kernel(layer):
    if not isinstance(layer, _CONVOLUTIONS) or layer.padding.lower() != "same":
        return None
    return _strided(layer) if layer.data_format == "channels_last" else None


def _strided_consumer_kernel(padding_layer):
    """The kernel size of the one "valid" stride-2 layer `padding_layer` feeds, or None."""
    consumers = [node.operation for node in outbound_nodes(padding_layer)]
    if len(consumers) != 1 or not isinstance(consumers[0], _CONVOLUTIONS):
        return None
    consumer = consumers[0]
    if consumer.padding.lower() != "valid" or consumer.data_format != "channels_last":
        return None
    return _strided(consumer)


def _exact(shape, kernel):
    """Whether TF "same" padding at stride 2 pads `kernel // 2` on both sides of every
    spatial size in `shape` (an odd size); None when a size is not fixed."""
    sizes = shape[1:3]
    if any(size is None for size in sizes):
        return None
    return all(max((-(-size // 2) - 1) * 2 + kernel - size, 0) == 2 * (kernel // 2)
               for size in sizes)


def _same_size(shape, sides, kernel):
    """Whether padding `kernel // 2` on every side instead of `sides` keeps the size of a
    stride-2 "valid" convolution's output (Keras' `correct_pad` pads evenly on odd sizes
    already; a fixed uneven padding on an odd size would change it)."""
    def out(size, before, after):
        return (size + before + after - kernel) // 2 + 1

    half = kernel // 2
    return all(size is not None and out(size, *side) == out(size, half, half)
               for size, side in zip(shape[1:3], sides))
