"""Quantization-aware training that keeps the zeros (PQAT) vs post-training int8 (PTQ).

For each model, sparsity and seed (3 seeds):

1. train dense (Adam), then prune the Dense and 1x1 convolution kernels to the
   target sparsity with `PruneCallback` (PolynomialDecay over the pruning epochs;
   depthwise kernels and the 3x3 stem, 9 weights per channel, stay dense);
2. PTQ branch: keep fine-tuning the pruned model in float for `extra` epochs
   (masks fixed), strip, convert to int8 LiteRT calibrated on 200 training samples;
3. PQAT branch: strip, `quantization.quantize_model` (zeros kept), train the same
   `extra` epochs with the same optimizer, convert to int8 LiteRT from the learned
   ranges (no representative data).

Both branches get the same training budget from the same pruned weights. Accuracy
is measured on the test split: Keras float (PTQ branch), Keras QAT, and both int8
files in the LiteRT interpreter (default delegates). Also: the int8 files' kernel
sparsity against Keras, and the QAT training step time against the float step.

Models: a depthwise-separable CNN on scikit-learn's digits (1437/360) and an MLP
on MNIST-1D (4000/1000, `mnist1d.make_dataset`), plus narrow versions of both
(to look for a setting where PTQ loses >= 2 points).

    python benchmarks/qat.py [--quick]

Writes benchmarks/results/qat.md (and .json).
"""

import argparse
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_prune  # noqa: E402
from keras_prune import _io, demo, quantization  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
L = keras.layers


def digits():
    x_train, x_test, y_train, y_test = demo.load_digits_data(seed=0)
    return x_train, y_train, x_test, y_test


def mnist1d_data():
    import mnist1d

    d = mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())
    return (d["x"].astype("float32"), d["y"].astype("int32"),
            d["x_test"].astype("float32"), d["y_test"].astype("int32"))


def dscnn(width):
    """Depthwise-separable CNN: conv-BN-ReLU, then two depthwise/pointwise blocks."""
    inputs = keras.Input((8, 8, 1))
    h = L.ReLU()(L.BatchNormalization(momentum=0.9)(L.Conv2D(width, 3, padding="same", use_bias=False)(inputs)))
    for _ in range(2):
        h = L.ReLU()(L.BatchNormalization(momentum=0.9)(L.DepthwiseConv2D(3, padding="same", use_bias=False)(h)))
        h = L.ReLU()(L.BatchNormalization(momentum=0.9)(L.Conv2D(2 * width, 1, use_bias=False)(h)))
    h = L.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, L.Dense(10)(h))


def mlp(width):
    inputs = keras.Input((40,))
    h = L.Dense(width, activation="relu")(inputs)
    h = L.Dense(width, activation="relu")(h)
    return keras.Model(inputs, L.Dense(10)(h))


MODELS = {
    "DS-CNN digits (16/32 ch)": (digits, lambda: dscnn(16), 64),
    "MLP MNIST-1D (256-256)": (mnist1d_data, lambda: mlp(256), 128),
    "narrow DS-CNN digits (4/8 ch)": (digits, lambda: dscnn(4), 64),
    "narrow MLP MNIST-1D (32-32)": (mnist1d_data, lambda: mlp(32), 128),
}


