"""`evaluate` and `benchmark`: accuracy and latency of a .tflite file in LiteRT."""

import dataclasses
import time

import numpy as np

from keras_prune._validation import check_int
from keras_prune.tflite import _runtime
from keras_prune.tflite.inspection import read_file


def _check_data(x, y):
    x = np.asarray(x)
    if x.ndim < 2 or not np.issubdtype(x.dtype, np.number):
        raise ValueError(
            f"Argument `x` must be a numeric array of samples (N, ...). Received shape "
            f"{x.shape}, dtype {x.dtype}."
        )
    if y is not None:
        y = np.asarray(y)
        if len(y) != len(x):
            raise ValueError(
                f"Arguments `x` and `y` must hold the same number of samples. Received "
                f"{len(x)} and {len(y)}."
            )
    return x, y


def class_labels(y):
    """Class indices from integer labels or one-hot rows (`y` of `evaluate`).

    Raises a ValueError for anything else, e.g. regression targets such as 0.37,
    which would otherwise be truncated to classes and give a meaningless accuracy.
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[-1] > 1:
        return np.argmax(y, axis=-1)
    if not np.issubdtype(y.dtype, np.number) or not np.all(np.mod(y, 1) == 0) or y.min() < 0:
        example = y.reshape(-1)[:3].tolist() if y.size else []
        raise ValueError(
            f"Argument `y` must hold class labels (whole numbers 0, 1, ...) or one-hot "
            f"rows; it holds {y.dtype} values such as {example}. `evaluate` measures "
            "classification accuracy; for other outputs use keras_prune.tflite.predict."
        )
    return y.reshape(-1).astype(int)


def evaluate(path, x, y=None, *, batch_size=64, default_delegates=True):
    """Accuracy and cross-entropy loss of a classifier .tflite file on `(x, y)`.

    Outputs are treated as logits when they do not already sum to 1.

    Example:

    ```python
    result = keras_prune.tflite.evaluate("model.tflite", x_test, y_test)
    print(result["accuracy"])
    ```

    Args:
        path: a .tflite path, or the file's bytes.
        x: inputs (float; quantized for int8 input tensors).
        y: integer labels or one-hot rows; None gives predictions only.
        batch_size: samples per interpreter call (default 64).
        default_delegates: run as an app would, with XNNPACK (default True).

    Returns:
        A dict: `accuracy`, `loss`, `samples` and `predictions` (float32 outputs,
        dequantized for int8 files).

    Raises:
        ValueError: for inputs of the wrong shape, labels that do not match, or
            labels that are not classes.
        InterpreterLoadError: when LiteRT cannot load or run the file.
    """
    content = read_file(path)
    x, y = _check_data(x, y)
    interpreter = _runtime.load_interpreter(content, default_delegates=default_delegates)
    detail = interpreter.get_input_details()[0]
    expected = tuple(int(d) for d in detail["shape"][1:])
    if tuple(x.shape[1:]) != expected:
        raise ValueError(
            f"Argument `x` has samples of shape {tuple(x.shape[1:])}; the model expects "
            f"{expected}."
        )
    outputs = _runtime.predict(interpreter, x.astype(np.float32), batch_size=batch_size)
    result = {"samples": len(x), "predictions": outputs}
    if y is None:
        return result
    labels = class_labels(y)
    if outputs.ndim != 2 or outputs.shape[-1] < 2:
        raise ValueError(
            f"`evaluate` computes accuracy for classifiers (outputs of shape (N, classes)); "
            f"this model outputs {outputs.shape}. Use `predictions` for other tasks."
        )
    sums = outputs.sum(axis=-1)
    if np.all(outputs >= 0) and np.allclose(sums, 1.0, atol=1e-2):
        probabilities = outputs
    else:
        shifted = outputs - outputs.max(axis=-1, keepdims=True)
        probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=-1, keepdims=True)
    picked = probabilities[np.arange(len(labels)), labels]
    result["accuracy"] = float(np.mean(np.argmax(outputs, -1) == labels))
    result["loss"] = float(np.mean(-np.log(np.clip(picked, 1e-7, 1.0))))
    return result


@dataclasses.dataclass
class Latency:
    """Single-sample latency of one .tflite file, in microseconds."""

    median_us: float
    p90_us: float
    runs: int
    num_threads: int
    default_delegates: bool

    def __str__(self):
        delegates = "on" if self.default_delegates else "off"
        return (
            f"median {self.median_us:,.0f} us, p90 {self.p90_us:,.0f} us "
            f"({self.runs} runs, {self.num_threads} thread(s), default delegates {delegates})"
        )


def _random_input(detail, rng):
    """One random sample: normal floats (quantized for int8 inputs); ids and masks of 0/1
    for integer and boolean inputs (token ids, padding masks), which index embeddings."""
    shape = [1, *[int(d) for d in detail["shape"][1:]]]
    dtype = np.dtype(detail["dtype"])
    scale = detail.get("quantization", (0.0, 0))[0]
    if dtype == np.bool_:
        return np.ones(shape, dtype=bool)
    if dtype.kind in "iu" and not scale:
        return rng.integers(0, 2, size=shape).astype(dtype)
    return _runtime.quantize(rng.standard_normal(shape).astype(np.float32), detail)


def benchmark(path, *, num_threads=1, runs=200, warmup=20, default_delegates=True, seed=0):
    """Times `invoke()` on random single-sample inputs.

    Example:

    ```python
    print(keras_prune.tflite.benchmark("model.tflite", num_threads=2))
    ```

    Args:
        path: a .tflite path, or the file's bytes.
        num_threads: interpreter threads (default 1).
        runs: timed invocations (default 200); warmup: untimed ones first (20).
        default_delegates: with XNNPACK, as an app runs (default True).
        seed: seed of the random inputs.

    Returns:
        A `Latency` (median and 90th percentile in microseconds).

    Raises:
        ValueError: for a non-positive `num_threads` or `runs`.
        InterpreterLoadError: when LiteRT cannot load the file.
    """
    content = read_file(path)
    check_int("num_threads", num_threads, minimum=1)
    check_int("runs", runs, minimum=1)
    interpreter = _warm_interpreter(content, num_threads, default_delegates, seed, warmup)
    times = _invoke_times(interpreter, runs)
    return Latency(
        median_us=float(np.median(times) * 1e6),
        p90_us=float(np.percentile(times, 90) * 1e6),
        runs=runs,
        num_threads=num_threads,
        default_delegates=default_delegates,
    )


def compare_latency(files, *, num_threads=1, rounds=7, runs=20, warmup=5, seed=0):
    """Median single-sample latency (microseconds) of each file, measured side by side.

    Every file gets its interpreter once; then each of `rounds` rounds times `runs`
    invocations of every file in turn, and each file's result is the median of its
    round medians. Alternating rounds keep slow drifts of a shared machine (another
    process, frequency changes) from favouring one file: compare files only within
    one call.

    Args:
        files: .tflite paths or file bytes.
        num_threads: interpreter threads; rounds, runs, warmup: see above.
        seed: seed of the random inputs.

    Returns:
        A list of median latencies in microseconds, one per file.
    """
    check_int("num_threads", num_threads, minimum=1)
    check_int("rounds", rounds, minimum=1)
    check_int("runs", runs, minimum=1)
    interpreters = [_warm_interpreter(read_file(item), num_threads, True, seed, warmup)
                    for item in files]
    medians = [[] for _ in interpreters]
    for _ in range(rounds):
        for index, interpreter in enumerate(interpreters):
            medians[index].append(float(np.median(_invoke_times(interpreter, runs))))
    return [float(np.median(m) * 1e6) for m in medians]


def _warm_interpreter(content, num_threads, default_delegates, seed, warmup):
    """An interpreter with random single-sample inputs set, invoked `warmup` times."""
    interpreter = _runtime.load_interpreter(
        content, num_threads=num_threads, default_delegates=default_delegates
    )
    rng = np.random.default_rng(seed)
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], _random_input(detail, rng))
    for _ in range(warmup):
        interpreter.invoke()
    return interpreter


def _invoke_times(interpreter, runs):
    """Seconds each of `runs` invocations took."""
    times = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times[i] = time.perf_counter() - start
    return times
