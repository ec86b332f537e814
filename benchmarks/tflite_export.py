"""TFLite export of pruned models: keras_prune.tflite vs tfmot's documented path.

Part 1, same trained weights, two export paths. A digits CNN is trained dense, then
pruned to 80% twice from the same dense weights: unstructured magnitude pruning, and
pruning with `block_size=keras_prune.tflite.BLOCK_INT8` (zeros in the 16x1 blocks that
TFLite's sparse int8 FULLY_CONNECTED kernel reads). Each stripped model is exported

- by keras_prune: `keras_prune.tflite.convert(..., sparse="auto")` (float, int8), and
- by tfmot's documented path, in tfmot's own venv (tf_keras): strip, then
  `TFLiteConverter` with `Optimize.EXPERIMENTAL_SPARSITY` (float; int8 with DEFAULT
  and a representative dataset), plus tfmot's int8 file without sparse encoding.

Every file is then loaded in ai_edge_litert with its default delegates (what an app
gets), scored on the test split and timed.

Part 2, sparsity the runtime can use: an MLP-heavy model (dense vs element-wise vs
block-sparse weights, float and int8), latency with and without default delegates.

    python benchmarks/tflite_export.py [--tfmot-python .venv-tfmot/bin/python] [--quick]

Writes benchmarks/results/tflite_export.md (and .json).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")

TFMOT_WORKER = r'''
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot  # noqa: F401 (sets up tf_keras)
import tf_keras as keras

job = json.load(open(sys.argv[1]))
L = keras.layers
model = keras.Sequential([L.InputLayer((8, 8, 1)), L.Conv2D(32, 3, padding="same", activation="relu"),
                          L.Conv2D(64, 3, padding="same", activation="relu"), L.MaxPooling2D(),
                          L.Flatten(), L.Dense(128, activation="relu"), L.Dense(10)])
weights = np.load(job["weights"])
model.set_weights([weights[f"w{i}"] for i in range(len(weights.files))])
model = tfmot.sparsity.keras.strip_pruning(model)
calibration = np.load(job["calibration"])["x"]

def convert(int8, sparse):
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    optimizations = ([tf.lite.Optimize.DEFAULT] if int8 else [])
    if sparse:
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    converter.optimizations = optimizations
    if int8:
        converter.representative_dataset = lambda: ([x[None]] for x in calibration[:100])
    return converter.convert()

for name, int8, sparse in [("float_sparsity", False, True), ("int8_sparsity", True, True),
                           ("int8", True, False)]:
    with open(job["prefix"] + name + ".tflite", "wb") as f:
        f.write(convert(int8, sparse))
'''


def _train(quick):
    import keras

    import keras_prune
    from keras_prune import demo, tflite

    keras.utils.set_random_seed(0)
    x_train, x_test, y_train, y_test = demo.load_digits_data(0)
    epochs, prune_epochs = (3, 2) if quick else (15, 10)
    dense = demo.compile_classifier(demo.digits_cnn(), 1e-3)
    dense.fit(x_train, y_train, batch_size=32, epochs=epochs, verbose=0)
    steps = int(len(x_train) / 32 + 0.999)
    models = {"dense": dense}
    for variant, block in [("unstructured", (1, 1)), ("block16", tflite.BLOCK_INT8)]:
        keras.utils.set_random_seed(1)
        schedule = keras_prune.schedules.PolynomialDecay(
            0.0, 0.8, 0, steps * max(prune_epochs - 2, 1), frequency=max(steps // 2, 1))
        clone = keras.models.clone_model(dense)
        clone.set_weights(dense.get_weights())
        pruned = keras_prune.prune_low_magnitude(clone, pruning_schedule=schedule, block_size=block)
        demo.compile_classifier(pruned, 5e-4)
        pruned.fit(x_train, y_train, batch_size=32, epochs=prune_epochs, verbose=0,
                   callbacks=[keras_prune.callbacks.PruneCallback()])
        models[variant] = keras_prune.strip_pruning(pruned)
    return models, (x_train, x_test, y_train, y_test)


def _measure(path, x_test, y_test, quick):
    from keras_prune import tflite

    try:
        tflite.load_interpreter(path)
        loads, delegates = True, True
    except tflite.InterpreterLoadError as error:
        loads, delegates = False, False
        why = str(error).split("delegates:")[-1].strip()[:90]
    accuracy = tflite.evaluate(path, x_test, y_test, default_delegates=delegates)["accuracy"]
    latency = tflite.benchmark(path, runs=100 if quick else 500, default_delegates=delegates)
    report = tflite.inspect(path)
    row = {
        "bytes": report.bytes, "gzip_bytes": report.gzip_bytes, "loads_default": loads,
        "litert_accuracy": accuracy, "latency_us": latency.median_us, "densify": report.densify_ops,
    }
    if not loads:
        row["error"] = why
    return row


def part1(models, data, tfmot_python, quick, folder):
    import numpy as np

    from keras_prune import tflite

    x_train, x_test, y_train, y_test = data
    rows = []
    reference = tflite.convert(models["dense"], os.path.join(folder, "dense_float.tflite"), sparse=False)
    for variant in ("dense", "unstructured", "block16"):
        model = models[variant]
        keras_accuracy = float(np.mean(np.argmax(model.predict(x_test, verbose=0), -1) == y_test))
        exports = {}
        for name, options in [("float", {}), ("int8", {"quantize": "int8"})]:
            path = os.path.join(folder, f"kp_{variant}_{name}.tflite")
            if options:
                options["representative_data"] = x_train[:100]
            tflite.convert(model, path, **options)
            exports[f"keras_prune {name}, sparse=auto"] = path
        if tfmot_python and variant != "dense":
            with tempfile.TemporaryDirectory() as work:
                np.savez(os.path.join(work, "w.npz"), **{f"w{i}": w for i, w in enumerate(model.get_weights())})
                np.savez(os.path.join(work, "c.npz"), x=x_train[:100])
                job = {"weights": os.path.join(work, "w.npz"), "calibration": os.path.join(work, "c.npz"),
                       "prefix": os.path.join(folder, f"tfmot_{variant}_")}
                with open(os.path.join(work, "job.json"), "w") as handle:
                    json.dump(job, handle)
                with open(os.path.join(work, "worker.py"), "w") as handle:
                    handle.write(TFMOT_WORKER)
                env = dict(os.environ, TF_USE_LEGACY_KERAS="1")
                env.pop("KERAS_BACKEND", None)
                subprocess.run([tfmot_python, os.path.join(work, "worker.py"), os.path.join(work, "job.json")],
                               check=True, env=env, capture_output=True)
            for name, label in [("float_sparsity", "tfmot float + EXPERIMENTAL_SPARSITY"),
                                ("int8_sparsity", "tfmot int8 + EXPERIMENTAL_SPARSITY"),
                                ("int8", "tfmot int8, no sparse encoding")]:
                exports[label] = os.path.join(folder, f"tfmot_{variant}_{name}.tflite")
        for label, path in exports.items():
            row = {"model": variant, "export": label, "keras_accuracy": keras_accuracy}
            row.update(_measure(path, x_test, y_test, quick))
            row["x_dense_float"] = row["bytes"] / reference.bytes
            rows.append(row)
            print(f"  {variant:<13} {label:<38} {row['bytes']:>9,} B  {row['x_dense_float']:.3f}x  "
                  f"loads={row['loads_default']}  acc {row['litert_accuracy']:.4f}", flush=True)
    return rows


def part2(quick, folder):
    """MLP-heavy model: dense vs element-wise vs block-sparse weights, 80% zeros."""
    import keras
    import numpy as np

    from keras_prune import masking, tflite

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 512)).astype("float32")

    def mlp():
        return keras.Sequential([keras.Input((512,)), keras.layers.Dense(1024, activation="relu"),
                                 keras.layers.Dense(1024, activation="relu"), keras.layers.Dense(10)])

    base = mlp()
    variants = {"dense": None, "element-wise 80%": (1, 1), "block 4x1 80%": tflite.BLOCK_FLOAT,
                "block 16x1 80%": tflite.BLOCK_INT8}
    rows = []
    for name, block in variants.items():
        model = mlp()
        model.set_weights(base.get_weights())
        if block is not None:
            for layer in model.layers:
                kernel = layer.kernel
                mask, _ = masking.block_mask(kernel, 0.8, block)
                kernel.assign(kernel * mask)
        for quantize in (None, "int8"):
            path = os.path.join(folder, f"mlp_{name.split()[0]}_{name.split()[1] if block else ''}_{quantize}.tflite")
            options = {"quantize": quantize, "representative_data": x} if quantize else {}
            result = tflite.convert(model, path, **options)
            report = tflite.inspect(path)
            row = {"weights": name, "quantize": quantize or "float", "bytes": result.bytes,
                   "densify": report.densify_ops,
                   "storage": sorted({t.storage for t in report.tensors})}
            for delegates in (True, False):
                for threads in (1, 2):
                    latency = tflite.benchmark(path, num_threads=threads, runs=100 if quick else 400,
                                               default_delegates=delegates)
                    row[f"us_{'xnnpack' if delegates else 'builtin'}_{threads}t"] = latency.median_us
            rows.append(row)
            print(f"  {name:<18} {row['quantize']:<6} {row['bytes']:>10,} B densify={row['densify']} "
                  f"{row['storage']}  xnnpack 1t {row['us_xnnpack_1t']:.0f} us, builtin 1t "
                  f"{row['us_builtin_1t']:.0f} us", flush=True)
    return rows


def write_results(part1_rows, part2_rows, quick, tfmot):
    os.makedirs(RESULTS, exist_ok=True)
    from keras_prune.tflite import _runtime

    lines = [
        "# TFLite export: keras_prune.tflite vs tfmot's documented path",
        "",
        f"Runtime: {_runtime.runtime_name()}, default delegates on unless a file fails to load "
        f"(then scored with them off). {'QUICK run (few epochs). ' if quick else ''}"
        f"{'' if tfmot else 'tfmot venv not found: tfmot rows missing. '}"
        "Sizes relative to the dense model's float file. Latency: median of single-sample "
        "invokes, 1 thread.",
        "",
        "## Same trained weights, two export paths (digits CNN, 80% sparsity)",
        "",
        "| model | export | bytes | x dense float | gzip bytes | DENSIFY | loads with default delegates "
        "| Keras acc | LiteRT acc | latency us |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in part1_rows:
        loads = "yes" if r["loads_default"] else f"**no**: {r.get('error', '')}"
        lines.append(
            f"| {r['model']} | {r['export']} | {r['bytes']:,} | {r['x_dense_float']:.3f} | "
            f"{r['gzip_bytes']:,} | {r['densify']} | {loads} | {r['keras_accuracy']:.4f} | "
            f"{r['litert_accuracy']:.4f} | {r['latency_us']:.0f} |"
        )
    lines += [
        "",
        "## MLP 512-1024-1024-10: can the runtime use the zeros?",
        "",
        "| weights | type | bytes | DENSIFY | storage | XNNPACK 1t us | XNNPACK 2t us | "
        "built-in 1t us | built-in 2t us |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in part2_rows:
        lines.append(
            f"| {r['weights']} | {r['quantize']} | {r['bytes']:,} | {r['densify']} | "
            f"{', '.join(r['storage'])} | {r['us_xnnpack_1t']:.0f} | {r['us_xnnpack_2t']:.0f} | "
            f"{r['us_builtin_1t']:.0f} | {r['us_builtin_2t']:.0f} |"
        )
    with open(os.path.join(RESULTS, "tflite_export.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    with open(os.path.join(RESULTS, "tflite_export.json"), "w") as handle:
        json.dump({"quick": quick, "part1": part1_rows, "part2": part2_rows}, handle, indent=2)
    print("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tfmot-python", default=os.path.join(HERE, "..", ".venv-tfmot", "bin", "python"))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    tfmot = args.tfmot_python if os.path.exists(args.tfmot_python) else None
    with tempfile.TemporaryDirectory() as folder:
        print("Training the digits CNN (dense, 80% unstructured, 80% block 16x1)", flush=True)
        models, data = _train(args.quick)
        print("Part 1: exports", flush=True)
        rows1 = part1(models, data, tfmot, args.quick, folder)
        print("Part 2: MLP latency", flush=True)
        rows2 = part2(args.quick, folder)
    write_results(rows1, rows2, args.quick, tfmot)


if __name__ == "__main__":
    sys.exit(main())
