"""Cost of one mask update as the model grows: 1M, 10M and 100M prunable parameters.

A mask update runs between training steps (PruneCallback, every `frequency` steps): it
ranks each layer's weights by magnitude, writes the masks and zeroes the pruned weights
and their optimizer slots. This times that update on Dense stacks of three sizes, per
layer and with one global threshold (`global_pruning=True`), on the current backend, one
process, one device: no communication is involved (see docs/distributed.md for what
changes on several devices). Usage:

    python benchmarks/mask_update.py [--quick]   # --quick: 1M and 10M only
"""

import argparse
import json
import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
SIZES = {"1M": (1, 1000), "10M": (10, 1000), "100M": (10, 3162)}  # (layers, width)


def measure(layers, width, global_pruning, repeats=3):
    import keras
    import numpy as np

    import keras_prune
    from keras_prune.masking.groups import apply_masks, make_groups

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((width,))]
                             + [keras.layers.Dense(width, use_bias=False) for _ in range(layers)])
    pruned = keras_prune.prune_low_magnitude(model, global_pruning=global_pruning)
    groups = make_groups(keras_prune.layers.collect_wrappers(pruned))
    params = sum(int(np.prod(w.shape)) for w in pruned.trainable_weights)
    times = []
    for repeat in range(repeats):
        start = time.perf_counter()
        for group in groups:
            apply_masks(group.compute(0.5 + 0.1 * repeat))
        keras.ops.convert_to_numpy(keras_prune.layers.collect_wrappers(pruned)[-1].masks[0])
        times.append(time.perf_counter() - start)
    return params, float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    import keras

    rows = []
    for name, (layers, width) in SIZES.items():
        if args.quick and name == "100M":
            continue
        for global_pruning in (False, True):
            params, seconds = measure(layers, width, global_pruning)
            rows.append({"size": name, "params": params, "global": global_pruning,
                         "seconds": seconds})
            print(rows[-1], flush=True)
    lines = [f"# Mask-update cost vs parameters ({keras.backend.backend()}, one process, "
             "2 CPU cores)", "",
             "| prunable params | ranking | one mask update | per 1M params |",
             "|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['params']:,} | {'global' if row['global'] else 'per layer'} | "
                     f"{row['seconds']:.3f} s | {row['seconds'] / row['params'] * 1e6 * 1e3:.1f} ms |")
    os.makedirs(RESULTS, exist_ok=True)
    name = "mask_update_quick" if args.quick else "mask_update"
    for suffix, text in (("md", "\n".join(lines) + "\n"), ("json", json.dumps(rows, indent=1))):
        path = os.path.join(RESULTS, f"{name}.{suffix}")
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(path + ".tmp", path)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
