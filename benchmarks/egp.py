"""EGP vs uniform iterative magnitude pruning, then collapse_layers (digits).

Two models: a deep MLP (8 hidden ReLU layers of 64) and a residual CNN (stem + 3
blocks of conv3x3-ReLU -> conv1x1, added to the input). Each is trained dense,
then pruned in 6 rounds to the target with 4 epochs of fine-tuning a round (and 4
more at the end), either by EGP (entropy-weighted budgets, or entropy-chosen layers
made linear) or uniformly (the same code with an infinite temperature: budgets in
proportion to remaining weights). Then
`collapse_layers` removes what became affine; we report test accuracy, depth
and LiteRT latency of the collapsed vs uncollapsed model.

Usage: python benchmarks/egp.py [--seeds 6] [--sparsity 0.9]
Writes benchmarks/results/egp.{json,md}.
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import keras_prune  # noqa: E402
from keras_prune import _io, entropy  # noqa: E402
from keras_prune.callbacks import PruneCallback  # noqa: E402
from keras_prune.structured import collapse_layers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
L = keras.layers


def deep_mlp():
    layers = [L.Input((64,))] + [L.Dense(64, activation="relu") for _ in range(8)]
    return keras.Sequential(layers + [L.Dense(10)], name="deep_mlp")


def residual_cnn():
    inputs = L.Input((8, 8, 1))
    x = L.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    for _ in range(3):
        y = L.Conv2D(32, 3, padding="same", activation="relu")(x)
        x = L.Add()([x, L.Conv2D(32, 1)(y)])
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(10)(x), name="residual_cnn")


def run(build, x, y, xt, yt, seed, sparsity, options):
    keras.utils.set_random_seed(seed)
    model = build()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, epochs=20, verbose=0)
    dense = model.evaluate(xt, yt, verbose=0)[1]
    pruned = entropy.egp_prune(model, (x, y), sparsity, rounds=ROUNDS, epochs=EPOCHS,
                               entropy_data=x, verbose=0, **options)
    if options.get("steer") != "linearize":  # the same training as linearize's repair
        pruned.fit(x, y, epochs=EPOCHS, verbose=0, callbacks=[PruneCallback()])
    stripped = keras_prune.strip_pruning(pruned)
    small, report = collapse_layers(stripped, x, latency=True)
    difference = float(np.max(np.abs(keras.ops.convert_to_numpy(small(xt))
                                      - keras.ops.convert_to_numpy(stripped(xt)))))
    stripped.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                     metrics=["accuracy"])
    small.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return {"dense": dense, "pruned": stripped.evaluate(xt, yt, verbose=0)[1],
            "accuracy": small.evaluate(xt, yt, verbose=0)[1],
            "depth_before": report.depth_before, "depth_after": report.depth_after,
            "dropped_blocks": len(report.identity_blocks) + len(report.offset_blocks),
            "latency_us_before": report.latency_us_before,
            "latency_us_after": report.latency_us_after,
            "test_max_difference": difference,
            "zero_entropy_layers": sum(v == 0 for v in entropy.layer_entropy(stripped, x).values())}


ROUNDS, EPOCHS = 6, 4  # every method: 6 rounds of 4 epochs, then 4 more epochs
# (name, models it runs on, egp_prune options): EGP as in the paper; EGP steering only
# the layers inside residual branches, at its default temperature (0.2; on the MLP, with
# no branches, this is uniform pruning), at 0.05 (one branch at a time is emptied), at
# 0.1, and at 0.5 (the budget spread over the branches: none is emptied); EGP linearizing 2
# or 4 ReLU layers of the MLP (the 4 last epochs are its repair); and uniform (the same
# code with an infinite temperature).
BOTH = ("deep_mlp", "residual_cnn")
CNN = ("residual_cnn",)
METHODS = (("egp", BOTH, {"temperature": 0.25, "steer": "all"}),
           ("egp_branches", BOTH, {"temperature": 0.2, "steer": "branches"}),
           ("egp_branches_t0.05", CNN, {"temperature": 0.05, "steer": "branches"}),
           ("egp_branches_t0.1", CNN, {"temperature": 0.1, "steer": "branches"}),
           ("egp_branches_t0.5", CNN, {"temperature": 0.5, "steer": "branches"}),
           ("egp_linearize2", ("deep_mlp",), {"steer": "linearize", "linearize": 2}),
           ("egp_linearize4", ("deep_mlp",), {"steer": "linearize", "linearize": 4}),
           ("uniform", BOTH, {"temperature": 1e9, "steer": "all"}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--sparsity", type=float, default=0.9)
    args = parser.parse_args()
    digits = load_digits()
    images = (digits.images / 16).astype("float32")[..., None]
    rows = []
    for name, build, flat in (("deep_mlp", deep_mlp, True), ("residual_cnn", residual_cnn, False)):
        data = images.reshape(len(images), -1) if flat else images
        x, xt, y, yt = train_test_split(data, digits.target, test_size=0.25, random_state=0)
        for method, models, options in METHODS:
            if name not in models:
                continue
            for seed in range(args.seeds):
                row = {"model": name, "method": method, "seed": seed,
                       **run(build, x, y, xt, yt, seed, args.sparsity, options)}
                print(row, flush=True)
                rows.append(row)
    _io.write_json({"sparsity": args.sparsity, "rows": rows},
                   os.path.join(HERE, "results", "egp.json"))
    lines = [f"# EGP vs uniform at {args.sparsity:.0%} then collapse_layers (digits, "
             f"{args.seeds} seeds, means; ± is the standard deviation over seeds)", "",
             "| model | method | dense acc | pruned acc | pruned+collapsed acc | "
             "depth before -> after | branches dropped | zero-entropy layers | "
             "LiteRT us before -> after | max change on test data |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name in BOTH:
        for method, models, _ in METHODS:
            if name not in models:
                continue
            sel = [r for r in rows if r["model"] == name and r["method"] == method]

            def mean(key, sel=sel):
                return float(np.mean([r[key] for r in sel]))

            spread = float(np.std([r["accuracy"] for r in sel]))
            lines.append(f"| {name} | {method} | {mean('dense'):.3f} | {mean('pruned'):.3f} | "
                         f"{mean('accuracy'):.3f} ± {spread:.3f} | "
                         f"{mean('depth_before'):.1f} -> {mean('depth_after'):.1f} | "
                         f"{mean('dropped_blocks'):.1f} | "
                         f"{mean('zero_entropy_layers'):.1f} | {mean('latency_us_before'):.1f} "
                         f"-> {mean('latency_us_after'):.1f} | "
                         f"{max(r['test_max_difference'] for r in sel):.1e} |")
    text = "\n".join(lines) + "\n"
    with _io.atomic_path(os.path.join(HERE, "results", "egp.md")) as tmp:
        with open(tmp, "w") as handle:
            handle.write(text)
    print(text)


if __name__ == "__main__":
    main()
