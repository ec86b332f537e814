"""The main job: prune a digits CNN to 80% while fine-tuning, strip, report, save.

Run it with `make demo` or `keras-prune demo --output artifacts/demo`.
"""

import os
import time

import keras
import numpy as np

from keras_prune import _io, tflite
from keras_prune.callbacks import PruneCallback
from keras_prune.prune import prune_low_magnitude
from keras_prune.report import sparsity_report
from keras_prune.schedules import PolynomialDecay
from keras_prune.strip import strip_pruning


def load_digits_arrays():
    """scikit-learn's bundled 8x8 digits (nothing is downloaded): images (n, 8, 8, 1)
    scaled to [0, 1] as float32, labels as int32."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError(
            "The demo needs scikit-learn for its bundled digits data: pip install scikit-learn"
        ) from None
    data = load_digits()
    return (data.images[..., None] / 16.0).astype("float32"), data.target.astype("int32")


def load_digits_data(seed=0):
    """The digits of `load_digits_arrays`, split 80/20 (stratified):
    x_train, x_test, y_train, y_test."""
    from sklearn.model_selection import train_test_split

    x, y = load_digits_arrays()
    return train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)


def digits_cnn():
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1"),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2"),
            keras.layers.MaxPooling2D(name="pool"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(128, activation="relu", name="dense"),
            keras.layers.Dense(10, name="logits"),
        ],
        name="digits_cnn",
    )


def compile_classifier(model, learning_rate):
    """Compiles `model` in place for 10-class logits: Adam(learning_rate), accuracy."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def export_table(dense, pruned, output, x_calibration, x_test, y_test):
    """Exports dense and pruned models to .tflite, verifies them, returns table rows."""
    jobs = [
        ("dense_float.tflite", dense, dict(sparse=False)),
        ("dense_int8.tflite", dense, dict(quantize="int8", sparse=False)),
        ("pruned_float.tflite", pruned, dict(sparse=False)),
        ("pruned_sparse_float.tflite", pruned, dict(sparse="auto")),
        ("pruned_int8.tflite", pruned, dict(quantize="int8", sparse="auto")),
    ]
    rows = []
    for name, model, options in jobs:
        if options.get("quantize") == "int8":
            options["representative_data"] = x_calibration
        result = tflite.convert(model, os.path.join(output, name), **options)
        lite = tflite.evaluate(result.path, x_test, y_test)
        keras_accuracy = float(np.mean(np.argmax(model.predict(x_test, verbose=0), -1) == y_test))
        rows.append({
            "file": name,
            "bytes": result.bytes,
            "gzip_bytes": result.gzip_bytes,
            "sparse_weights": len(result.sparse_tensors),
            "keras_accuracy": keras_accuracy,
            "litert_accuracy": lite["accuracy"],
            "verified": result.verification.passed,
        })
    return rows


def format_table(rows):
    reference = rows[0]["bytes"]
    lines = [
        f"{'file':<28} {'bytes':>9} {'x dense':>8} {'gzip':>9} {'sparse w.':>9} "
        f"{'Keras acc':>9} {'LiteRT acc':>10}  verified",
    ]
    for row in rows:
        lines.append(
            f"{row['file']:<28} {row['bytes']:>9,} {row['bytes'] / reference:>8.2f} "
            f"{row['gzip_bytes']:>9,} {row['sparse_weights']:>9} {row['keras_accuracy']:>9.4f} "
            f"{row['litert_accuracy']:>10.4f}  {'yes' if row['verified'] else 'NO'}"
        )
    return "\n".join(lines)


def write_plots(output, schedule, steps, pruned, rows, dense_accuracy, pruned_accuracy,
                sparsity):
    """schedule.png, sparsity.png, tradeoff.png (skipped, with a note, without matplotlib)."""
    try:
        from keras_prune import plot
        plot._pyplot()
    except ImportError as error:
        print(f"Plots skipped: {error}")
        return []
    sizes = {row["file"]: row["bytes"] for row in rows}
    points = [
        {"sparsity": 0.0, "accuracy": float(dense_accuracy), "label": "dense"},
        {"sparsity": float(sparsity), "accuracy": float(pruned_accuracy), "label": "pruned"},
    ]
    if sizes:
        points[0]["bytes"] = sizes["dense_float.tflite"]
        points[1]["bytes"] = sizes["pruned_sparse_float.tflite"]
    plot.save(plot.schedule(schedule, steps), os.path.join(output, "schedule.png"))
    plot.save(plot.sparsity(pruned), os.path.join(output, "sparsity.png"))
    plot.save(plot.tradeoff(points, accuracy_label="Keras test accuracy",
                            size_label=".tflite size (pruned: sparse)"),
              os.path.join(output, "tradeoff.png"))
    print(f"Plots: schedule.png, sparsity.png, tradeoff.png in {os.path.abspath(output)}")
    return ["schedule.png", "sparsity.png", "tradeoff.png"]


