"""Fake quantizers: what an int8 TFLite (LiteRT) file stores, simulated in float.

tfmot's quantizer interface (`build(shape, name, layer)` creates the quantizer's
variables on `layer`; `__call__(inputs, training, weights)` quantizes), written with
`keras.ops`, so it trains on every backend. On TensorFlow the rounding is TF's
FakeQuant op, which the TFLite converter reads as "this tensor is int8 with this
range": no representative dataset is needed to convert.
"""

import keras
from keras import ops

from keras_prune import _validation

_EPSILON = 1e-8  # an all-zero channel still gets a valid (tiny) scale

_SERIALIZABLE = keras.saving.register_keras_serializable(package="keras_prune")


class Quantizer:
    """Base class of fake quantizers (tfmot's `Quantizer`).

    Subclasses implement `build(tensor_shape, name, layer)`, returning a dict of the
    variables they create with `layer.add_weight`, and `__call__(inputs, training,
    weights)`, returning the fake-quantized `inputs`. `get_config()` must return the
    constructor's arguments.
    """

    def build(self, tensor_shape, name, layer):
        return {}

    def __call__(self, inputs, training, weights, **kwargs):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()


class _BitsQuantizer(Quantizer):
    def __init__(self, num_bits=8, per_axis=False, symmetric=True, narrow_range=True):
        self.num_bits = _validation.check_int("num_bits", num_bits, minimum=2)
        if self.num_bits > 16:
            raise ValueError(
                f"Argument `num_bits` must be in [2, 16]. Received: num_bits={num_bits}."
            )
        self.per_axis = bool(per_axis)
        self.symmetric = bool(symmetric)
        self.narrow_range = bool(narrow_range)

    def get_config(self):
        return {
            "num_bits": self.num_bits,
            "per_axis": self.per_axis,
            "symmetric": self.symmetric,
            "narrow_range": self.narrow_range,
        }

    def _fake_quant(self, inputs, low, high):
        axis = -1 if self.per_axis else None
        return keras.quantizers.fake_quant_with_min_max_vars(
            inputs, low, high, num_bits=self.num_bits, narrow_range=self.narrow_range, axis=axis
        )


@_SERIALIZABLE
class LastValueQuantizer(_BitsQuantizer):
    """Quantizes a weight with the range of its current values (tfmot's name).

    The range is taken from the tensor on every call, per tensor or (with
    `per_axis`) per slice of the last axis. `symmetric=True` uses [-max|w|, max|w|],
    so zero is exactly representable and pruned weights stay zero in the int8 file.
    Used for kernels: conv and depthwise per output channel, Dense per tensor.
    """

    def __call__(self, inputs, training, weights, **kwargs):
        axes = tuple(range(len(inputs.shape) - 1)) if self.per_axis else None
        if self.symmetric:
            high = ops.max(ops.abs(inputs), axis=axes)
            # An all-zero channel (pruned away) quantizes to zeros at any scale; a tiny
            # one would make TFLite's int32 bias scale (input x weight scale) overflow.
            high = ops.where(high > 0, high, ops.ones_like(high))
            low = -high
        else:
            low = ops.minimum(ops.min(inputs, axis=axes), 0.0)
            high = ops.maximum(ops.maximum(ops.max(inputs, axis=axes), 0.0), low + _EPSILON)
        low, high = ops.stop_gradient(low), ops.stop_gradient(high)
        return self._fake_quant(inputs, low, high)