def compiled(model, learning_rate):
    model.compile(keras.optimizers.Adam(learning_rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def keras_accuracy(model, x, y):
    return float(model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"])


def kernel_sparsity(model):
    """Zeros among the kernels that were pruned (Dense and 1x1 convolutions)."""
    zeros = total = 0
    for weight in model.weights:
        if weight.path.endswith("kernel") and weight.ndim in (2, 4) and (
                weight.ndim == 2 or tuple(weight.shape[:2]) == (1, 1)) and weight.shape[-2] > 1:
            values = keras.ops.convert_to_numpy(weight)
            zeros += int(np.sum(values == 0))
            total += values.size
    return zeros / total


def file_kernel_sparsity(content):
    info = keras_prune.tflite.inspect(content, check_loading=False)
    kernels = [t for t in info.tensors if len(t.shape) == 2
               or len(t.shape) == 4 and tuple(t.shape[1:3]) == (1, 1) and t.op == "CONV_2D"]
    sizes = np.array([np.prod(t.shape) for t in kernels], dtype=float)
    return float(np.sum([t.zero_fraction for t in kernels] * sizes) / np.sum(sizes))


def prunable(layer):
    """Dense and 1x1 convolutions: 9 weights per depthwise channel and a 3x3x1 stem
    do not survive 90% pruning (whole channels die), as in tfmot's guidance."""
    if type(layer).__name__ == "Conv2D":
        return tuple(layer.kernel_size) == (1, 1)
    return isinstance(layer, keras.layers.Dense)


def per_tensor_ptq(model, calibration):
    """int8 PTQ with one scale per kernel (TensorFlow's converter, its private switch for
    per-tensor weights): what an int8 target without per-channel weights gets."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([calibration[i : i + 1]]
                                                for i in range(len(calibration)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter._experimental_disable_per_channel = True
    return converter.convert()


def run_one(name, sparsity, seed, epochs, prune_epochs, extra_epochs, per_channel=True):
    load, build, batch = MODELS[name]
    x, y, x_test, y_test = load()
    keras.utils.set_random_seed(seed)
    dense = compiled(build(), 1e-3)
    dense.fit(x, y, batch_size=batch, epochs=epochs, verbose=0)
    steps = prune_epochs * int(np.ceil(len(x) / batch))
    schedule = keras_prune.schedules.PolynomialDecay(0.0, sparsity, 0, steps, frequency=max(1, steps // 10))
    pruned = compiled(keras_prune.prune_low_magnitude(dense, pruning_schedule=schedule,
                                                      filters=prunable), 1e-3)
    pruned.fit(x, y, batch_size=batch, epochs=prune_epochs, verbose=0,
               callbacks=[keras_prune.callbacks.PruneCallback()])
    stripped = keras_prune.strip_pruning(pruned)

    # PTQ branch: the same extra epochs in float, masks fixed (the schedule has ended).
    pruned.compile(keras.optimizers.Adam(1e-4), pruned.loss, metrics=["accuracy"])
    pruned.fit(x, y, batch_size=batch, epochs=extra_epochs, verbose=0,
               callbacks=[keras_prune.callbacks.PruneCallback()])
    float_model = compiled(keras_prune.strip_pruning(pruned), 1e-4)
    if per_channel:
        ptq = keras_prune.tflite.convert(float_model, None, quantize="int8",
                                         representative_data=x[:200], verify="warn",
                                         verbose=0).content
    else:
        ptq = per_tensor_ptq(float_model, x[:200])

    # PQAT branch: the stripped model, fake-quantized, zeros kept.
    qat = compiled(quantization.quantize_model(stripped, per_channel=per_channel), 1e-4)
    qat.fit(x, y, batch_size=batch, epochs=extra_epochs, verbose=0)
    pqat = keras_prune.tflite.convert(qat, None, quantize="int8", verify="warn",
                                      verify_data=x[:64], verbose=0)
    return {
        "model": name if per_channel else f"{name}, per-tensor weights",
        "sparsity": sparsity, "seed": seed,
        "float": keras_accuracy(float_model, x_test, y_test),
        "ptq_int8": keras_prune.tflite.evaluate(ptq, x_test, y_test)["accuracy"],
        "qat_keras": keras_accuracy(qat, x_test, y_test),
        "pqat_int8": keras_prune.tflite.evaluate(pqat.content, x_test, y_test)["accuracy"],
        "keras_sparsity": kernel_sparsity(qat),
        "file_sparsity": file_kernel_sparsity(pqat.content),
        "qat_file_passed": bool(pqat.verification.passed),
    }


def step_times(repeats=7):
    """Seconds per training epoch, float vs QAT, for the two main models (TF backend).

    The training set is repeated 8 times so that an epoch is long enough (hundreds of
    steps) for the per-epoch overhead of `fit` not to decide the ratio. Epochs
    alternate between the two models (and which goes first), `repeats` each. Epoch
    times on this machine are bimodal (the same model takes 1.3 s or 2.6 s), so both
    the fastest epoch (the cost of the computation) and the median are reported."""
    rows = []
    for name in ("DS-CNN digits (16/32 ch)", "MLP MNIST-1D (256-256)"):
        load, build, batch = MODELS[name]
        x, y, _, _ = load()
        x, y = np.concatenate([x] * 8), np.concatenate([y] * 8)
        keras.utils.set_random_seed(0)
        float_model = compiled(build(), 1e-3)
        qat = compiled(quantization.quantize_model(float_model), 1e-3)
        times = {"float": [], "qat": []}
        pairs = [(float_model, "float"), (qat, "qat")]
        for model, _ in pairs:
            model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # compile the step
        for repeat in range(repeats):
            for model, key in pairs if repeat % 2 == 0 else pairs[::-1]:
                start = time.perf_counter()
                model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
                times[key].append(time.perf_counter() - start)
        rows.append({
            "model": name, "steps": int(np.ceil(len(x) / batch)),
            "float_min_s": min(times["float"]), "qat_min_s": min(times["qat"]),
            "float_median_s": float(np.median(times["float"])),
            "qat_median_s": float(np.median(times["qat"])),
            "ratio_min": min(times["qat"]) / min(times["float"]),
            "ratio_median": float(np.median(times["qat"]) / np.median(times["float"])),
        })
    return rows


def write(rows, timing, settings, name="qat"):
    _io.write_json({"settings": settings, "rows": rows, "timing": timing},
                   os.path.join(RESULTS, f"{name}.json"))
    lines = [
        "# PQAT vs PTQ int8 (benchmarks/qat.py)", "",
        f"Settings: {settings}. Accuracy on the test split (%), mean over seeds, with the "
        "worst seed's PQAT - PTQ gap. `float`: the pruned model after the same extra "
        "epochs in float; `PTQ`: that model in int8 LiteRT (200 calibration samples); "
        "`QAT Keras`: the PQAT model in Keras; `PQAT`: its int8 LiteRT file.", "",
        "| model | sparsity | float | PTQ int8 | QAT Keras | PQAT int8 | PQAT-PTQ (min) | "
        "|LiteRT-Keras| (max) | kernel zeros Keras / int8 file |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    keys = sorted({(r["model"], r["sparsity"]) for r in rows},
                  key=lambda k: (list(MODELS).index(k[0].split(", per-tensor")[0]), k))
    for model, sparsity in keys:
        group = [r for r in rows if r["model"] == model and r["sparsity"] == sparsity]

        def mean(key, group=group):
            return 100 * np.mean([r[key] for r in group])

        gap = min(100 * (r["pqat_int8"] - r["ptq_int8"]) for r in group)
        match = max(100 * abs(r["pqat_int8"] - r["qat_keras"]) for r in group)
        zeros = (f"{min(r['keras_sparsity'] for r in group):.3f} / "
                 f"{min(r['file_sparsity'] for r in group):.3f}")
        lines.append(
            f"| {model} | {sparsity:.0%} | {mean('float'):.2f} | {mean('ptq_int8'):.2f} | "
            f"{mean('qat_keras'):.2f} | {mean('pqat_int8'):.2f} | {gap:+.2f} | {match:.2f} | "
            f"{zeros} |")
    if timing:
        lines += ["", "Training time, TF backend: 7 alternating epochs per model over the "
                  "training set repeated 8 times; fastest epoch and median (epoch times are "
                  "bimodal here):", "",
                  "| model | steps/epoch | float s (min / median) | QAT s (min / median) | "
                  "QAT / float (min / median) |", "|---|---|---|---|---|"]
    for row in timing:
        lines.append(
            f"| {row['model']} | {row['steps']} | {row['float_min_s']:.2f} / "
            f"{row['float_median_s']:.2f} | {row['qat_min_s']:.2f} / {row['qat_median_s']:.2f} "
            f"| {row['ratio_min']:.2f}x / {row['ratio_median']:.2f}x |")
    _io.write_text("\n".join(lines) + "\n", os.path.join(RESULTS, f"{name}.md"))
    print("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, few epochs (a smoke run)")
    parser.add_argument("--timing-only", action="store_true")
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--models", default="", help="only models whose name contains this")
    parser.add_argument("--sparsities", default="0.75,0.9")
    parser.add_argument("--name", default="qat", help="results file name (without .md)")
    parser.add_argument("--per-tensor", action="store_true",
                        help="one scale per kernel, in PTQ and QAT alike")
    args = parser.parse_args(argv)
    seeds = [0] if args.quick else [0, 1, 2]
    epochs, prune_epochs, extra = (3, 2, 1) if args.quick else (30, 10, 5)
    settings = {"seeds": seeds, "dense_epochs": epochs, "prune_epochs": prune_epochs,
                "extra_epochs": extra, "backend": keras.backend.backend()}
    timing = [] if args.no_timing else step_times(1 if args.quick else 7)
    rows = []
    if not args.timing_only:
        for name in [m for m in MODELS if args.models in m]:
            for sparsity in [float(v) for v in args.sparsities.split(",")]:
                for seed in seeds:
                    rows.append(run_one(name, sparsity, seed, epochs, prune_epochs, extra,
                                        per_channel=not args.per_tensor))
                    print(rows[-1], flush=True)
    write(rows, timing, settings, args.name)


if __name__ == "__main__":
    sys.exit(main())
