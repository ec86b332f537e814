"""Structured pruning: remove half the channels of a CNN, fine-tune, compare size and speed.

A digits CNN with BatchNormalization and a residual block is trained dense; then
`prune_and_finetune` removes 50% of the channels of every prunable group (by L1
norm), re-estimates the BatchNorm statistics and fine-tunes. Both models are
exported to TFLite and timed in the LiteRT interpreter (1 thread).

    python examples/structured.py
    python examples/structured.py --smoke
"""

import argparse
import os
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_prune import structured, tflite  # noqa: E402
from keras_prune.demo import load_digits_data  # noqa: E402

L = keras.layers


def residual_cnn(width=64):
    inputs = keras.Input((8, 8, 1))
    x = L.Conv2D(width, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = L.ReLU(name="stem_relu")(L.BatchNormalization(name="stem_bn")(x))
    y = L.Conv2D(width, 3, padding="same", use_bias=False, name="block_conv1")(x)
    y = L.ReLU(name="block_relu")(L.BatchNormalization(name="block_bn1")(y))
    y = L.Conv2D(width, 3, padding="same", use_bias=False, name="block_conv2")(y)
    y = L.BatchNormalization(name="block_bn2")(y)
    x = L.ReLU(name="block_out")(L.Add(name="block_add")([x, y]))
    x = L.GlobalAveragePooling2D(name="pool")(x)
    x = L.Dense(128, activation="relu", name="hidden")(x)
    model = keras.Model(inputs, L.Dense(10, name="logits")(x), name="residual_cnn")
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="1 epoch each, for tests")
    parser.add_argument("--ratio", type=float, default=0.5)
    args = parser.parse_args(argv)
    epochs, finetune = (1, 1) if args.smoke else (20, 8)
    keras.utils.set_random_seed(0)
    x_train, x_test, y_train, y_test = load_digits_data()

    dense = residual_cnn()
    dense.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    dense_accuracy = dense.evaluate(x_test, y_test, verbose=0)[1]

    # One call: prune by L1, re-estimate BatchNorm statistics, fine-tune.
    small, report, _ = structured.prune_and_finetune(
        dense, x_train, y_train, ratio=args.ratio, epochs=finetune, round_to=8
    )
    print(report)
    small_accuracy = small.evaluate(x_test, y_test, verbose=0)[1]

    folder = tempfile.mkdtemp(prefix="keras_prune_structured_")
    rows = []
    for name, model, accuracy in (("dense", dense, dense_accuracy),
                                  ("pruned", small, small_accuracy)):
        result = tflite.convert(model, os.path.join(folder, f"{name}.tflite"))
        latency = tflite.benchmark(result.path, num_threads=1, runs=50 if args.smoke else 300)
        rows.append({"model": name, "params": model.count_params(), "bytes": result.bytes,
                     "latency_us": latency.median_us, "accuracy": float(accuracy)})
    print(f"{'model':<8} {'params':>8} {'.tflite bytes':>14} {'latency':>10} {'accuracy':>9}")
    for row in rows:
        print(f"{row['model']:<8} {row['params']:>8,} {row['bytes']:>14,} "
              f"{row['latency_us']:>8.0f}us {row['accuracy']:>9.4f}")
    print(f"speed-up {rows[0]['latency_us'] / rows[1]['latency_us']:.2f}x; files in {folder}")
    return rows, report


if __name__ == "__main__":
    main()