@_SERIALIZABLE
class MovingAverageQuantizer(_BitsQuantizer):
    """Quantizes an activation with a range learned during training (tfmot's name).

    In training each batch's min and max (widened to include 0) update the stored
    range: a running mean over the first `1 / (1 - ema_decay)` batches, then an
    exponential moving average with `ema_decay` (tfmot starts from [-6, 6] and uses
    the moving average from the first batch, which takes thousands of steps to
    forget the start; the running mean converges from the first batch). At
    inference the stored range is used as it is, and it is the range the int8 file
    gets. Before any training step the range is tfmot's [-6, 6].

    Args:
      num_bits: bits per value (8 for int8).
      per_axis: one range per slice of the last axis (activations use False).
      symmetric: a range symmetric around 0 (activations use False).
      narrow_range: leave out the lowest level (activations use False).
      ema_decay: the moving average's decay per batch, in [0, 1).
    """

    def __init__(self, num_bits=8, per_axis=False, symmetric=False, narrow_range=False,
                 ema_decay=0.999):
        super().__init__(num_bits, per_axis, symmetric, narrow_range)
        self.ema_decay = _validation.check_fraction("ema_decay", ema_decay, hint="")

    def get_config(self):
        return {**super().get_config(), "ema_decay": self.ema_decay}

    def build(self, tensor_shape, name, layer):
        shape = (tensor_shape[-1],) if self.per_axis else ()

        def variable(suffix, value, dtype="float32"):
            return layer.add_weight(
                name=f"{name}_{suffix}", shape=shape if suffix != "batches" else (),
                dtype=dtype, initializer=keras.initializers.Constant(value), trainable=False,
                aggregation="only_first_replica" if suffix == "batches" else "mean",
            )

        return {"min": variable("min", -6.0), "max": variable("max", 6.0),
                "batches": variable("batches", 0.0)}

    def __call__(self, inputs, training, weights, **kwargs):
        low, high = weights["min"], weights["max"]
        if training:
            axes = tuple(range(len(inputs.shape) - 1)) if self.per_axis else None
            values = ops.cast(ops.stop_gradient(inputs), "float32")
            batch_low = ops.minimum(ops.min(values, axis=axes), 0.0)
            batch_high = ops.maximum(ops.max(values, axis=axes), 0.0)
            if self.symmetric:
                batch_high = ops.maximum(batch_high, -batch_low)
                batch_low = -batch_high
            seen = weights["batches"]
            rate = ops.maximum(1.0 - self.ema_decay, 1.0 / (seen + 1.0))
            low.assign(low + (batch_low - low) * rate)
            high.assign(high + (batch_high - high) * rate)
            seen.assign(seen + 1.0)
        low_value = ops.convert_to_tensor(low)
        high_value = ops.maximum(ops.convert_to_tensor(high), low_value + _EPSILON)
        return self._fake_quant(inputs, low_value, high_value)


@_SERIALIZABLE
class FixedQuantizer(_BitsQuantizer):
    """Quantizes to a fixed range [init_min, init_max] that training never moves
    (tfmot's name). For outputs whose int8 range TFLite fixes itself: softmax and
    sigmoid write [0, 255/256], tanh [-1, 127/128].

    Args:
      num_bits: bits per value (8 for int8).
      init_min, init_max: the range.
      narrow_range: leave out the lowest level.
    """

    def __init__(self, num_bits=8, init_min=-6.0, init_max=6.0, narrow_range=False):
        super().__init__(num_bits, False, False, narrow_range)
        if not init_min < init_max:
            raise ValueError("Arguments `init_min` < `init_max` are required. Received: "
                             f"init_min={init_min}, init_max={init_max}.")
        self.init_min, self.init_max = float(init_min), float(init_max)

    def get_config(self):
        config = super().get_config()
        config.pop("per_axis", None)
        config.pop("symmetric", None)
        return {**config, "init_min": self.init_min, "init_max": self.init_max}

    def build(self, tensor_shape, name, layer):
        def variable(suffix, value):
            return layer.add_weight(name=f"{name}_{suffix}", shape=(), dtype="float32",
                                    initializer=keras.initializers.Constant(value),
                                    trainable=False)

        return {"min": variable("min", self.init_min), "max": variable("max", self.init_max)}

    def __call__(self, inputs, training, weights, **kwargs):
        return self._fake_quant(inputs, ops.convert_to_tensor(weights["min"]),
                                ops.convert_to_tensor(weights["max"]))


# TFLite's int8 kernels of these activations write a fixed output scale and zero point.
FIXED_OUTPUT_RANGES = {"softmax": (0.0, 255 / 256), "sigmoid": (0.0, 255 / 256),
                       "tanh": (-1.0, 127 / 128)}


def weight_quantizer(per_axis):
    """tfmot's default 8-bit weight quantizer: symmetric, narrow range (-127..127)."""
    return LastValueQuantizer(num_bits=8, per_axis=per_axis, symmetric=True, narrow_range=True)


def activation_quantizer():
    """tfmot's default 8-bit activation quantizer: per tensor, asymmetric, 0..255."""
    return MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                  narrow_range=False)
