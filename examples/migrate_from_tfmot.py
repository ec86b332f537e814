"""Migrating from tfmot: the same pruning program, only the imports change.

tfmot's pruning guide, as it runs with TensorFlow 2.15 and tf_keras:

    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

With Keras 3 and keras_prune (TensorFlow, JAX or PyTorch backend):

    import keras_prune as tfmot
    import keras

Everything between the markers below is tfmot's program, unchanged: the same
names (tfmot.sparsity.keras.*), arguments and semantics. The test suite checks
that the program part never mentions keras_prune.

    python examples/migrate_from_tfmot.py
    python examples/migrate_from_tfmot.py --smoke
"""

import argparse
import os
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402

import keras_prune as tfmot  # noqa: E402
from keras_prune.demo import load_digits_data  # noqa: E402


# --- program (tfmot's, unchanged) ---
def run_program(x_train, y_train, x_test, y_test, epochs, log_dir):
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
    ])
    batch_size = 32
    end_step = (len(x_train) + batch_size - 1) // batch_size * epochs
    pruning_params = {
        "pruning_schedule": tfmot.sparsity.keras.PolynomialDecay(
            initial_sparsity=0.50, final_sparsity=0.80, begin_step=0, end_step=end_step
        )
    }
    model_for_pruning = tfmot.sparsity.keras.prune_low_magnitude(model, **pruning_params)
    model_for_pruning.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    callbacks = [
        tfmot.sparsity.keras.UpdatePruningStep(),
        tfmot.sparsity.keras.PruningSummaries(log_dir=log_dir),
    ]
    model_for_pruning.fit(x_train, y_train, batch_size=batch_size, epochs=epochs,
                          validation_split=0.1, callbacks=callbacks, verbose=0)
    _, accuracy = model_for_pruning.evaluate(x_test, y_test, verbose=0)
    model_for_export = tfmot.sparsity.keras.strip_pruning(model_for_pruning)
    return model_for_export, accuracy
# --- end of program ---


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        help="3 epochs (123 batches: tfmot's default frequency=100 prunes once)")
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)
    x_train, x_test, y_train, y_test = load_digits_data()
    log_dir = tempfile.mkdtemp(prefix="keras_prune_tfmot_logs_")
    model, accuracy = run_program(x_train, y_train, x_test, y_test,
                                  epochs=3 if args.smoke else 10, log_dir=log_dir)
    report = tfmot.sparsity_report(model, print_fn=print)
    print(f"test accuracy {accuracy:.4f}; {report.sparsity:.1%} of kernel weights are zero")
    print(f"TensorBoard logs in {log_dir}")
    return model, accuracy, log_dir


if __name__ == "__main__":
    main()
