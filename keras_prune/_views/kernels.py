"""A prunable layer seen as a matrix: its kernel as (outputs, inputs), its input as rows.

Dense: kernel (in, out). EinsumDense (attention projections): the kernel axes
that the input contracts are the inputs, the rest the outputs. Conv1D/Conv2D:
each output position reads a patch (kernel height x width x input channels), so
the rows are the patches of the input (im2col).
"""

import keras
import numpy as np

from keras_prune._models import flatten_layers


class MatrixView:
    """How one layer's kernel and input map to the (outputs, inputs) matrix."""

    def __init__(self, layer):
        self.layer = layer

    def to_matrix(self, kernel):
        return kernel.reshape(-1, kernel.shape[-1]).T

    def from_matrix(self, matrix, shape):
        return matrix.T.reshape(shape)

    def rows(self, x):
        return x.reshape(-1, x.shape[-1])

    def innermost_inputs(self, shape):
        """The length of the innermost input axis, along which LiteRT blocks run."""
        return shape[-2]

    def input_axes(self, ndim):
        """The kernel axes that read the input, in the order `rows` flattens them."""
        return list(range(ndim - 1))  # Dense (in, out); Conv (k..., in, out)


class _EinsumView(MatrixView):
    def __init__(self, layer):
        super().__init__(layer)
        equation = layer.equation.replace(" ", "")
        inputs, rest = equation.split(",")
        kernel, _ = rest.split("->")
        contracted = [c for c in inputs if c in kernel]
        self.kernel_order = [kernel.index(c) for c in contracted] + [
            i for i, c in enumerate(kernel) if c not in contracted]
        self.input_order = [i for i, c in enumerate(inputs) if c not in contracted] + [
            inputs.index(c) for c in contracted]
        self.inputs = len(contracted)

    def to_matrix(self, kernel):
        moved = np.transpose(kernel, self.kernel_order)
        fan_in = int(np.prod(moved.shape[:self.inputs]))
        return moved.reshape(fan_in, -1).T

    def from_matrix(self, matrix, shape):
        moved_shape = [shape[i] for i in self.kernel_order]
        moved = matrix.T.reshape(moved_shape)
        return np.transpose(moved, np.argsort(self.kernel_order))

    def innermost_inputs(self, shape):
        return shape[self.kernel_order[self.inputs - 1]]

    def input_axes(self, ndim):
        return self.kernel_order[:self.inputs]

    def rows(self, x):
        moved = np.transpose(x, self.input_order)
        fan_in = int(np.prod(moved.shape[len(moved.shape) - self.inputs:]))
        return moved.reshape(-1, fan_in)


class _ConvView(MatrixView):
    """Conv1D/Conv2D, channels_last, ungrouped: rows are the input patches."""

    def rows(self, x):
        layer = self.layer
        spatial = len(layer.kernel_size)
        if spatial == 1:
            x = x[:, None]
        kernel = (1,) * (2 - spatial) + tuple(layer.kernel_size)
        strides = (1,) * (2 - spatial) + tuple(layer.strides)
        x = _pad(x, kernel, strides, layer.padding)
        patches = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=(1, 2))
        patches = patches[:, ::strides[0], ::strides[1]]  # (n, oh, ow, c, kh, kw)
        patches = np.moveaxis(patches, 3, -1)  # (n, oh, ow, kh, kw, c): the kernel's order
        return patches.reshape(-1, int(np.prod(patches.shape[3:])))


def _pad(x, kernel, strides, padding):
    if padding == "valid":
        return x
    widths = [(0, 0)]
    for axis, (k, s) in enumerate(zip(kernel, strides)):
        size = x.shape[1 + axis]
        if padding == "causal":
            widths.append((k - 1, 0))
            continue
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        widths.append((total // 2, total - total // 2))
    widths.append((0, 0))
    return np.pad(x, widths)


def kernel_owners(root):
    """{id(kernel variable): layer} for `root` and every layer inside it with a kernel.

    Quantized Dense/EinsumDense layers keep theirs as `_kernel`.
    """
    owners = {}
    for layer in flatten_layers(root, include_self=True):
        kernel = getattr(layer, "_kernel", None)
        kernel = kernel if kernel is not None else getattr(layer, "kernel", None)
        if kernel is not None:
            owners[id(kernel)] = layer
    return owners


def view_of(layer):
    """(MatrixView, None) for a supported layer, or (None, why it is not supported)."""
    if isinstance(layer, keras.layers.EinsumDense):
        if "..." in layer.equation:
            return None, "an EinsumDense equation with '...'"
        return _EinsumView(layer), None
    if isinstance(layer, keras.layers.Dense):
        return MatrixView(layer), None
    if type(layer) in (keras.layers.Conv1D, keras.layers.Conv2D):
        if layer.data_format != "channels_last":
            return None, "channels_first data"
        if layer.groups != 1:
            return None, f"a grouped convolution (groups={layer.groups})"
        if any(d != 1 for d in layer.dilation_rate):
            return None, f"a dilated convolution (dilation_rate={layer.dilation_rate})"
        return _ConvView(layer), None
    return None, f"{type(layer).__name__} (one-shot pruning covers Dense, EinsumDense, Conv1D/2D)"
