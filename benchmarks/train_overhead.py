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
        for variant in ("dense", "pruned"):
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
            is_update = np.array([(i % frequency) == 0 for i in range(steps, steps * epochs)])
            out[variant] = {
                "median_step": float(np.median(times[~is_update] if variant == "pruned" else times)),
                "update_step": float(np.median(times[is_update])) if variant == "pruned" and is_update.any() else None,
                "first_epoch": timer.epoch_times[0],
            }
        print("RESULT " + json.dumps(out))
        return

    # accuracy: dense pre-training, then prune while fine-tuning, then evaluate stripped
    keras.utils.set_random_seed(seed)
    dense = compiled(_model(keras, name))
    dense.fit(x_train, y_train, batch_size=batch, epochs=task["epochs"], verbose=0)
    dense_acc = dense.evaluate(x_test, y_test, verbose=0)[1]
    accs = {}
    for sparsity in (0.8, 0.9):
        keras.utils.set_random_seed(seed)
        pruned = prune(dense, pruning_schedule=schedules.PolynomialDecay(
            0.0, sparsity, begin_step=0, end_step=steps * (task["epochs"] - 2), frequency=max(steps // 2, 1)))
        compiled(pruned, 5e-4)
        pruned.fit(x_train, y_train, batch_size=batch, epochs=task["epochs"], verbose=0,
                   callbacks=make_callbacks())
        final = compiled(strip(pruned))
        accs[str(sparsity)] = final.evaluate(x_test, y_test, verbose=0)[1]
    print("RESULT " + json.dumps({"dense": dense_acc, **accs}))


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
    parser.add_argument("--models", default="cnn_digits,mlp_digits,mlp_mnist1d,mobilenet_v2")
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
    rows = {}
    for model in models:
        for lib, (python, env) in libs.items():
            epochs = 3 if model == "mobilenet_v2" else 6
            task = {"model": model, "kind": "speed", "epochs": epochs,
                    "frequency": 4 if model == "mobilenet_v2" else 100}
            speed = run(python, lib, task, env)
            entry = {
                "step_ratio": speed["pruned"]["median_step"] / speed["dense"]["median_step"],
                "first_epoch_ratio": speed["pruned"]["first_epoch"] / speed["dense"]["first_epoch"],
                "update_ratio": (speed["pruned"]["update_step"] / speed["pruned"]["median_step"]
                                 if speed["pruned"]["update_step"] else None),
                "raw": speed,
            }
            if model != "mobilenet_v2":
                accs = [run(python, lib, {"model": model, "kind": "accuracy", "epochs": acc_epochs,
                                          "seed": s}, env) for s in range(seeds)]
                for key in ("dense", "0.8", "0.9"):
                    entry[f"acc_{key}"] = sum(a[key] for a in accs) / len(accs)
            rows[(model, lib)] = entry
            print(model, lib, {k: v for k, v in entry.items() if k != "raw"}, flush=True)
    write_results(rows, models, list(libs), seeds, acc_epochs)


def _fmt(value, spec=".3f"):
    return "-" if value is None else format(value, spec)


def write_results(rows, models, libs, seeds, acc_epochs):
    os.makedirs(RESULTS, exist_ok=True)
    lines = [
        "# Training overhead: keras_prune vs tfmot",
        "",
        f"TF backend, 2 CPU cores, batch 32. Ratios are pruned / dense within one process. "
        f"Accuracy: dense pre-training then pruning while fine-tuning ({acc_epochs} epochs each), "
        f"mean of {seeds} seed(s), stripped model on the held-out split. MobileNetV2: 96x96 random "
        "data, speed only; its mask-update ratio uses frequency=4.",
        "",
        "| model | library | step pruned/dense | first epoch pruned/dense | mask-update step / plain step "
        "| acc dense | acc 80% | acc 90% |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model in models:
        for lib in libs:
            r = rows[(model, lib)]
            lines.append(
                f"| {model} | {lib} | {_fmt(r['step_ratio'])} | {_fmt(r['first_epoch_ratio'])} | "
                f"{_fmt(r['update_ratio'])} | {_fmt(r.get('acc_dense'))} | {_fmt(r.get('acc_0.8'))} | "
                f"{_fmt(r.get('acc_0.9'))} |"
            )
    text = "\n".join(lines) + "\n"
    path = os.path.join(RESULTS, "train_overhead.md")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    with open(os.path.join(RESULTS, "train_overhead.json.tmp"), "w") as f:
        json.dump({f"{m}/{l}": r for (m, l), r in rows.items()}, f, indent=1)
    os.replace(os.path.join(RESULTS, "train_overhead.json.tmp"), os.path.join(RESULTS, "train_overhead.json"))
    print(text)


if __name__ == "__main__":
    main()
