"""Custom layers: make your own layer prunable, or register a layer class you do not own.

Two ways, as in tfmot plus one:
- your layer implements `keras_prune.PrunableLayer.get_prunable_weights()`;
- `keras_prune.register_prunable_layer(cls, ["kernel"])` names the weights of a
  class you cannot edit (here a "third-party" gated dense layer).

Both are pruned to 75% while training, stripped, saved to .keras and reloaded
with plain `keras.saving.load_model`.

    python examples/custom_layer.py
    python examples/custom_layer.py --smoke
"""

import argparse
import os
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_prune  # noqa: E402
from keras_prune.demo import load_digits_data  # noqa: E402


@keras.saving.register_keras_serializable("examples")
class ScaledDense(keras.layers.Layer, keras_prune.PrunableLayer):
    """A dense layer with a learned per-unit scale. Prune the kernel, never the scale."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel",
                                      initializer="glorot_uniform")
        self.scale = self.add_weight(shape=(self.units,), name="scale", initializer="ones")

    def call(self, x):
        return keras.ops.relu(keras.ops.matmul(x, self.kernel) * self.scale)

    def get_prunable_weights(self):
        return [self.kernel]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable("examples")
class GatedDense(keras.layers.Layer):
    """Stands for a layer from another library: we cannot add methods to it."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.gate = self.add_weight(shape=(input_shape[-1], self.units), name="gate")

    def call(self, x):
        return keras.ops.matmul(x, self.kernel) * keras.ops.sigmoid(keras.ops.matmul(x, self.gate))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="1 epoch, for tests")
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)
    x_train, x_test, y_train, y_test = load_digits_data()
    x_train, x_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)

    # Prune both of GatedDense's matrices (a class we do not own).
    keras_prune.register_prunable_layer(GatedDense, ["kernel", "gate"])

    model = keras.Sequential([keras.Input((64,)), ScaledDense(64, name="scaled"),
                              GatedDense(32, name="gated"), keras.layers.Dense(10, name="logits")])
    schedule = keras_prune.schedules.ConstantSparsity(0.75, begin_step=0, frequency=10)
    pruned = keras_prune.prune_low_magnitude(model, pruning_schedule=schedule)
    print(pruned.pruning_report)
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                   metrics=["accuracy"])
    pruned.fit(x_train, y_train, epochs=1 if args.smoke else 20, batch_size=32, verbose=0,
               callbacks=[keras_prune.callbacks.PruneCallback()])

    final = keras_prune.strip_pruning(pruned)
    report = keras_prune.sparsity_report(final, all_weights=True, print_fn=print)
    path = os.path.join(tempfile.mkdtemp(prefix="keras_prune_custom_"), "custom.keras")
    final.save(path)
    reloaded = keras.saving.load_model(path)  # no custom scope for keras_prune needed
    same = np.allclose(reloaded.predict(x_test, verbose=0), final.predict(x_test, verbose=0))
    accuracy = float(np.mean(np.argmax(final.predict(x_test, verbose=0), -1) == y_test))
    print(f"test accuracy {accuracy:.4f}; reloaded model predicts the same: {same}")
    return final, report, accuracy, same


if __name__ == "__main__":
    main()
