"""`quantize_model`, `quantize_annotate_*`, `quantize_apply`: a model -> its QAT twin.

`plan.make_plan` decides from the graph what each layer quantizes; the model is then
rebuilt with each planned layer wrapped in a `QuantizeWrapper`.
"""

import contextlib
import dataclasses

import keras
import numpy as np

from keras_prune import _models
from keras_prune._text import table
from keras_prune.layers.wrapper import collect_wrappers
from keras_prune.quantization import configs
from keras_prune.quantization.plan import make_plan
from keras_prune.quantization.wrapper import (
    FrozenBatchNormalization,
    QuantizeAnnotate,
    QuantizeWrapper,
)


@dataclasses.dataclass
class QuantizationReport:
    """What `quantize_apply` did.

    `quantized`: (layer, what is fake-quantized); `float_layers`: (layer, why it
    stays float: TFLite then runs it in float between dequantize and quantize ops,
    or the converter refuses it); `float_ops`: keras.ops operations in the graph
    (never quantized; the next quantized layer re-quantizes their output);
    `folded`: BatchNormalization layers with no convolution before them, turned
    into a frozen per-channel scale (a 1x1 DepthwiseConv2D) so that LiteRT runs
    them in int8.
    """

    quantized: list = dataclasses.field(default_factory=list)
    float_layers: list = dataclasses.field(default_factory=list)
    float_ops: list = dataclasses.field(default_factory=list)
    folded: list = dataclasses.field(default_factory=list)

    def __str__(self):
        lines = [f"Quantized {len(self.quantized)} layer(s)."]
        if self.quantized:
            lines += table(["layer", "fake-quantized"], self.quantized)
        if self.float_layers:
            lines.append("Left in float:")
            lines += table(["layer", "why"], self.float_layers)
        if self.float_ops:
            lines.append(f"keras.ops operations left in float: {', '.join(self.float_ops)}")
        if self.folded:
            lines.append("BatchNormalization with no convolution before it, frozen into a "
                         f"per-channel scale (1x1 DepthwiseConv2D) to run in int8: "
                         f"{', '.join(self.folded)}")
        return "\n".join(lines)


_SCHEMES = ("default_8bit", "default_8bit_prune_preserve")


class Default8BitQuantizeScheme:
    """tfmot's default scheme name: QAT without preserving sparsity."""

    preserve_sparsity = False


class Default8BitPrunePreserveQuantizeScheme:
    """tfmot's PQAT scheme name: QAT that keeps a pruned model's zeros."""

    preserve_sparsity = True


def quantize_annotate_layer(to_annotate, quantize_config=None):
    """Marks a layer to be quantized by `quantize_apply` (tfmot's function).

    Args:
      to_annotate: a Keras 3 layer (not a model).
      quantize_config: None for the default 8-bit scheme, or a `QuantizeConfig`
        for a layer the scheme does not know.

    Returns:
      A `QuantizeAnnotate` wrapper, used in place of the layer when building a model.
    """
    _models.check_keras3(to_annotate, "to_annotate")
    if isinstance(to_annotate, keras.Model) or not isinstance(to_annotate, keras.layers.Layer):
        raise TypeError(
            "Argument `to_annotate` must be a Keras layer (use quantize_annotate_model for "
            f"a model). Received: {type(to_annotate).__name__}."
        )
    if isinstance(to_annotate, QuantizeAnnotate):
        return to_annotate
    return QuantizeAnnotate(to_annotate, quantize_config)


def quantize_annotate_model(to_annotate):
    """Marks every layer of a Sequential or Functional model for `quantize_apply`.

    Layers already annotated keep their `QuantizeConfig`. Returns a new model.
    """
    model = _check_graph_model(to_annotate, "to_annotate")

    def transform(layer, copier):
        if isinstance(layer, (QuantizeAnnotate, keras.layers.InputLayer, keras.Model)):
            return None
        new = copier.copy(layer)
        return QuantizeAnnotate(new)

    new, _ = _models.rewrite_graph_model(model, transform)
    return new