def _weights_only(model):
    """An uncompiled copy of `model` with its weights: saved without optimizer slots."""
    copy = type(model).from_config(model.get_config())  # clone_model keeps the optimizer
    copy.set_weights(model.get_weights())
    return copy


def run(output="artifacts/demo", epochs=15, prune_epochs=10, sparsity=0.8, seed=0, verbose=1,
        export=True):
    """Trains, prunes, strips, saves and exports to TFLite; returns the JSON summary."""
    keras.utils.set_random_seed(seed)
    x_train, x_test, y_train, y_test = load_digits_data(seed)
    batch_size = 32
    steps_per_epoch = int(np.ceil(len(x_train) / batch_size))

    print(f"[1/5] Training the dense CNN for {epochs} epochs (backend: {keras.backend.backend()})")
    dense = compile_classifier(digits_cnn(), 1e-3)
    dense.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=verbose)
    dense_accuracy = dense.evaluate(x_test, y_test, verbose=0)[1]

    end_step = steps_per_epoch * max(prune_epochs - 2, 1)
    schedule = PolynomialDecay(
        0.0, sparsity, begin_step=0, end_step=end_step, frequency=max(steps_per_epoch // 2, 1)
    )
    print(f"[2/5] Pruning to {sparsity:.0%} with {schedule} while fine-tuning")
    pruned = prune_low_magnitude(dense, pruning_schedule=schedule)
    print(pruned.pruning_report)
    compile_classifier(pruned, 5e-4)
    start = time.perf_counter()
    pruned.fit(
        x_train, y_train, batch_size=batch_size, epochs=prune_epochs, verbose=verbose,
        callbacks=[PruneCallback()],
    )
    prune_seconds = time.perf_counter() - start

    print("[3/5] Stripping the pruning wrappers")
    final = strip_pruning(pruned)
    compile_classifier(final, 1e-3)
    pruned_accuracy = final.evaluate(x_test, y_test, verbose=0)[1]
    report = sparsity_report(final, print_fn=print)

    print(f"[4/5] Saving artifacts to {os.path.abspath(output)}")
    os.makedirs(output, exist_ok=True)
    # Both files hold weights only (no optimizer state), so their sizes compare fairly.
    _io.save_model(_weights_only(dense), os.path.join(output, "dense.keras"))
    _io.save_model(_weights_only(final), os.path.join(output, "pruned.keras"))
    summary = {
        "backend": keras.backend.backend(),
        "target_sparsity": sparsity,
        "dense_test_accuracy": float(dense_accuracy),
        "pruned_test_accuracy": float(pruned_accuracy),
        "pruning_seconds": round(prune_seconds, 2),
        "schedule": schedule.get_config(),
        "sparsity_report": report.to_dict(),
        "files": ["dense.keras", "pruned.keras", "summary.json"],
    }
    rows = []
    if export:
        print("[5/5] Exporting to TFLite and verifying each file in the LiteRT interpreter")
        rows = export_table(dense, final, output, x_train[:200], x_test, y_test)
        print(format_table(rows))
        summary["tflite"] = rows
        summary["files"] += [row["file"] for row in rows]
    summary["files"] += write_plots(output, schedule, steps_per_epoch * prune_epochs, pruned,
                                    rows, dense_accuracy, pruned_accuracy, report.sparsity)
    _io.write_json(summary, os.path.join(output, "summary.json"))
    print(
        f"\nDense accuracy {dense_accuracy:.4f} | pruned ({report.sparsity:.1%} of kernel "
        f"weights zero) accuracy {pruned_accuracy:.4f}\nArtifacts: {os.path.abspath(output)}"
    )
    return summary
