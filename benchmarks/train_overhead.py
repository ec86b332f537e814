"""Training overhead and accuracy of pruning: keras_prune vs tfmot, side by side.

Each library runs in its own subprocess (tfmot needs tf_keras, which switches tf.keras
to Keras 2 for the whole process); both see the same data, architecture, schedule and
seeds. Ratios (pruned / dense) are taken inside one worker, so machine noise affects
numerator and denominator alike.

    python benchmarks/train_overhead.py [--quick] [--tfmot-python .venv-tfmot/bin/python]

Writes benchmarks/results/train_overhead.md (and .json).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


# ----------------------------------------------------------------------------- worker


def _data(name, seed):
    import numpy as np

    if name in ("cnn_digits", "mlp_digits"):
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        d = load_digits()
        x = (d.images / 16.0).astype("float32")
        x = x[..., None] if name == "cnn_digits" else x.reshape(len(x), -1)
        return train_test_split(x, d.target, test_size=0.2, random_state=0, stratify=d.target)
    if name == "mlp_mnist1d":
        import mnist1d

        args = mnist1d.data.get_dataset_args()
        data = mnist1d.data.make_dataset(args)
        return (data["x"].astype("float32"), data["x_test"].astype("float32"),
                data["y"], data["y_test"])
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(256, 96, 96, 3)).astype("float32")
    y = rng.integers(0, 10, size=256)
    return x[:224], x[224:], y[:224], y[224:]


def _model(keras, name):
    L = keras.layers
    if name == "cnn_digits":
        return keras.Sequential([L.Input((8, 8, 1)), L.Conv2D(32, 3, padding="same", activation="relu"),
                                 L.Conv2D(64, 3, padding="same", activation="relu"), L.MaxPooling2D(),
                                 L.Flatten(), L.Dense(128, activation="relu"), L.Dense(10)])
    if name == "mlp_digits":
        return keras.Sequential([L.Input((64,)), L.Dense(256, activation="relu"),
                                 L.Dense(128, activation="relu"), L.Dense(10)])
    if name == "mlp_mnist1d":
        return keras.Sequential([L.Input((40,)), L.Dense(256, activation="relu"),
                                 L.Dense(256, activation="relu"), L.Dense(10)])
    return keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), classes=10)


def worker(lib, task):
    """Runs one measurement; prints a JSON line."""
    import numpy as np

    if lib == "tfmot":
        import tensorflow_model_optimization as tfmot
        import tf_keras as keras

        sparsity_api = tfmot.sparsity.keras
        prune = sparsity_api.prune_low_magnitude
        strip = sparsity_api.strip_pruning
        schedules = sparsity_api
        make_callbacks = lambda: [sparsity_api.UpdatePruningStep()]  # noqa: E731
    else:
        import keras

        import keras_prune

        prune = keras_prune.prune_low_magnitude
        strip = keras_prune.strip_pruning
        schedules = keras_prune.schedules
        make_callbacks = lambda: [keras_prune.callbacks.PruneCallback()]  # noqa: E731

    class Timer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times, self.epoch_times = [], []

        def on_train_batch_begin(self, batch, logs=None):
            self._t = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter() - self._t)

        def on_epoch_begin(self, epoch, logs=None):
            self._e = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.epoch_times.append(time.perf_counter() - self._e)

    name, kind = task["model"], task["kind"]
    seed = task.get("seed", 0)
    keras.utils.set_random_seed(seed)
    x_train, x_test, y_train, y_test = _data(name, seed)
    batch = 32
    steps = int(np.ceil(len(x_train) / batch))

    def compiled(model, lr=1e-3):
        model.compile(optimizer=keras.optimizers.Adam(lr),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=name != "mobilenet_v2"),
                      metrics=["accuracy"])
        return model

    if kind == "speed":
        epochs = task["epochs"]
        frequency = task.get("frequency", 100)
        out = {}
        # Dense and pruned alternate (rounds of both), so drift in the machine's speed
        # hits both alike; each variant's step time is the median over its rounds.
        rounds = task.get("rounds", 1)
        for variant in ("dense", "pruned") * rounds:
            keras.utils.set_random_seed(seed)
            model = _model(keras, name)
            callbacks = []
            if variant == "pruned":
                model = prune(model, pruning_schedule=schedules.PolynomialDecay(
                    0.0, 0.8, begin_step=0, end_step=steps * epochs, frequency=frequency))
                callbacks = make_callbacks()
            compiled(model)
            timer = Timer()
            model.fit(x_train, y_train, batch_size=batch, epochs=epochs, verbose=0,
                      callbacks=callbacks + [timer])
            times = np.array(timer.times[steps:])  # after the first (tracing) epoch
            # Batch i (0-based) is pruning step i + 1 in both libraries (tfmot's numbering).
            is_update = np.array([(i + 1) % frequency == 0 for i in range(steps, steps * epochs)])
            out.setdefault(variant, []).append({
                "median_step": float(np.median(times[~is_update] if variant == "pruned" else times)),
                "update_step": float(np.median(times[is_update])) if variant == "pruned" and is_update.any() else None,
                "first_epoch": timer.epoch_times[0],
            })
        out = {variant: {key: (None if runs[0][key] is None
                               else float(np.median([r[key] for r in runs])))
                         for key in runs[0]} | {"rounds": [r["median_step"] for r in runs]}
               for variant, runs in out.items()}
        print("RESULT " + json.dumps(out))
        return

    if kind == "dense":
        # The shared starting point: trained once, in Keras 3, saved as .npz.
        keras.utils.set_random_seed(seed)
        dense = compiled(_model(keras, name))
        dense.fit(x_train, y_train, batch_size=batch, epochs=task["epochs"], verbose=0)
        np.savez(task["weights"], *dense.get_weights())
        print("RESULT " + json.dumps({"dense": dense.evaluate(x_test, y_test, verbose=0)[1]}))
        return

    # accuracy: every sparsity prunes a FRESH model loaded with the shared dense weights
    # (tfmot's wrappers share the layers of the model they wrap, so reusing one model
    # would chain the runs), fine-tunes it, strips it and evaluates it.
    def from_shared_weights():
        model = compiled(_model(keras, name))
        with np.load(task["weights"]) as stored:
            model.set_weights([stored[f"arr_{i}"] for i in range(len(stored.files))])
        return model

    accs = {"dense": from_shared_weights().evaluate(x_test, y_test, verbose=0)[1]}
    for sparsity in task["sparsities"]:
        keras.utils.set_random_seed(seed)
        pruned = prune(from_shared_weights(), pruning_schedule=schedules.PolynomialDecay(
            0.0, sparsity, begin_step=0, end_step=steps * (task["epochs"] - 2),
            frequency=max(steps // 2, 1)))
        compiled(pruned, 5e-4)
        pruned.fit(x_train, y_train, batch_size=batch, epochs=task["epochs"], verbose=0,
                   callbacks=make_callbacks())
        final = compiled(strip(pruned))
        accs[str(sparsity)] = final.evaluate(x_test, y_test, verbose=0)[1]
    print("RESULT " + json.dumps(accs))


# ----------------------------------------------------------------------------- driver


def run(python, lib, task, env_extra=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env_extra or {})}
    command = [python, os.path.abspath(__file__), "--worker", lib, json.dumps(task)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    for line in result.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{lib} worker failed on {task}:\n{result.stderr[-3000:]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", nargs=2, metavar=("LIB", "TASK"), help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="fewer epochs and seeds")
    parser.add_argument("--tfmot-python", default=os.path.join(HERE, "..", ".venv-tfmot", "bin", "python"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--sweep", action="store_true",
                        help="sparsities 0.5-0.98 (else 0.8, 0.9, 0.95) and sweep.png")
    parser.add_argument("--models", default="cnn_digits,mlp_digits,mlp_mnist1d,mobilenet_v2")
    parser.add_argument("--speed-only", action="store_true",
                        help="timing only (no accuracy runs): results in train_overhead_speed.*")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating dense/pruned timing rounds per library")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], json.loads(args.worker[1]))
        return

    libs = {"keras_prune": (sys.executable, {"KERAS_BACKEND": "tensorflow"})}
    if os.path.exists(args.tfmot_python):
        libs["tfmot"] = (args.tfmot_python, {"TF_USE_LEGACY_KERAS": "1"})
    else:
        print(f"tfmot interpreter not found at {args.tfmot_python}: measuring keras_prune only")
    models = args.models.split(",")
    seeds = 1 if args.quick else args.seeds
    acc_epochs = 10 if args.quick else 30
    sparsities = [0.5, 0.7, 0.8, 0.9, 0.95, 0.98] if args.sweep else [0.8, 0.9, 0.95]
    folder = tempfile.mkdtemp(prefix="keras_prune_bench_")
    shared = {}  # (model, seed) -> .npz of the dense weights both libraries start from
    for model in models:
        if model == "mobilenet_v2" or args.speed_only:
            continue
        for seed in range(seeds):
            path = os.path.join(folder, f"{model}_{seed}.npz")
            run(sys.executable, "keras_prune", {"model": model, "kind": "dense", "seed": seed,
                                                "epochs": acc_epochs, "weights": path},
                libs["keras_prune"][1])
            shared[(model, seed)] = path
    rows = {}
    for model in models:
        for lib, (python, env) in libs.items():
            epochs = 3 if model == "mobilenet_v2" else 6
            task = {"model": model, "kind": "speed", "epochs": epochs, "rounds": args.rounds,
                    "frequency": 4 if model == "mobilenet_v2" else 100}
            speed = run(python, lib, task, env)
            entry = {
                "step_ratio": speed["pruned"]["median_step"] / speed["dense"]["median_step"],
                "first_epoch_ratio": speed["pruned"]["first_epoch"] / speed["dense"]["first_epoch"],
                "update_ratio": (speed["pruned"]["update_step"] / speed["pruned"]["median_step"]
                                 if speed["pruned"]["update_step"] else None),
                "raw": speed,
            }
            if model != "mobilenet_v2" and not args.speed_only:
                accs = [run(python, lib, {"model": model, "kind": "accuracy",
                                          "epochs": acc_epochs, "seed": seed,
                                          "weights": shared[(model, seed)],
                                          "sparsities": sparsities}, env)
                        for seed in range(seeds)]
                for key in ["dense", *map(str, sparsities)]:
                    entry[f"acc_{key}"] = sum(a[key] for a in accs) / len(accs)
            rows[(model, lib)] = entry
            print(model, lib, {k: v for k, v in entry.items() if k != "raw"}, flush=True)
    write_results(rows, models, list(libs), seeds, acc_epochs, sparsities, args.quick,
                  args.speed_only)


def _fmt(value, spec=".3f"):
    return "-" if value is None else format(value, spec)


def write_results(rows, models, libs, seeds, acc_epochs, sparsities, quick, speed_only=False):
    os.makedirs(RESULTS, exist_ok=True)
    columns = [] if speed_only else ["dense", *map(str, sparsities)]
    setting = "QUICK setting (1 seed, 10 epochs): indicative only" if quick else (
        f"full setting ({seeds} seeds, {acc_epochs} epochs)")
    if speed_only:
        setting = ("Timing only: dense and pruned fits alternate in rounds in one process per "
                   "library; the median step of each round, then the median over rounds")
    lines = [
        "# Training overhead and accuracy: keras_prune vs tfmot",
        "",
        f"**{setting}.** TF backend, 2 CPU cores, batch 32. Ratios are pruned / dense within "
        "one process. Accuracy: one dense model per seed is trained once (Keras 3) and saved; "
        "for every sparsity each library loads those weights into a FRESH model, prunes it "
        f"while fine-tuning ({acc_epochs} epochs), strips it and evaluates it on the held-out "
        "split ('dense' is that shared model, evaluated in each framework). Mean over seeds. "
        "MobileNetV2: 96x96 random data, speed only; its mask-update ratio uses frequency=4.",
        "",
        "| model | library | step pruned/dense | first epoch pruned/dense | mask-update step / plain step |"
        + "".join(f" acc {c} |" if c == "dense" else f" acc {float(c):.0%} |" for c in columns),
        "|---|---|---|---|---|" + "---|" * len(columns),
    ]
    for model in models:
        for lib in libs:
            r = rows[(model, lib)]
            lines.append(
                f"| {model} | {lib} | {_fmt(r['step_ratio'])} | {_fmt(r['first_epoch_ratio'])} | "
                f"{_fmt(r['update_ratio'])} |"
                + "".join(f" {_fmt(r.get(f'acc_{c}'))} |" for c in columns)
            )
    text = "\n".join(lines) + "\n"
    name = "train_overhead_speed" if speed_only else (
        "train_overhead_quick" if quick else "train_overhead")
    _atomic_write(os.path.join(RESULTS, f"{name}.md"), text)
    _atomic_write(os.path.join(RESULTS, f"{name}.json"),
                  json.dumps({f"{m}/{l}": r for (m, l), r in rows.items()}, indent=1))
    if len(sparsities) > 3:
        _plot_sweep(rows, models, libs, sparsities, os.path.join(RESULTS, "sweep.png"))
    print(text)


def _atomic_write(path, text):
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


def _plot_sweep(rows, models, libs, sparsities, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [m for m in models if (m, libs[0]) in rows and f"acc_{sparsities[0]}" in rows[(m, libs[0])]]
    figure, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models), 3.6), squeeze=False)
    for axis, model in zip(axes[0], models):
        for lib, marker in zip(libs, "os"):
            accs = [rows[(model, lib)][f"acc_{s}"] for s in sparsities]
            axis.plot([100 * s for s in sparsities], accs, marker=marker, label=lib)
        axis.axhline(rows[(model, libs[0])]["acc_dense"], color="gray", ls="--", label="dense")
        axis.set(title=model, xlabel="sparsity (%)", ylabel="test accuracy (stripped)")
        axis.legend(loc="lower left")
    figure.tight_layout()
    temporary = path + ".tmp.png"
    figure.savefig(temporary, dpi=110)
    os.replace(temporary, path)


if __name__ == "__main__":
    main()
