"""Which weights and outputs of a layer are fake-quantized: `QuantizeConfig`.

tfmot's interface, so a migrating user's custom config keeps its shape, and the
default 8-bit scheme for Keras 3 layers (tfmot's Default8BitQuantizeScheme):
kernels of convolutions per output channel, Dense and transposed convolutions per
tensor, all symmetric with a narrow range; outputs per tensor, asymmetric, with a
learned range.
"""

import keras

from keras_prune.quantization.quantizers import (
    LastValueQuantizer,
    activation_quantizer,
    weight_quantizer,
)

_SERIALIZABLE = keras.saving.register_keras_serializable(package="keras_prune")


class QuantizeConfig:
    """How one layer is quantized (tfmot's `QuantizeConfig`), for custom layers.

    Subclass it and pass an instance to `quantize_annotate_layer(layer, config)`:

    - `get_weights_and_quantizers(layer)`: [(variable, Quantizer)] for the weights
      to fake-quantize (e.g. `[(layer.kernel, LastValueQuantizer(8, False, True, True))]`).
    - `get_output_quantizers(layer)`: [Quantizer] for the layer's output (one).
    - `get_activations_and_quantizers(layer)`: tfmot quantizes `layer.activation`;
      here a non-empty list quantizes the layer's output (after its activation)
      with the first quantizer, which is where TFLite puts that tensor.
    - `set_quantize_weights` / `set_quantize_activations` are never called: the
      wrapper runs the layer with its quantized weights substituted (a Keras 3
      StatelessScope), so no layer attribute is reassigned.
    - `get_config()`: the constructor's arguments (register the class with
      `keras.saving.register_keras_serializable` to reload a `.keras` file).
    """

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@_SERIALIZABLE
class DepthwiseKernelQuantizer(LastValueQuantizer):
    """Per-channel symmetric quantizer for a (h, w, in, multiplier) depthwise kernel.

    TFLite stores the kernel as (1, h, w, in * multiplier), one scale per output
    channel; the last two axes are merged to quantize per channel, then split again.
    """

    def __init__(self, num_bits=8, per_axis=True, symmetric=True, narrow_range=True):
        super().__init__(num_bits, per_axis, symmetric, narrow_range)

    def __call__(self, inputs, training, weights, **kwargs):
        shape = tuple(inputs.shape)
        merged = keras.ops.reshape(inputs, shape[:-2] + (shape[-2] * shape[-1],))
        quantized = super().__call__(merged, training, weights, **kwargs)
        return keras.ops.reshape(quantized, shape)


# Layers whose kernel is quantized, and how. 1D convolutions run as 2D ones behind an
# ExpandDims, which the converter cannot carry a per-channel scale through: per tensor.
# 3D convolutions are left out (TF's per-channel fake-quant stops at rank 4).
_PER_CHANNEL_CONVOLUTIONS = (keras.layers.Conv2D,)
_PER_TENSOR_KERNELS = (
    keras.layers.Dense,
    keras.layers.Conv1D,
    keras.layers.DepthwiseConv1D,
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
)
_DEPTHWISE = (keras.layers.DepthwiseConv2D,)

# Weightless layers whose output TFLite stores as a new int8 tensor (its own range).
_OUTPUT_LAYERS = (
    keras.layers.Add, keras.layers.Subtract, keras.layers.Multiply, keras.layers.Average,
    keras.layers.Maximum, keras.layers.Minimum, keras.layers.Concatenate,
    keras.layers.AveragePooling1D, keras.layers.AveragePooling2D, keras.layers.AveragePooling3D,
    keras.layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalAveragePooling3D, keras.layers.Activation, keras.layers.ReLU,
    keras.layers.LeakyReLU, keras.layers.ELU, keras.layers.Softmax, keras.layers.Rescaling,
    keras.layers.UpSampling2D,
)

