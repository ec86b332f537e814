"""`QuantizeWrapper`: runs a layer with fake-quantized weights, inputs and output.

The layer itself is unchanged: its float weights are what the optimizer trains
(tfmot's scheme). On every call the wrapper substitutes the quantized values for
the weights its `QuantizeConfig` names (through a Keras 3 StatelessScope, as the
pruning wrapper substitutes masked weights), so the same code trains on every
backend and traces into TensorFlow FakeQuant ops for the TFLite converter.
"""

import keras
from keras import ops

from keras_prune._models.calls import adopt_call_signature
from keras_prune.quantization.configs import QuantizeConfig, kernel_kind
from keras_prune.quantization.quantizers import (
    FIXED_OUTPUT_RANGES,
    FixedQuantizer,
    MovingAverageQuantizer,
    activation_quantizer,
)


def _output_shape(layer, input_shape):
    try:
        return layer.compute_output_shape(input_shape)
    except Exception:  # noqa: BLE001 (custom layers may not implement it)
        return None


class _ConfiguredWrapper(keras.layers.Wrapper):
    """What both quantization wrappers share: a layer and its `QuantizeConfig` (or
    None), the layer's call signature, building it, and (de)serializing both."""

    def __init__(self, layer, quantize_config, **kwargs):
        super().__init__(layer, **kwargs)
        self.quantize_config = quantize_config
        self.supports_masking = layer.supports_masking
        adopt_call_signature(self, layer)

    def _build_layer(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)

    def _forward_training(self, kwargs, training):
        if self._inner_takes_training:
            kwargs["training"] = training
        return kwargs

    def get_config(self):
        config = super().get_config()
        config["quantize_config"] = (
            None if self.quantize_config is None
            else keras.saving.serialize_keras_object(self.quantize_config))
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        layer = keras.saving.deserialize_keras_object(config.pop("layer"),
                                                      custom_objects=custom_objects)
        quantize_config = config.pop("quantize_config", None)
        if quantize_config is not None:
            quantize_config = keras.saving.deserialize_keras_object(
                quantize_config, custom_objects=custom_objects)
        return cls(layer, quantize_config, **config)


@keras.saving.register_keras_serializable(package="keras_prune")
class QuantizeWrapper(_ConfiguredWrapper):
    """Fake-quantizes a layer as int8 TFLite runs it (tfmot's `QuantizeWrapper`).

    Usually made by `quantize_model` / `quantize_apply`, which decide from the
    graph which outputs need their own range.

    Args:
      layer: the Keras layer to quantize.
      quantize_config: a `QuantizeConfig` (which weights and outputs, with which
        quantizers).
      num_input_quantizers: how many of the layer's inputs to fake-quantize
        (model inputs, and tensors coming from layers left in float).
      preserve_sparsity: keep weights that are zero when the wrapper is built
        exactly zero through training (a constant mask applied before quantizing;
        see `set_masks_from_weights`).
      **kwargs: base layer arguments (e.g. `name`).
    """

    def __init__(self, layer, quantize_config, num_input_quantizers=0,
                 preserve_sparsity=True, **kwargs):
        if not isinstance(layer, keras.layers.Layer):
            raise TypeError(
                f"Argument `layer` must be a Keras 3 layer. Received: layer={layer!r}."
            )
        if not isinstance(quantize_config, QuantizeConfig):
            raise TypeError(
                "Argument `quantize_config` must be a keras_prune.quantization.QuantizeConfig. "
                f"Received: quantize_config={quantize_config!r}."
            )
        kwargs.setdefault("name", f"quant_{layer.name}")
        super().__init__(layer, quantize_config, **kwargs)
        self.num_input_quantizers = int(num_input_quantizers)
        self.preserve_sparsity = bool(preserve_sparsity)

    def build(self, input_shape=None):
        self._build_layer(input_shape)
        config = self.quantize_config
        pairs = list(config.get_weights_and_quantizers(self.layer))
        object.__setattr__(self, "_weight_pairs", pairs)  # not tracked: the layer owns them
        self._weight_quantizer_vars = []
        self.masks = []
        for weight, quantizer in pairs:
            short = weight.path.split("/")[-1]
            self._weight_quantizer_vars.append(quantizer.build(weight.shape, short, self))
            if self.preserve_sparsity:
                self.masks.append(self.add_weight(
                    name=f"{short}_mask", shape=weight.shape, dtype="bool",
                    initializer="ones", trainable=False,
                ))
        outputs = list(config.get_output_quantizers(self.layer))
        activations = list(config.get_activations_and_quantizers(self.layer))
        if not outputs and activations:  # a tfmot config quantizing layer.activation
            outputs = [activations[0][1]]
        fixed = FIXED_OUTPUT_RANGES.get(_activation_name(self.layer))
        if outputs and fixed and isinstance(outputs[0], MovingAverageQuantizer):
            outputs = [FixedQuantizer(outputs[0].num_bits, *fixed)]
        output_shape = _output_shape(self.layer, input_shape)
        self._output_quantizers = [
            (quantizer, quantizer.build(output_shape, f"output_{i}", self))
            for i, quantizer in enumerate(outputs[:1])
        ]
        # TFLite fuses only ReLU-like activations into FULLY_CONNECTED and CONV_2D; any
        # other (softmax, sigmoid, tanh, ...) is an op of its own, whose int8 input needs
        # a range of its own too, or the converter leaves the layer in float.
        self._pre_activation = None
        if self._output_quantizers and _separate_activation(self.layer):
            quantizer = activation_quantizer()
            self._pre_activation = (quantizer, quantizer.build(output_shape, "pre_activation",
                                                               self))
        self._input_quantizers = []
        for i in range(self.num_input_quantizers):
            quantizer = activation_quantizer()
            self._input_quantizers.append((quantizer, quantizer.build((), f"input_{i}", self)))
        self.built = True

    def set_masks_from_weights(self):
        """Sets each mask to `weight != 0` (the zeros then stay zero through training)."""
        for (weight, _), mask in zip(self._weight_pairs, self.masks):
            mask.assign(ops.not_equal(weight, 0))

    def quantized_weights(self):
        """{weight path: the values an int8 file stores (dequantized)}."""
        return {weight.path: value for weight, value in
                zip([w for w, _ in self._weight_pairs], self._quantized_values(False))}

    def _quantized_values(self, training):
        values = []
        for index, ((weight, quantizer), variables) in enumerate(
                zip(self._weight_pairs, self._weight_quantizer_vars)):
            value = ops.copy(weight.value)  # a tensor (a TF variable has no .ndim)
            if self.preserve_sparsity and training:
                # The mask zeroes the gradient of the weights that were zero, so they stay
                # exactly zero (standard optimizers move nothing whose gradient was always
                # zero). Inference, and so the graph the converter folds, reads the weight
                # itself: the converter does not fold a product with a large kernel.
                value = value * ops.cast(self.masks[index].value, value.dtype)
            values.append(quantizer(value, training, variables))
        return values

    def _quantize_inputs(self, args, training):
        if not self._input_quantizers:
            return args
        first, rest = args[0], args[1:]
        tensors = first if isinstance(first, (list, tuple)) else [first]
        quantized = []
        for index, tensor in enumerate(tensors):
            if index < len(self._input_quantizers) and _is_float(tensor):
                quantizer, variables = self._input_quantizers[index]
                tensor = quantizer(tensor, training, variables)
            quantized.append(tensor)
        first = type(first)(quantized) if isinstance(first, (list, tuple)) else quantized[0]
        return (first,) + tuple(rest)

    def call(self, *args, training=None, **kwargs):
        training = bool(training)
        args = self._quantize_inputs(args, training)
        kwargs = self._forward_training(kwargs, training)
        if self._pre_activation is None:
            outputs = self._call_layer(args, kwargs, training)
        else:
            activation = self.layer.activation
            self.layer.activation = keras.activations.linear
            try:
                outputs = self._call_layer(args, kwargs, training)
            finally:
                self.layer.activation = activation
            quantizer, variables = self._pre_activation
            outputs = activation(quantizer(outputs, training, variables))
        for quantizer, variables in self._output_quantizers:
            outputs = quantizer(outputs, training, variables)
        return outputs

    def _call_layer(self, args, kwargs, training):
        if self._weight_pairs:
            substitutes = dict(zip([id(w) for w, _ in self._weight_pairs],
                                   self._quantized_values(training)))
            mapping = [(v, substitutes.get(id(v), v.value)) for v in self.layer.variables]
            with keras.StatelessScope(state_mapping=mapping) as scope:
                before = [scope.get_current_value(v) for v, _ in mapping]
                outputs = self.layer(*args, **kwargs)
            for (variable, _), old in zip(mapping, before):  # e.g. BatchNorm statistics
                new = scope.get_current_value(variable)
                if new is not old:
                    variable.assign(new)
        else:
            outputs = self.layer(*args, **kwargs)
        return outputs

    def compute_mask(self, inputs, mask=None):
        return self.layer.compute_mask(inputs, mask)

    def get_config(self):
        return {**super().get_config(), "num_input_quantizers": self.num_input_quantizers,
                "preserve_sparsity": self.preserve_sparsity}


