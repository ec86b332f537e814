"""Pruning methods side by side on the MNIST-1D MLP (40-256-256-10), several seeds.

Every method of a seed starts from the same initialization (and the fine-tuning
methods from the same trained dense model). Test accuracy of:

- dense: the initialization trained for E epochs;
- gradual: tfmot's recipe (PolynomialDecay to the target while fine-tuning the
  dense model for E epochs) - keras_prune reproduces tfmot's masks step by step;
- global / erk: the same, with one global threshold or ERK per-layer targets;
- ticket: lottery ticket (find_ticket, rewind to init, prune_rate 0.2, E epochs a
  round), its last round = the ticket trained from its rewind point; control: the
  same masks on a fresh initialization, trained E epochs; ticket_rw10 / _rw20: the
  same with the weights rewound to 10% / 20% of the first round's steps;
- lr_rewind: iterative pruning with learning-rate rewinding;
- snip / synflow / random: masks chosen at initialization, then E epochs; random
  uses SNIP's per-layer densities.

Usage: python benchmarks/methods.py [--quick] [--seeds 3] [--epochs 30] [--sweep]
Writes benchmarks/results/methods{_quick}.{json,md}; with --sweep instead
methods_sweep.{json,png} (accuracy against sparsity, 50-98%).
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import keras_prune  # noqa: E402
from keras_prune import lottery, sensitivity  # noqa: E402
from keras_prune.callbacks import PruneCallback  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BATCH = 128
# Late-rewinding tickets: weights rewound to this percentage of the first round's steps.
REWIND_PERCENTS = (10, 20)


def data():
    import mnist1d

    d = mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())
    return d["x"].astype("float32"), d["y"], d["x_test"].astype("float32"), d["y_test"]


def model(seed):
    keras.utils.set_random_seed(seed)
    L = keras.layers
    m = keras.Sequential([L.Input((40,)), L.Dense(256, activation="relu", name="h0"),
                          L.Dense(256, activation="relu", name="h1"), L.Dense(10, name="out")])
    return compiled(m)


def compiled(m, lr=1e-3):
    m.compile(keras.optimizers.Adam(lr),
              keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return m


def accuracy(m, x, y):
    return float(m.evaluate(x, y, verbose=0, return_dict=True)["accuracy"])


def initial_and_dense(seed, epochs, x, y):
    """The seed's initialization, and a copy of it trained for `epochs`."""
    init = model(seed)
    dense = model(seed)
    dense.set_weights(init.get_weights())
    dense.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0)
    return init, dense


def finetuned(dense, seed, sparsity, epochs, x, y, xt, yt, **kwargs):
    """Test accuracy of `dense` pruned to `sparsity` while fine-tuning (tfmot's recipe)."""
    start = model(seed)
    start.set_weights(dense.get_weights())
    steps = int(np.ceil(len(x) / BATCH))
    schedule = keras_prune.schedules.PolynomialDecay(
        0.0, sparsity, 0, steps * max(epochs - 2, 1), frequency=max(steps // 2, 1))
    pruned = compiled(keras_prune.prune_low_magnitude(start, schedule, **kwargs), 5e-4)
    pruned.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0, callbacks=[PruneCallback()])
    return accuracy(pruned, xt, yt)


def run_seed(seed, sparsities, epochs, x, y, xt, yt):
    out = {}
    init, dense = initial_and_dense(seed, epochs, x, y)
    out["dense"] = accuracy(dense, xt, yt)
    steps = int(np.ceil(len(x) / BATCH))

    def finetune(sparsity, **kwargs):
        return finetuned(dense, seed, sparsity, epochs, x, y, xt, yt, **kwargs)

    def from_init(pruned):
        compiled(pruned).fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0,
                             callbacks=[PruneCallback()])
        return accuracy(pruned, xt, yt)

    folder = tempfile.mkdtemp()
    for sparsity in sparsities:
        key = f"{sparsity:g}"
        row = {}
        row["gradual"] = finetune(sparsity)
        row["global"] = finetune(sparsity, global_pruning=True)
        row["erk"] = finetune(sparsity, layer_sparsity=sensitivity.allocate(dense, sparsity, "erk"))
        ticket = lottery.find_ticket(init, (x, y), sparsity, epochs=epochs, batch_size=BATCH,
                                     validation_data=(xt, yt), directory=folder, verbose=0)
        row["ticket"] = ticket.rounds[-1].accuracy
        row["ticket_control"] = from_init(ticket.reinitialized(seed + 1000))
        for percent in REWIND_PERCENTS:  # late rewinding (Frankle et al. 2020)
            late = lottery.find_ticket(init, (x, y), sparsity, epochs=epochs, batch_size=BATCH,
                                       rewind_step=round(percent / 100 * steps * epochs),
                                       validation_data=(xt, yt), verbose=0)
            row[f"ticket_rw{percent}"] = late.rounds[-1].accuracy
        snip = keras_prune.prune_at_init(init, "snip", sparsity, data=(x[:512], y[:512]))
        densities = {k.split("/")[0]: 1 - float(v.mean())
                     for k, v in keras_prune.get_masks(snip).items()}
        row["snip"] = from_init(snip)
        row["synflow"] = from_init(keras_prune.prune_at_init(init, "synflow", sparsity))
        row["random"] = from_init(keras_prune.prune_at_init(
            init, "random", sparsity, layer_sparsity=densities, seed=seed))
        out[key] = row
        print(f"seed {seed} sparsity {key}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()),
              flush=True)
    lr = lottery.find_ticket(init, (x, y), sparsities[-1], epochs=epochs, batch_size=BATCH,
                             retrain="lr_rewind", validation_data=(xt, yt), verbose=0)
    out[f"{sparsities[-1]:g}"]["lr_rewind"] = lr.rounds[-1].accuracy
    return out


