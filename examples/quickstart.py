"""Quickstart: prune a digits CNN to 80%, strip it, export it to TFLite, compare.

    python examples/quickstart.py            # about 20 s on 2 CPU cores
    python examples/quickstart.py --smoke    # tiny run (what the tests do)
"""

import argparse
import os
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402

import keras_prune  # noqa: E402
from keras_prune import tflite  # noqa: E402
from keras_prune.demo import digits_cnn, load_digits_data  # noqa: E402


def compiled(model, learning_rate=1e-3):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="1 epoch each, for tests")
    parser.add_argument("--sparsity", type=float, default=0.8)
    parser.add_argument("--output", default=None, help="folder for the .tflite files")
    args = parser.parse_args(argv)
    epochs, prune_epochs = (1, 1) if args.smoke else (15, 10)
    output = args.output or tempfile.mkdtemp(prefix="keras_prune_quickstart_")

    keras.utils.set_random_seed(0)
    x_train, x_test, y_train, y_test = load_digits_data()

    # 1. Train a dense model as usual.
    dense = compiled(digits_cnn())
    dense.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)

    # 2. Wrap it for pruning; the sparsity ramps from 0 to 80% over the fine-tuning steps.
    steps = (len(x_train) + 31) // 32 * prune_epochs
    schedule = keras_prune.schedules.PolynomialDecay(0.0, args.sparsity, 0, max(steps - 1, 1),
                                                     frequency=max(steps // 10, 1))
    pruned = compiled(keras_prune.prune_low_magnitude(dense, pruning_schedule=schedule), 5e-4)
    pruned.fit(x_train, y_train, epochs=prune_epochs, batch_size=32, verbose=0,
               callbacks=[keras_prune.callbacks.PruneCallback()])

    # 3. Strip the wrappers: a plain Keras model whose pruned weights are exactly zero.
    final = compiled(keras_prune.strip_pruning(pruned))
    keras_prune.sparsity_report(final, print_fn=print)

    # 4. Export both to TFLite; `convert` verifies each file in the LiteRT interpreter.
    rows = []
    for name, model in (("dense", dense), ("pruned", final)):
        result = tflite.convert(model, os.path.join(output, f"{name}.tflite"))
        lite = tflite.evaluate(result.path, x_test, y_test)
        keras_accuracy = model.evaluate(x_test, y_test, verbose=0)[1]
        rows.append((name, result.bytes, result.gzip_bytes, keras_accuracy, lite["accuracy"]))
    print(f"{'model':<8} {'bytes':>9} {'gzip':>9} {'Keras acc':>10} {'LiteRT acc':>10}")
    for name, size, gz, keras_accuracy, lite_accuracy in rows:
        print(f"{name:<8} {size:>9,} {gz:>9,} {keras_accuracy:>10.4f} {lite_accuracy:>10.4f}")
    print(f"Files in {output}")
    return rows


if __name__ == "__main__":
    main()