def _activation_name(layer):
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    return getattr(getattr(layer, "activation", None), "__name__", "linear")


def _separate_activation(layer):
    """True for a kernel layer whose activation TFLite runs as an op of its own."""
    return kernel_kind(layer) is not None and _activation_name(layer) not in (
        "linear", "relu", "relu6")


def _is_float(tensor):
    dtype = getattr(tensor, "dtype", None)
    return dtype is not None and "float" in keras.backend.standardize_dtype(dtype)


@keras.saving.register_keras_serializable(package="keras_prune")
class QuantizeAnnotate(_ConfiguredWrapper):
    """Marks a layer for `quantize_apply` (tfmot's annotation); runs it unchanged.

    Args:
      layer: the layer to quantize.
      quantize_config: None for the default scheme, or a `QuantizeConfig` (needed for
        layers the default scheme does not know).
    """

    def __init__(self, layer, quantize_config=None, **kwargs):
        if quantize_config is not None and not isinstance(quantize_config, QuantizeConfig):
            raise TypeError(
                "Argument `quantize_config` must be None or a QuantizeConfig. "
                f"Received: quantize_config={quantize_config!r}."
            )
        kwargs.setdefault("name", f"quant_annotate_{layer.name}")
        super().__init__(layer, quantize_config, **kwargs)

    def build(self, input_shape=None):
        self._build_layer(input_shape)
        self.built = True

    def call(self, *args, training=None, **kwargs):
        return self.layer(*args, **self._forward_training(kwargs, training))


@keras.saving.register_keras_serializable(package="keras_prune")
class FrozenBatchNormalization(keras.layers.DepthwiseConv2D):
    """A BatchNormalization with no convolution before it, frozen for int8: its
    inference-mode scale and shift as a 1x1 depthwise convolution (LiteRT runs it in
    int8 with a per-channel scale; a BatchNormalization there runs as float MUL and
    ADD). Takes BatchNormalization's call arguments."""

    def __init__(self, **kwargs):
        kwargs.setdefault("kernel_size", 1)
        kwargs.setdefault("use_bias", True)
        super().__init__(**kwargs)

    def call(self, inputs, training=None, mask=None):
        return super().call(inputs)
