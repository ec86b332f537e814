"""Structured pruning: params, FLOPs and LiteRT latency; accuracy after fine-tuning.

Part 1: MobileNetV2 (alpha=1.0) and ResNet50, weights=None, 96x96 input, 1000
classes. For each, the dense model and `prune_structured` at ratio 0.3, 0.5 and 0.7
(L1, uniform per group; plus global ranking at 0.5) are converted to float .tflite
and timed in the LiteRT interpreter (default delegates, i.e. XNNPACK; 1 and 2
threads; single-sample inputs), all in this one run so the ratios compare like
with like on a noisy machine.

Part 2: the digits CNN, trained dense; then (a) `prune_and_finetune` at ratio 0.5
and (b) unstructured magnitude pruning of the same dense weights to the same number
of non-zero parameters, fine-tuned for the same epochs. Test accuracy of each.

    python benchmarks/structured.py [--quick]

Writes benchmarks/results/structured.md (and .json).
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_prune  # noqa: E402
from keras_prune import _io, demo, tflite  # noqa: E402
from keras_prune.structured import count_flops, prune_and_finetune, prune_structured  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


def _latency(model, folder, name, runs):
    path = os.path.join(folder, f"{name}.tflite")
    result = tflite.convert(model, path, sparse=False)
    one = tflite.benchmark(path, num_threads=1, runs=runs, warmup=max(runs // 10, 3))
    two = tflite.benchmark(path, num_threads=2, runs=runs, warmup=max(runs // 10, 3))
    return result.bytes, one.median_us, two.median_us, result.verification.passed


def part1(quick, folder):
    ratios = [0.5] if quick else [0.3, 0.5, 0.7]
    rows = []
    for name in ("MobileNetV2", "ResNet50"):
        model = getattr(keras.applications, name)(weights=None, input_shape=(96, 96, 3))
        runs = 20 if quick else (60 if name == "ResNet50" else 150)
        variants = [("dense", None, {})]
        variants += [(f"ratio {r}", r, {}) for r in ratios]
        variants += [("ratio 0.5, global", 0.5, {"global_ranking": True})]
        dense = None
        for label, ratio, options in variants:
            start = time.perf_counter()
            if ratio is None:
                pruned, params, flops = model, model.count_params(), count_flops(model)
            else:
                pruned, report = prune_structured(model, ratio=ratio, **options)
                params, flops = report.params_after, report.flops_after
            seconds = time.perf_counter() - start
            size, one, two, verified = _latency(pruned, folder, f"{name}_{len(rows)}", runs)
            row = {"model": name, "variant": label, "params": params, "flops": flops,
                   "tflite_bytes": size, "latency_1t_us": one, "latency_2t_us": two,
                   "verified": verified, "prune_seconds": seconds if ratio is not None else None}
            dense = dense if ratio is not None else row
            for key in ("params", "flops", "latency_1t_us", "latency_2t_us"):
                row[key + "_ratio"] = row[key] / dense[key]
            rows.append(row)
            print(f"{name:12s} {label:18s} params {row['params_ratio']:.3f}x  "
                  f"FLOPs {row['flops_ratio']:.3f}x  1t {one:9.0f} us ({row['latency_1t_us_ratio']:.3f}x)"
                  f"  2t {two:9.0f} us ({row['latency_2t_us_ratio']:.3f}x)", flush=True)
    return rows


def _accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0), -1) == y))


def part2(quick):
    keras.utils.set_random_seed(0)
    x_train, x_test, y_train, y_test = demo.load_digits_data()
    epochs, finetune = (3, 1) if quick else (20, 8)
    dense = demo.compile_classifier(demo.digits_cnn(), 1e-3)
    dense.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    rows = [{"variant": "dense", "params": dense.count_params(), "nonzero": dense.count_params(),
             "accuracy": _accuracy(dense, x_test, y_test)}]
    for ratio in ([0.5] if quick else [0.5, 0.7]):
        oneshot, report = prune_structured(dense, ratio=ratio)
        oneshot_accuracy = _accuracy(oneshot, x_test, y_test)
        keras.utils.set_random_seed(1)
        structured, report, _ = prune_and_finetune(dense, x_train, y_train, ratio=ratio,
                                                   epochs=finetune)
        rows.append({"variant": f"structured {ratio} (one-shot, no fine-tune)",
                     "params": report.params_after, "nonzero": report.params_after,
                     "accuracy": oneshot_accuracy})
        rows.append({"variant": f"structured {ratio} + fine-tune {finetune} epochs",
                     "params": report.params_after, "nonzero": report.params_after,
                     "accuracy": _accuracy(structured, x_test, y_test)})
        # Unstructured: same dense weights, same number of non-zero weights, same epochs.
        sparsity = 1 - report.params_after / dense.count_params()
        copy = keras.models.clone_model(dense)
        copy.set_weights(dense.get_weights())
        schedule = keras_prune.schedules.ConstantSparsity(sparsity, begin_step=0, frequency=10)
        wrapped = demo.compile_classifier(keras_prune.prune_low_magnitude(copy, pruning_schedule=schedule),
                                1e-3)
        keras.utils.set_random_seed(1)
        wrapped.fit(x_train, y_train, epochs=finetune, batch_size=32, verbose=0,
                    callbacks=[keras_prune.callbacks.PruneCallback()])
        stripped = keras_prune.strip_pruning(wrapped)
        nonzero = sum(int(np.count_nonzero(w)) for w in stripped.get_weights())
        rows.append({"variant": f"unstructured {sparsity:.1%} + fine-tune {finetune} epochs",
                     "params": stripped.count_params(), "nonzero": nonzero,
                     "accuracy": _accuracy(stripped, x_test, y_test)})
    for row in rows:
        row["accuracy_vs_dense_points"] = 100 * (row["accuracy"] - rows[0]["accuracy"])
        print(f"digits {row['variant']:45s} params {row['params']:7d} nonzero {row['nonzero']:7d} "
              f"acc {row['accuracy']:.4f}", flush=True)
    return rows


def write_results(rows1, rows2, quick):
    os.makedirs(RESULTS, exist_ok=True)
    data = {"quick": quick, "keras": keras.__version__, "backend": keras.backend.backend(),
            "cpu_count": os.cpu_count(), "part1": rows1, "part2": rows2}
    _io.write_json(data, os.path.join(RESULTS, "structured.json"))
    lines = [
        "# Structured pruning benchmark",
        "",
        f"`python benchmarks/structured.py{' --quick' if quick else ''}` (Keras {keras.__version__}, "
        f"{os.cpu_count()} CPU cores). Ratios are against the dense row measured in the same run.",
        "Latency: LiteRT interpreter, default delegates (XNNPACK), one sample, median.",
        "",
        "## MobileNetV2 and ResNet50 (weights=None, 96x96, 1000 classes), L1 importance",
        "",
        "| model | variant | params | FLOPs | .tflite MB | 1 thread | 2 threads |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows1:
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['params']:,} ({r['params_ratio']:.3f}x) | "
            f"{r['flops'] / 1e6:.0f}M ({r['flops_ratio']:.3f}x) | {r['tflite_bytes'] / 1e6:.1f} | "
            f"{r['latency_1t_us'] / 1e3:.2f} ms ({r['latency_1t_us_ratio']:.3f}x) | "
            f"{r['latency_2t_us'] / 1e3:.2f} ms ({r['latency_2t_us_ratio']:.3f}x) |"
        )
    lines += [
        "",
        "## Digits CNN: structured one-shot + fine-tune vs unstructured at the same non-zeros",
        "",
        "| variant | params | non-zero | test accuracy | vs dense |",
        "|---|---|---|---|---|",
    ]
    for r in rows2:
        lines.append(f"| {r['variant']} | {r['params']:,} | {r['nonzero']:,} | "
                     f"{r['accuracy']:.4f} | {r['accuracy_vs_dense_points']:+.2f} pt |")
    with _io.atomic_path(os.path.join(RESULTS, "structured.md")) as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one ratio, few runs and epochs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        rows1 = part1(args.quick, folder)
    rows2 = part2(args.quick)
    write_results(rows1, rows2, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
