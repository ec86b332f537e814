"""What a `prune_to_budget` candidate costs and how much it changed: the budget's meter
(params, FLOPs, or LiteRT latency beside the dense model) and the calibration losses."""

import keras
import numpy as np

from keras_prune._views.hub import is_hub_model, is_task
from keras_prune.structured.rebuild import count_flops


class Meter:
    """A candidate's cost in the budget's units; latency side by side with the dense model."""

    def __init__(self, kind, model, threads, device, input_shapes=None):
        self.kind, self.model, self.threads, self.device = kind, model, threads, device
        self.input_shapes = input_shapes
        self._dense_file = None
        self._dense_us = None

    def dense_cost(self):
        if self.kind != "latency":
            return float(self.cost(self.model))
        self._dense_file = self._file(self.model)
        self._dense_us = self._time([self._dense_file])[0]
        return self._dense_us

    def cost(self, candidate):
        if self.kind == "params":
            return float(candidate.count_params())
        if self.kind == "flops":
            value = count_flops(candidate)
            if value is None:
                raise ValueError(
                    f"FLOPs of {self.model.name} cannot be counted (an input dimension is not "
                    "fixed). Build the model with fixed input shapes, or pass params= or latency=.")
            return float(value)
        dense, this = self._time([self._dense_file, self._file(candidate)])
        return this / dense * self._dense_us  # the ratio of one paired run, in dense units

    def measurable(self, model):
        """What `savings` needs of a model: its LiteRT file for latency, else its cost."""
        return self._file(model) if self.kind == "latency" else self.cost(model)

    def savings(self, measurables):
        """The cost each model saves against the dense one; latencies of every model
        beside the dense one in one run, so that the savings compare."""
        if self.kind != "latency":
            dense = self.cost(self.model)
            return [dense - cost for cost in measurables]
        if self._dense_file is None:
            self._dense_file = self._file(self.model)
        dense, *times = self._time([self._dense_file, *measurables])
        return [(dense - time) / dense * (self._dense_us or dense) for time in times]

    def _time(self, files):
        if self.device is not None:
            values = list(self.device(files))
            if len(values) != len(files) or not all(v > 0 for v in values):
                raise ValueError(f"Argument `device` must return one positive latency (us) per "
                                 f"file ({len(files)}). Received: {values!r}.")
            return [float(v) for v in values]
        from keras_prune.tflite.evaluation import compare_latency

        return compare_latency(files, num_threads=self.threads)

    def _file(self, model):
        from keras_prune.tflite.converter import convert
        from keras_prune.tflite.results import ConversionError

        try:
            return convert(model, None, verify=False, sparse=False, verbose=0,
                           input_shapes=self.input_shapes).content
        except (ConversionError, ValueError, NotImplementedError) as error:
            hint = (" A keras_hub text model needs fixed shapes: pass input_shapes= "
                    "(e.g. {'token_ids': (128,), 'padding_mask': (128,)})."
                    if is_hub_model(model) and self.input_shapes is None else "")
            raise ValueError(
                f"A latency budget measures the model in LiteRT, and {model.name} does not "
                f"convert: {str(error).rstrip('.')}.{hint} Or pass params= or flops= instead, "
                "which need no conversion."
            ) from None


def outputs_on(model, found):
    outputs = [keras.tree.flatten(model(batch, training=False)) for batch in found.batches(64)]
    return [np.concatenate([np.asarray(keras.ops.convert_to_numpy(o[i]), np.float64)
                            for o in outputs]) for i in range(len(outputs[0]))]


def is_causal_lm(model):
    """A keras_hub CausalLM: its calibration loss is the next token's cross-entropy."""
    return is_task(model) and type(model).__name__.endswith("CausalLM")


def next_token_loss(model, found):
    """Mean cross-entropy of each next token of the calibration `token_ids` (padding
    left out): Minitron's calibration loss, which needs no labels."""
    total, count = 0.0, 0
    for batch in found.batches(64):
        logits = np.asarray(keras.ops.convert_to_numpy(model(batch, training=False)),
                            np.float64)[:, :-1]
        tokens = np.asarray(batch["token_ids"])[:, 1:]
        mask = np.asarray(batch.get("padding_mask", np.ones_like(batch["token_ids"])))[:, 1:]
        logits = logits - logits.max(axis=-1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        picked = np.take_along_axis(log_probs, tokens[..., None], axis=-1)[..., 0]
        total -= float((picked * mask).sum())
        count += int(mask.sum())
    return total / max(count, 1)


def output_change(reference, outputs):
    """Relative squared change of the outputs: ||f - g||^2 / ||f||^2, summed over outputs;
    None where a shape changed (a backbone whose features narrowed)."""
    if [a.shape for a in reference] != [b.shape for b in outputs]:
        return None
    num = sum(float(np.sum((a - b) ** 2)) for a, b in zip(reference, outputs))
    den = sum(float(np.sum(a ** 2)) for a in reference)
    return num / max(den, 1e-12)