def quantize_model(to_quantize, *, preserve_sparsity=True, per_channel=True, verbose=False):
    """A new model that trains with int8 fake quantization (QAT), for int8 LiteRT.

    Every layer TFLite runs in int8 is wrapped: kernels are fake-quantized as the
    file stores them (convolution and depthwise kernels per output channel, Dense
    per tensor; symmetric, -127..127), and every tensor TFLite stores in int8 (the
    input, the outputs of conv/BatchNorm/ReLU chains, adds, concatenations,
    pooling) gets a range learned during training (moving min/max). No fake-quant
    sits between a convolution, its BatchNormalization and its ReLU: the converter
    folds them into one op. Train the result with plain `fit`, then convert it with
    `keras_prune.tflite.convert(model, path, quantize="int8")`: no representative
    data is needed, the learned ranges are used.

    Example:

    ```python
    stripped = keras_prune.strip_pruning(pruned)
    qat = keras_prune.quantization.quantize_model(stripped)  # zeros are kept
    qat.compile(optimizer=keras.optimizers.Adam(1e-4), loss=..., metrics=[...])
    qat.fit(x, y, epochs=2)
    keras_prune.tflite.convert(qat, "model.tflite", quantize="int8")
    ```

    Args:
      to_quantize: a built Sequential or Functional Keras 3 model, without pruning
        wrappers (call `keras_prune.strip_pruning` first).
      preserve_sparsity: keep the zeros of the weights exactly zero through
        training (tfmot's PQAT; here also for depthwise kernels).
      per_channel: one scale per output channel for convolution and depthwise
        kernels (TFLite's default). False quantizes every kernel per tensor, for
        int8 targets that only take per-tensor weights; the converter keeps it.
      verbose: print the report.

    Returns:
      A new model, uncompiled, with `.quantization_report` (what was quantized and
      what stays float, with the reason). The input model is unchanged.

    Raises:
      TypeError: for a tf_keras model or a non-model.
      ValueError: for a subclassed or unbuilt model, or one with pruning wrappers.
    """
    _check_graph_model(to_quantize, "to_quantize")
    annotated = quantize_annotate_model(to_quantize)
    return quantize_apply(annotated, preserve_sparsity=preserve_sparsity,
                          per_channel=per_channel, verbose=verbose)


def quantize_apply(model, scheme=None, *, preserve_sparsity=None, per_channel=True,
                   verbose=False):
    """Quantizes the layers annotated in `model` (tfmot's function); returns a new model.

    Args:
      model: a Sequential or Functional model with `quantize_annotate_layer`
        annotations (or from `quantize_annotate_model`).
      scheme: None, "default_8bit", "default_8bit_prune_preserve", or tfmot's
        scheme names `Default8BitQuantizeScheme()` /
        `Default8BitPrunePreserveQuantizeScheme()` from this module.
      preserve_sparsity: overrides the scheme; None keeps the zeros unless the
        scheme is "default_8bit" (tfmot's plain QAT, which lets zeros move).
      per_channel: False quantizes convolution kernels per tensor (see
        `quantize_model`).
      verbose: print the report.
    """
    model = _check_graph_model(model, "model")
    preserve = _preserve_sparsity(scheme, preserve_sparsity)
    if not isinstance(per_channel, bool):
        raise TypeError(f"Argument `per_channel` must be True or False. Received: "
                        f"per_channel={per_channel!r}.")
    plan = make_plan(model, per_channel)
    report = QuantizationReport()
    report.float_ops = plan.float_ops
    report.float_layers = list(plan.float_layers)

    def transform(original, copier):
        if isinstance(original, (keras.layers.InputLayer, keras.Model)):
            return None
        layer = original.layer if isinstance(original, QuantizeAnnotate) else original
        entry = plan.layers.get(id(original))
        if entry is None:
            return copier.copy(layer)
        config, inputs = entry
        scale = (_batchnorm_as_scale(layer, original)
                 if id(original) in plan.standalone_batchnorms else None)
        if scale is not None:  # TFLite would run it as float MUL + ADD
            inner = scale
            config = configs.Default8BitQuantizeConfig.for_layer(
                inner, config.quantize_output, per_channel)
            report.folded.append(layer.name)
        else:
            inner = copier.copy(layer)
        if inner is layer:
            report.float_layers.append((original.name, "could not be copied"))
            return layer
        wrapper = QuantizeWrapper(inner, config, num_input_quantizers=inputs,
                                  preserve_sparsity=preserve, name=f"quant_{layer.name}")
        if inner.built:
            wrapper.build(None)
        report.quantized.append((layer.name, _describe(config, inner, inputs)))
        return wrapper

    def restart():  # a layer that failed to copy makes the rewrite start over
        report.quantized.clear()
        report.folded.clear()
        report.float_layers[:] = list(plan.float_layers)

    new, _ = _models.rewrite_graph_model(model, transform, restart)
    if not report.quantized:
        reasons = "; ".join(f"{name}: {why}" for name, why in report.float_layers[:4])
        raise ValueError(
            f"Nothing in `model` ({model.name}) can be quantized by the default int8 scheme"
            + (f" ({reasons})" if reasons else "") + ". Quantization-aware training needs "
            "at least one Dense, Conv, pooling, Add or activation layer; annotate custom "
            "layers with quantize_annotate_layer(layer, quantize_config=...)."
        )
    for wrapper in _models.flatten_layers(new):  # the copies hold their weights now
        if isinstance(wrapper, QuantizeWrapper) and preserve:
            wrapper.set_masks_from_weights()
    new.quantization_report = report
    if verbose:
        print(report)
    return new


