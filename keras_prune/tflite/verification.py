"""Checking a converted file against the Keras model in the LiteRT interpreter."""

import warnings

import keras
import numpy as np

from keras_prune._models import input_structure
from keras_prune.tflite import _runtime
from keras_prune.tflite.results import Verification, VerificationError


def _snr_db(expected, got):
    """Signal-to-noise ratio of `got` against `expected`, in dB (inf when equal)."""
    noise = float(np.mean((got - expected) ** 2))
    signal = float(np.mean(expected**2))
    if noise == 0.0:
        return float("inf")
    return 10.0 * np.log10(max(signal, 1e-30) / noise)


def _decisive_agreement(expected, got, error):
    """Top-1 agreement over the samples whose Keras top-1 margin exceeds twice the
    quantization error (nearly tied logits, e.g. of an untrained model, may swap
    legitimately). None for outputs that are not class scores, or with no such sample."""
    if expected.ndim != 2 or expected.shape[-1] < 2:
        return None
    top2 = np.sort(expected, axis=-1)[:, -2:]
    decisive = (top2[:, 1] - top2[:, 0]) > 2.0 * error
    if not decisive.any():
        return None
    same = np.argmax(got, -1) == np.argmax(expected, -1)
    return float(np.mean(same[decisive]))


MIN_SNR_DB = 12.0  # int8 / dynamic-range files: output noise power <= 1/16 of the signal


def _paired(lite_outputs, keras_outputs):
    """The file's outputs in the Keras model's order.

    `_runtime.io_details` orders them by the `output_<i>` signature names Keras'
    converter writes; a model exported another way (dict outputs of a keras_hub
    feature-map backbone) keeps the interpreter's order, so outputs are matched by
    shape, then by size, each Keras output taking the first free file output."""
    if len(lite_outputs) != len(keras_outputs):
        return lite_outputs
    free = list(range(len(lite_outputs)))
    paired = []
    for expected in keras_outputs:
        same_shape = [i for i in free if lite_outputs[i].shape == expected.shape]
        same_size = [i for i in free if lite_outputs[i].size == expected.size]
        choice = (same_shape or same_size or free)[0]
        free.remove(choice)
        paired.append(lite_outputs[choice])
    return paired


def _tolerance(quantize, quantization_aware):
    if quantization_aware:
        return (f"mean |diff| <= {QAT_MEAN_STEPS} and max |diff| <= {QAT_MAX_STEPS} output "
                "quantization steps (quantization-aware model)")
    if quantize is None:
        return "max |diff| <= 1e-3 x max(1, |output|)"
    if quantize == "float16":
        return "max |diff| <= 2e-2 x max(1, |output|)"
    return (f"output SNR >= {MIN_SNR_DB:.0f} dB and top-1 agreement >= 90% where the top-1 "
            "margin exceeds twice the quantization error")


# A QAT file's outputs, in output quantization steps from the Keras QAT model. Most ops
# match the fake-quant simulation to the bit; some int8 kernels round differently
# (LEAKY_RELU, TRANSPOSE_CONV: up to 6 steps on a few % of the values, 0.3 on average),
# while a tensor quantized with a range the training never saw moves the outputs by a
# step or more on average.
QAT_MEAN_STEPS = 0.5
QAT_MAX_STEPS = 8


