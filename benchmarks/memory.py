"""Memory of pruning: mask bytes, `.keras` file size and peak process memory in `fit`.

Each variant runs in its own process (peak RSS is per process), side by side in one run:

- dense: ResNet50 (weights=None) trained for a few steps;
- pruned: the same model wrapped by `prune_low_magnitude` (boolean masks), trained
  with `PruneCallback`.

Reported: variable bytes (weights, masks) and their ratio, the `.keras` file of the
wrapped model vs the dense one, and peak RSS during `fit` as a ratio to dense. Usage:

    python benchmarks/memory.py [--quick]   # --quick: 32x32 inputs, 2 steps
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


def worker(variant, size, steps):
    import keras
    import numpy as np

    import keras_prune

    keras.utils.set_random_seed(0)
    model = keras.applications.ResNet50(weights=None, input_shape=(size, size, 3), classes=10)
    callbacks = []
    out = {"variant": variant}
    if variant != "dense":
        schedule = keras_prune.schedules.ConstantSparsity(0.8, begin_step=0, frequency=1)
        model = keras_prune.prune_low_magnitude(model, pruning_schedule=schedule)
        callbacks = [keras_prune.callbacks.PruneCallback()]
        wrappers = keras_prune.layers.collect_wrappers(model)
        masks = [m for w in wrappers for m in w.masks]
        prunable = [v for w in wrappers for v in w.prunable_weights]
        out["mask_bytes"] = sum(int(np.prod(m.shape)) * np.dtype(m.dtype).itemsize for m in masks)
        out["prunable_weight_bytes"] = sum(int(np.prod(v.shape)) * 4 for v in prunable)
    out["weight_bytes"] = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
                              for v in model.weights)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "m.keras")
        model.save(path)
        out["keras_file_bytes"] = os.path.getsize(path)
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=False))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8 * steps, size, size, 3)).astype("float32")
    y = rng.integers(0, 10, 8 * steps)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=callbacks)
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out["rss_before_fit_bytes"] = before * 1024
    print("RESULT " + json.dumps(out))


def run(variant, size, steps):
    command = [sys.executable, __file__, "--worker", variant, "--size", str(size),
               "--steps", str(steps)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{variant} failed:\n{done.stderr[-3000:]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.size, args.steps)
        return
    size, steps = (32, 2) if args.quick else (args.size, args.steps)
    rows = {variant: run(variant, size, steps) for variant in ("dense", "pruned")}
    dense = rows["dense"]
    pruned = rows["pruned"]
    summary = {
        "model": f"ResNet50 (weights=None), {size}x{size} inputs, batch 8, Adam",
        "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "mask_bytes_per_weight_byte": pruned["mask_bytes"] / pruned["prunable_weight_bytes"],
        "weights_plus_masks_vs_weights":
            (pruned["prunable_weight_bytes"] + pruned["mask_bytes"]) / pruned["prunable_weight_bytes"],
        "keras_file_ratio": pruned["keras_file_bytes"] / dense["keras_file_bytes"],
        "peak_rss_ratio": pruned["peak_rss_bytes"] / dense["peak_rss_bytes"],
        "rows": rows,
    }
    os.makedirs(RESULTS, exist_ok=True)
    name = "memory_quick" if args.quick else "memory"
    _write(os.path.join(RESULTS, f"{name}.json"), json.dumps(summary, indent=2) + "\n")
    lines = [
        f"# Memory of pruning ({summary['model']}, {summary['backend']})",
        "",
        "| variant | variable bytes | .keras file | peak RSS in fit | peak RSS / dense |",
        "|---|---|---|---|---|",
    ]
    for variant, row in rows.items():
        ratio = row["peak_rss_bytes"] / dense["peak_rss_bytes"]
        lines.append(f"| {variant} | {row['weight_bytes'] / 1e6:.1f} MB | "
                     f"{row['keras_file_bytes'] / 1e6:.1f} MB | "
                     f"{row['peak_rss_bytes'] / 1e6:.0f} MB | {ratio:.3f} |")
    lines += [
        "",
        f"Masks: {pruned['mask_bytes'] / 1e6:.1f} MB for {pruned['prunable_weight_bytes'] / 1e6:.1f}"
        f" MB of prunable float32 weights: weights + masks = "
        f"{summary['weights_plus_masks_vs_weights']:.3f}x the weights (goal <= 1.25x).",
        f"The wrapped model's .keras file is {summary['keras_file_ratio']:.3f}x the dense one.",
    ]
    _write(os.path.join(RESULTS, f"{name}.md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


def _write(path, text):
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


if __name__ == "__main__":
    main()
