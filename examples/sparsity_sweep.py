"""Sparsity sweep: accuracy and .tflite size against sparsity, with a plot.

One dense digits CNN is trained; each sparsity level then starts from its weights,
is pruned while fine-tuning (polynomial decay), stripped and exported with sparse
encoding (`keras_prune.tflite.convert(sparse="auto")`). The results go to a table,
a JSON file and `tradeoff.png`.

    python examples/sparsity_sweep.py --output sweep/
    python examples/sparsity_sweep.py --smoke
"""

import argparse
import json
import os
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_prune  # noqa: E402
from keras_prune import plot, tflite  # noqa: E402
from keras_prune.demo import compile_classifier, digits_cnn, load_digits_data  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="two levels, 1 epoch, for tests")
    parser.add_argument("--output", default=None, help="folder for the results and the plot")
    args = parser.parse_args(argv)
    levels = [0.5, 0.9] if args.smoke else [0.5, 0.7, 0.8, 0.9, 0.95, 0.98]
    epochs, prune_epochs = (1, 1) if args.smoke else (15, 6)
    output = args.output or tempfile.mkdtemp(prefix="keras_prune_sweep_")
    os.makedirs(output, exist_ok=True)
    keras.utils.set_random_seed(0)
    x_train, x_test, y_train, y_test = load_digits_data()

    dense = compile_classifier(digits_cnn(), 1e-3)
    dense.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    results = []

    def record(sparsity, model):
        result = tflite.convert(model, os.path.join(output, f"sparsity_{sparsity:.2f}.tflite"))
        accuracy = tflite.evaluate(result.path, x_test, y_test)["accuracy"]
        results.append({"sparsity": sparsity, "accuracy": accuracy, "bytes": result.bytes})
        print(f"sparsity {sparsity:5.2f}  LiteRT accuracy {accuracy:.4f}  {result.bytes:>9,} bytes",
              flush=True)

    record(0.0, dense)
    steps = int(np.ceil(len(x_train) / 32)) * prune_epochs
    for level in levels:
        model = keras.models.clone_model(dense)
        model.set_weights(dense.get_weights())
        schedule = keras_prune.schedules.PolynomialDecay(
            0.0, level, begin_step=0, end_step=max(steps - steps // 3, 1),
            frequency=max(steps // 12, 1))
        pruned = compile_classifier(keras_prune.prune_low_magnitude(model, pruning_schedule=schedule), 5e-4)
        pruned.fit(x_train, y_train, epochs=prune_epochs, batch_size=32, verbose=0,
                   callbacks=[keras_prune.callbacks.PruneCallback()])
        record(level, keras_prune.strip_pruning(pruned))

    with open(os.path.join(output, "sweep.json"), "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2)
    png = plot.save(plot.tradeoff(results, accuracy_label="LiteRT test accuracy",
                                 size_label=".tflite size"), os.path.join(output, "tradeoff.png"))
    print(f"Plot: {png}")
    return results, png


if __name__ == "__main__":
    main()