def verify_against_keras(content, model, samples, quantize, on_failure="raise",
                         output_steps=None):
    """Runs `samples` through the file (default delegates) and through `model`.

    Float files must match Keras to ~1e-3 (float16 to ~2e-2) of the output scale.
    Quantized files must keep an output signal-to-noise ratio of at least
    `MIN_SNR_DB` and, for class scores, the same top-1 class on every sample whose
    top-1 margin exceeds twice the quantization error (>= 90% of them). A
    quantization-aware model's file (`output_steps`: each output's int8 step, None
    where unknown) must match within `QAT_MEAN_STEPS` steps on average and
    `QAT_MAX_STEPS` at most, since Keras already computes what the int8 file computes.
    """
    try:
        interpreter = _runtime.load_interpreter(content)
    except _runtime.InterpreterLoadError as error:
        raise VerificationError(
            f"{error}\nNothing was written: this file would fail the same way in an app. "
            "int8 weights stored sparse (sparse=True) are the usual cause; use sparse='auto', "
            "or pass verify=False to keep the file for runtimes without XNNPACK."
        ) from None
    inputs = [np.concatenate([s[i] for s in samples]) for i in range(len(samples[0]))]
    names, _ = _runtime.io_details(interpreter)
    by_name = {t.name: array for t, array in zip(model.inputs, inputs)}
    lite = _runtime.predict(interpreter, by_name if set(names) == set(by_name) else inputs)
    feed = keras.tree.map_structure(lambda t: by_name[t.name], input_structure(model))
    reference = keras.tree.flatten(model.predict(feed, verbose=0))
    keras_outputs = [np.asarray(k, np.float32) for k in reference]
    lite_outputs = _paired(lite if isinstance(lite, list) else [lite], keras_outputs)
    max_diff, agreements, snrs, failures = 0.0, [], [], []
    steps = output_steps or [None] * len(keras_outputs)
    for got, expected, step in zip(lite_outputs, keras_outputs, steps):
        got = got.reshape(expected.shape)
        diff = float(np.max(np.abs(got - expected))) if expected.size else 0.0
        max_diff = max(max_diff, diff)
        scale = float(np.max(np.abs(expected))) if expected.size else 1.0
        if step is not None:
            steps_off = np.abs(got - expected) / step if expected.size else np.zeros(1)
            mean, worst = float(np.mean(steps_off)), float(np.max(steps_off))
            if mean > QAT_MEAN_STEPS + 1e-3 or worst > QAT_MAX_STEPS + 1e-3:
                failures.append(
                    f"outputs differ by {mean:.2f} output quantization steps on average (> "
                    f"{QAT_MEAN_STEPS}) or {worst:.1f} at most (> {QAT_MAX_STEPS}; step "
                    f"{step:.3g}): a tensor the Keras model does not fake-quantize was "
                    "quantized by the converter (see the model's quantization_report)"
                )
            continue
        if quantize in (None, "float16"):
            atol = (1e-3 if quantize is None else 2e-2) * max(1.0, scale)
            if diff > atol:
                failures.append(f"max |diff| {diff:.3g} > {atol:.3g}")
            continue
        snr = _snr_db(expected, got)
        snrs.append(snr)
        if snr < MIN_SNR_DB:
            failures.append(f"output SNR {snr:.1f} dB < {MIN_SNR_DB:.0f} dB")
        error = float(np.sqrt(np.mean((got - expected) ** 2)))
        agreement = _decisive_agreement(expected, got, error)
        if agreement is not None:
            agreements.append(agreement)
            if agreement < 0.9:
                failures.append(f"top-1 agreement {agreement:.1%} < 90% on decisive samples")
    tolerance = _tolerance(quantize, any(step is not None for step in steps))
    verification = Verification(
        runtime=_runtime.runtime_name(),
        default_delegates=True,
        samples=len(samples),
        max_abs_diff=max_diff,
        agreement=min(agreements) if agreements else None,
        tolerance=tolerance,
        passed=not failures,
        snr_db=min(snrs) if snrs else None,
    )
    if failures:
        message = (
            "The converted model does not match the Keras model in the LiteRT interpreter: "
            + "; ".join(failures)
            + ". "
            + (
                "Check that the calibration data looks like real inputs (same scaling), "
                "and that the model is trained: an untrained model's outputs are mostly noise "
                "that int8 cannot resolve. "
                if quantize == "int8" and not any(step is not None for step in steps)
                else ""
            )
            + "Pass verify='warn' to keep the file with a warning, or verify=False."
        )
        if on_failure == "warn":
            warnings.warn(message, stacklevel=3)
        else:
            raise VerificationError(message + " Nothing was written.")
    return verification