SWEEP = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)


def sweep_seed(seed, epochs, x, y, xt, yt):
    """Accuracy against sparsity, 50-98%: one fine-tuning run per sparsity for the
    one-shot schedules, and one iterative run to 98% (every round measured) for
    the ticket, the late-rewound ticket and learning-rate rewinding."""
    init, dense = initial_and_dense(seed, epochs, x, y)
    out = {"dense": accuracy(dense, xt, yt)}
    for name, kwargs in (("gradual", {}), ("global", {"global_pruning": True})):
        out[name] = [[s, finetuned(dense, seed, s, epochs, x, y, xt, yt, **kwargs)]
                     for s in SWEEP]
    out["erk"] = [[s, finetuned(dense, seed, s, epochs, x, y, xt, yt,
                                layer_sparsity=sensitivity.allocate(dense, s, "erk"))]
                  for s in SWEEP]
    steps = int(np.ceil(len(x) / BATCH)) * epochs
    for name, kwargs in (("ticket", {}), ("ticket_rw20", {"rewind_step": round(0.2 * steps)}),
                         ("lr_rewind", {"retrain": "lr_rewind"})):
        run = lottery.find_ticket(init, (x, y), SWEEP[-1], epochs=epochs, batch_size=BATCH,
                                  validation_data=(xt, yt), verbose=0, **kwargs)
        out[name] = [[r.sparsity, r.accuracy] for r in run.rounds[1:] if r.sparsity >= 0.45]
    print(f"sweep seed {seed}: dense {out['dense']:.3f}", flush=True)
    return out


def sweep(seeds, epochs, x, y, xt, yt):
    """Writes results/methods_sweep.{json,png}: mean accuracy over seeds per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from keras_prune import _io

    runs = [sweep_seed(seed, epochs, x, y, xt, yt) for seed in range(seeds)]
    dense = float(np.mean([r["dense"] for r in runs]))
    # The iterative runs of every seed prune to the same sparsities (same mask counts).
    curves = {name: [[float(np.mean([r[name][i][0] for r in runs])),
                      float(np.mean([r[name][i][1] for r in runs]))]
                     for i in range(len(runs[0][name]))]
              for name in runs[0] if name != "dense"}
    _io.write_json({"seeds": seeds, "epochs": epochs, "dense": dense, "curves": curves,
                    "runs": runs}, os.path.join(HERE, "results", "methods_sweep.json"))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.axhline(dense, color="black", linestyle="--", linewidth=1, label=f"dense ({dense:.3f})")
    for name, points in curves.items():
        ax.plot([100 * p[0] for p in points], [p[1] for p in points], marker="o",
                markersize=3, label=name)
    ax.set_xlabel("sparsity (%)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"MNIST-1D MLP 40-256-256-10, {seeds} seed(s), {epochs} epochs a run")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with _io.atomic_path(os.path.join(HERE, "results", "methods_sweep.png")) as tmp:
        fig.savefig(tmp, dpi=120)
    for name, points in curves.items():
        print(name, " ".join(f"{100 * s:.0f}%:{a:.3f}" for s, a in points))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 8 epochs")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--sparsities", default="0.9,0.95")
    parser.add_argument("--sweep", action="store_true",
                        help="instead: accuracy against sparsity 50-98%% (methods_sweep.png)")
    args = parser.parse_args()
    seeds, epochs = (1, 8) if args.quick else (args.seeds, args.epochs)
    sparsities = sorted(float(s) for s in args.sparsities.split(","))
    x, y, xt, yt = data()
    if args.sweep:
        return sweep(seeds, epochs, x, y, xt, yt)
    start = time.time()
    runs = [run_seed(seed, sparsities, epochs, x, y, xt, yt) for seed in range(seeds)]
    summary = {"dense": float(np.mean([r["dense"] for r in runs]))}
    for sparsity in sparsities:
        key = f"{sparsity:g}"
        methods = runs[0][key].keys()
        summary[key] = {m: {"mean": float(np.mean([r[key][m] for r in runs if m in r[key]])),
                            "std": float(np.std([r[key][m] for r in runs if m in r[key]]))}
                        for m in methods}
    suffix = "_quick" if args.quick else ""
    result = {"seeds": seeds, "epochs": epochs, "sparsities": sparsities, "runs": runs,
              "summary": summary, "seconds": time.time() - start,
              "keras_backend": keras.backend.backend()}
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    from keras_prune import _io

    _io.write_json(result, os.path.join(HERE, "results", f"methods{suffix}.json"))
    lines = [f"# Pruning methods, MNIST-1D MLP 40-256-256-10 ({seeds} seed(s), {epochs} epochs"
             f"{', QUICK setting' if args.quick else ''})", "",
             f"Dense test accuracy: {summary['dense']:.3f}. Mean (std) test accuracy:", "",
             "| method | " + " | ".join(f"{s:.0%}" for s in sparsities) + " |",
             "|---|" + "---|" * len(sparsities)]
    methods = list(dict.fromkeys(m for s in sparsities for m in summary[f"{s:g}"]))
    for m in methods:
        cells = []
        for s in sparsities:
            v = summary[f"{s:g}"].get(m)
            cells.append(f"{v['mean']:.3f} ({v['std']:.3f})" if v else "-")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    with _io.atomic_path(os.path.join(HERE, "results", f"methods{suffix}.md")) as tmp:
        with open(tmp, "w") as handle:
            handle.write(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