def _batchnorm_as_scale(layer, op):
    """A BatchNormalization with no convolution before it, on images (channels last), as
    the per-channel scale and shift it computes in inference: a 1x1 DepthwiseConv2D
    (kernel gamma / sqrt(var + eps), bias beta - mean * kernel), which LiteRT runs in
    int8 with a per-channel scale. Its statistics are frozen from here on (QAT
    fine-tunes the scale and shift). None where it does not apply."""
    try:
        shape = tuple(op.input.shape)
    except (AttributeError, ValueError):
        return None
    axis = layer.axis if isinstance(layer.axis, int) else None
    if len(shape) != 4 or axis not in (-1, 3):
        return None
    variance = keras.ops.convert_to_numpy(layer.moving_variance)
    kernel = 1.0 / np.sqrt(variance + layer.epsilon)
    if layer.scale:
        kernel = kernel * keras.ops.convert_to_numpy(layer.gamma)
    bias = -keras.ops.convert_to_numpy(layer.moving_mean) * kernel
    if layer.center:
        bias = bias + keras.ops.convert_to_numpy(layer.beta)
    scale = FrozenBatchNormalization(name=layer.name, dtype=layer.dtype_policy)
    scale.build(shape)
    scale.set_weights([kernel.reshape(1, 1, -1, 1).astype("float32"),
                       bias.astype("float32")])
    return scale


def _describe(config, layer, inputs):
    parts = []
    if isinstance(config, configs.Default8BitQuantizeConfig):
        for name in config.weight_attributes:
            parts.append(f"{name} ({config.kernel.replace('_', ' ')})")
        if config.quantize_output:
            parts.append("output")
        elif config.weight_attributes or isinstance(layer, keras.layers.BatchNormalization):
            parts.append("output fused into the next op")
    else:
        parts.append(f"custom {type(config).__name__}")
    if inputs:
        parts.append("input" if inputs == 1 else f"{inputs} inputs")
    return ", ".join(parts) or "nothing (shares its input's range)"


def quantize_scope(*args):
    """tfmot's `quantize_scope`: a custom-object scope. keras_prune's classes are
    registered, so `.keras` files load without it; it is kept for ported code and
    adds any dicts of custom objects you pass."""
    objects = {}
    for arg in args:
        objects.update(arg)
    return keras.saving.custom_object_scope(objects) if objects else contextlib.nullcontext()


def _preserve_sparsity(scheme, preserve_sparsity):
    if preserve_sparsity is not None:
        if not isinstance(preserve_sparsity, bool):
            raise TypeError(
                "Argument `preserve_sparsity` must be True, False or None. "
                f"Received: preserve_sparsity={preserve_sparsity!r}."
            )
        return preserve_sparsity
    if scheme is None:
        return True
    if isinstance(scheme, str):
        if scheme not in _SCHEMES:
            raise ValueError(
                f"Argument `scheme` must be one of {list(_SCHEMES)} or a scheme object. "
                f"Received: scheme={scheme!r}."
            )
        return scheme == "default_8bit_prune_preserve"
    if isinstance(scheme, type):
        scheme = scheme()
    if not hasattr(scheme, "preserve_sparsity"):
        raise TypeError(
            "Argument `scheme` must be 'default_8bit', 'default_8bit_prune_preserve' or "
            "Default8BitQuantizeScheme() / Default8BitPrunePreserveQuantizeScheme(). "
            f"Received: scheme={scheme!r}."
        )
    return bool(scheme.preserve_sparsity)


def _check_graph_model(model, argument):
    _models.check_keras3(model, argument)
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"Argument `{argument}` must be a Keras 3 Sequential or Functional model. "
            f"Received: {argument}={model!r} of type {type(model).__name__}."
        )
    if not (_models.is_graph_model(model) or isinstance(model, keras.Sequential)):
        raise ValueError(
            f"Argument `{argument}` must be a Sequential or Functional model: quantization "
            f"follows the graph to place the int8 tensors. Model `{model.name}` is a subclassed "
            f"{type(model).__name__}. Rebuild it functionally (keras.Input -> layers -> "
            "keras.Model), or annotate its layers and use a Functional model."
        )
    _models.check_built(model, argument)
    wrapped = [layer.name for layer in collect_wrappers(model)]
    if wrapped:
        raise ValueError(
            f"Argument `{argument}` still has pruning wrappers ({', '.join(wrapped[:3])}"
            f"{'...' if len(wrapped) > 3 else ''}). Call keras_prune.strip_pruning(model) first: "
            "quantization keeps the zeros the pruning left (preserve_sparsity=True)."
        )
    quantized = [layer.name for layer in _models.flatten_layers(model)
                 if isinstance(layer, QuantizeWrapper)]
    if quantized:
        raise ValueError(
            f"Argument `{argument}` is already quantization-aware ({', '.join(quantized[:3])}"
            f"{'...' if len(quantized) > 3 else ''} are QuantizeWrappers). Train it with fit "
            "and convert it with keras_prune.tflite.convert(model, path, quantize='int8'); "
            "to start over, quantize the float model it came from."
        )
    return model


