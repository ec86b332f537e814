"""One-shot pruning without retraining: SparseGPT vs Wanda vs magnitude, side by side.

Part 1: scikit-learn's digits (1437 train / 360 test). An MLP 64-256-256-10 and the
demo's CNN, trained dense (30 epochs, Adam) for each of 3 seeds; then each method
prunes the same trained weights from the same 256 training samples
(`keras_prune.prune_one_shot`), with no retraining, at 50-90% sparsity, 2:4, and
LiteRT's 16x1 int8 and 4x1 float blocks at 50%. Test accuracy, mean over seeds.

Part 2: time to prune a 12.6M-parameter MLP (2048-2048-2048-2048-10, random
weights) one-shot with SparseGPT at 50% from 128 samples on this machine's CPU cores.

    python benchmarks/oneshot.py [--quick]

Writes benchmarks/results/oneshot.md (and .json).
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_prune  # noqa: E402
from keras_prune import _io, demo  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
METHODS = ("magnitude", "wanda", "sparsegpt")
PATTERNS = [(f"{s:.0%}", {"sparsity": s}) for s in (0.5, 0.6, 0.7, 0.8, 0.9)] + [
    ("2:4", {"sparsity_m_by_n": (2, 4)}),
    ("int8 blocks 16x1, 50%", {"sparsity": 0.5, "block_size": (16, 1)}),
    ("float blocks 4x1, 50%", {"sparsity": 0.5, "block_size": (4, 1)}),
]


def mlp():
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(256, activation="relu"),
                             keras.layers.Dense(256, activation="relu"),
                             keras.layers.Dense(10)])


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0, batch_size=256), -1) == y))


def part1(seeds, epochs):
    x_train, x_test, y_train, y_test = demo.load_digits_data()
    results = {}
    for name, build in (("MLP 64-256-256-10", mlp), ("digits CNN", demo.digits_cnn)):
        for seed in range(seeds):
            keras.utils.set_random_seed(seed)
            model = demo.compile_classifier(build(), 1e-3)
            model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
            calibration = x_train[np.random.default_rng(seed).permutation(len(x_train))[:256]]
            results.setdefault((name, "dense", "-"), []).append(accuracy(model, x_test, y_test))
            for label, options in PATTERNS:
                for method in METHODS:
                    pruned, _ = keras_prune.prune_one_shot(model, calibration, method=method,
                                                           verbose=0, **options)
                    results.setdefault((name, label, method), []).append(
                        accuracy(pruned, x_test, y_test))
            print(f"{name} seed {seed}: dense {results[(name, 'dense', '-')][-1]:.3f}; 80% "
                  + ", ".join(f"{m} {results[(name, '80%', m)][-1]:.3f}" for m in METHODS),
                  flush=True)
    return results


def part2(quick):
    widths = (2048, 2048, 2048, 2048, 10) if not quick else (784, 512, 512, 10)
    layers = [keras.Input((widths[0],))]
    layers += [keras.layers.Dense(w, activation="relu") for w in widths[1:-1]]
    layers += [keras.layers.Dense(widths[-1])]
    model = keras.Sequential(layers)
    x = np.random.default_rng(0).normal(size=(128, widths[0])).astype("float32")
    start = time.perf_counter()
    _, report = keras_prune.prune_one_shot(model, x, 0.5, verbose=0)
    seconds = time.perf_counter() - start
    print(f"SparseGPT one-shot of {model.count_params():,} params: {seconds:.1f} s", flush=True)
    return {"params": model.count_params(), "seconds": seconds, "sparsity": report.sparsity}


def write(results, timing, seeds, epochs, quick):
    rows = [{"model": m, "pattern": p, "method": k, "accuracies": v, "mean": float(np.mean(v))}
            for (m, p, k), v in results.items()]
    _io.write_json({"quick": quick, "seeds": seeds, "epochs": epochs, "rows": rows,
                    "timing": timing, "keras": keras.__version__},
                   os.path.join(RESULTS, "oneshot.json"))
    lines = [
        "# One-shot pruning (no retraining)",
        "",
        f"`python benchmarks/oneshot.py{' --quick' if quick else ''}`: digits, {seeds} seeds "
        f"(dense training {epochs} epochs each), 256 calibration samples from the training "
        "set, test accuracy (mean over seeds) straight after pruning, no fine-tuning.",
        "",
    ]
    for model in dict.fromkeys(m for m, _, _ in results):
        dense = np.mean(results[(model, "dense", "-")])
        lines += [f"## {model} (dense {dense:.3f})", "",
                  "| pattern | magnitude | Wanda | SparseGPT |", "|---|---|---|---|"]
        for label, _ in PATTERNS:
            cells = [f"{np.mean(results[(model, label, m)]):.3f}" for m in METHODS]
            lines.append(f"| {label} | {' | '.join(cells)} |")
        lines.append("")
    lines.append(f"SparseGPT one-shot of a {timing['params']:,}-parameter MLP (128 samples, "
                 f"{os.cpu_count()} cores): {timing['seconds']:.1f} s.")
    text = "\n".join(lines) + "\n"
    _io.write_text(text, os.path.join(RESULTS, "oneshot.md"))
    print(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--timing-only", action="store_true",
                        help="rerun part 2 only; part 1's results are read from the last run")
    args = parser.parse_args(argv)
    seeds, epochs = (1, 5) if args.quick else (3, 30)
    if args.timing_only:
        with open(os.path.join(RESULTS, "oneshot.json")) as handle:
            saved = json.load(handle)
        results = {(r["model"], r["pattern"], r["method"]): r["accuracies"] for r in saved["rows"]}
        seeds, epochs, quick = saved["seeds"], saved["epochs"], saved["quick"]
    else:
        results, quick = part1(seeds, epochs), args.quick
    timing = part2(quick)
    write(results, timing, seeds, epochs, quick)


if __name__ == "__main__":
    sys.exit(main())