# Layers that move or drop values without changing their range: their output
# shares the int8 parameters of their input, so no fake-quant of their own.
PASS_THROUGH = (
    keras.layers.Reshape, keras.layers.Flatten, keras.layers.Dropout,
    keras.layers.SpatialDropout1D, keras.layers.SpatialDropout2D, keras.layers.SpatialDropout3D,
    keras.layers.GaussianNoise, keras.layers.GaussianDropout, keras.layers.AlphaDropout,
    keras.layers.ActivityRegularization, keras.layers.MaxPooling1D, keras.layers.MaxPooling2D,
    keras.layers.MaxPooling3D, keras.layers.GlobalMaxPooling1D, keras.layers.GlobalMaxPooling2D,
    keras.layers.GlobalMaxPooling3D, keras.layers.ZeroPadding1D, keras.layers.ZeroPadding2D,
    keras.layers.ZeroPadding3D, keras.layers.Cropping1D, keras.layers.Cropping2D,
    keras.layers.Cropping3D, keras.layers.Permute, keras.layers.Identity, keras.layers.InputLayer,
)


def kernel_kind(layer):
    """'per_channel', 'per_tensor', 'depthwise' or None: how `layer`'s kernel is stored."""
    if isinstance(layer, _DEPTHWISE):
        return "depthwise"
    if isinstance(layer, _PER_TENSOR_KERNELS):
        return "per_tensor"
    if isinstance(layer, _PER_CHANNEL_CONVOLUTIONS):
        return "per_channel"
    return None


def supported(layer):
    """True when the default scheme knows how TFLite stores `layer` in int8."""
    if isinstance(layer, PASS_THROUGH) or kernel_kind(layer) is not None:
        return True
    if isinstance(layer, keras.layers.BatchNormalization):
        return True
    return isinstance(layer, _OUTPUT_LAYERS) and not layer.weights


def is_convolution(layer):
    """A convolution whose BatchNormalization the converter folds into it."""
    return isinstance(layer, _PER_CHANNEL_CONVOLUTIONS + _DEPTHWISE + (
        keras.layers.Conv1D, keras.layers.DepthwiseConv1D))


def linear_activation(layer):
    activation = getattr(layer, "activation", None)
    return activation is None or getattr(activation, "__name__", "") == "linear"


def is_fusable_relu(layer):
    """A ReLU/ReLU6 that TFLite fuses into the op before it (no int8 tensor between)."""
    if isinstance(layer, keras.layers.ReLU):
        plain = float(layer.negative_slope) == 0.0 and float(layer.threshold) == 0.0
        return plain and layer.max_value in (None, 6.0)
    if isinstance(layer, keras.layers.Activation):
        return getattr(layer.activation, "__name__", "") in ("relu", "relu6")
    return False


@_SERIALIZABLE
class Default8BitQuantizeConfig(QuantizeConfig):
    """The default scheme for one built-in layer: its kernel, and its output unless
    TFLite fuses the output into the next op (conv -> BatchNorm -> ReLU).

    Args:
      weight_attributes: names of the layer's weights to quantize (e.g. ["kernel"]).
      kernel: "per_channel", "per_tensor" or "depthwise" (how they are stored).
      quantize_output: fake-quantize the layer's output.
    """

    def __init__(self, weight_attributes=(), kernel="per_tensor", quantize_output=True):
        if kernel not in ("per_channel", "per_tensor", "depthwise"):
            raise ValueError(
                "Argument `kernel` must be 'per_channel', 'per_tensor' or 'depthwise'. "
                f"Received: kernel={kernel!r}."
            )
        self.weight_attributes = list(weight_attributes)
        self.kernel = kernel
        self.quantize_output = bool(quantize_output)

    @classmethod
    def for_layer(cls, layer, quantize_output, per_channel=True):
        kind = kernel_kind(layer)
        if kind is not None and not per_channel:
            kind = "per_tensor"
        if kind is not None:
            return cls(["kernel"], kind, quantize_output)
        return cls([], "per_tensor", quantize_output)

    def get_weights_and_quantizers(self, layer):
        if self.kernel == "depthwise":
            quantizer = DepthwiseKernelQuantizer()
        else:
            quantizer = weight_quantizer(per_axis=self.kernel == "per_channel")
        return [(getattr(layer, name), quantizer) for name in self.weight_attributes]

    def get_output_quantizers(self, layer):
        return [activation_quantizer()] if self.quantize_output else []

    def get_config(self):
        return {
            "weight_attributes": list(self.weight_attributes),
            "kernel": self.kernel,
            "quantize_output": self.quantize_output,
        }
