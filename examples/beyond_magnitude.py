"""Beyond gradual magnitude pruning: sensitivity, pruning at init, lottery tickets, EGP.

On the scikit-learn digits (flattened), with a small MLP:

1. `sensitivity.scan` prunes each layer alone and shows which one is fragile;
   `sensitivity.allocate` turns that into per-layer targets for 90% overall.
2. `prune_at_init("synflow")` picks a 90% mask before any training (no data).
3. `lottery.find_ticket` finds a 90% ticket by iterative magnitude pruning with
   rewinding to the initialization, and compares it with the same mask on a fresh
   initialization (the control).
4. `entropy.egp_prune` prunes a small residual CNN guided by ReLU entropy,
   emptying its lowest-entropy branches, and `structured.collapse_layers`
   removes what became constant or linear.
5. `entropy.egp_prune(steer="linearize")` makes two layers of a deeper MLP linear,
   and `collapse_layers` folds them: two layers fewer.

    python examples/beyond_magnitude.py
    python examples/beyond_magnitude.py --smoke
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import keras_prune  # noqa: E402
from keras_prune import entropy, lottery, sensitivity, structured  # noqa: E402
from keras_prune.callbacks import PruneCallback  # noqa: E402


def mlp(depth=2, width=128, seed=0):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((64,))]
    layers += [keras.layers.Dense(width, activation="relu", name=f"h{i}") for i in range(depth)]
    model = keras.Sequential(layers + [keras.layers.Dense(10, name="out")])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def residual_cnn(width=16, blocks=3, seed=0):
    keras.utils.set_random_seed(seed)
    L = keras.layers
    inputs = keras.Input((8, 8, 1))
    x = L.Conv2D(width, 3, padding="same", activation="relu", name="stem")(inputs)
    for i in range(blocks):
        y = L.Conv2D(width, 3, padding="same", activation="relu", name=f"block{i}_conv")(x)
        x = L.Add(name=f"block{i}_add")([x, L.Conv2D(width, 1, name=f"block{i}_proj")(y)])
    x = L.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, L.Dense(10, name="out")(x))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny epochs, for tests")
    args = parser.parse_args(argv)
    epochs = 2 if args.smoke else 20
    digits = load_digits()
    x = (digits.data / 16).astype("float32")
    x, x_test, y, y_test = train_test_split(x, digits.target, test_size=0.25, random_state=0)
    results = {}

    dense = mlp()
    init = dense.get_weights()
    dense.fit(x, y, epochs=epochs, verbose=0)
    results["dense"] = dense.evaluate(x_test, y_test, verbose=0)[1]

    print("1. Sensitivity of each layer (pruned alone, no retraining):")
    scan = sensitivity.scan(dense, (x_test, y_test), sparsities=(0.5, 0.8, 0.9, 0.95))
    print(scan)
    allocation = sensitivity.allocate(dense, 0.9, "sensitivity", scan=scan)
    print("   per-layer targets for 90%:", {k: round(v, 3) for k, v in allocation.items()})

    print("2. SynFlow mask at initialization (no data), then training:")
    fresh = mlp()
    fresh.set_weights(init)
    synflow = keras_prune.prune_at_init(fresh, "synflow", 0.9)
    synflow.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"])
    synflow.fit(x, y, epochs=epochs, verbose=0, callbacks=[PruneCallback()])
    results["synflow_90"] = synflow.evaluate(x_test, y_test, verbose=0)[1]

    print("3. Lottery ticket at 90% (rewind to init):")
    start = mlp()
    start.set_weights(init)
    ticket = lottery.find_ticket(start, (x, y), 0.9, epochs=epochs, prune_rate=0.5 if args.smoke
                                 else 0.2, validation_data=(x_test, y_test))
    results["ticket_90"] = ticket.rounds[-1].accuracy
    control = ticket.reinitialized(seed=1)
    control.fit(x, y, epochs=epochs, verbose=0, callbacks=[PruneCallback()])
    results["control_90"] = control.evaluate(x_test, y_test, verbose=0)[1]

    print("4. Entropy-guided pruning of a residual CNN, then collapse:")
    images, images_test = x.reshape(-1, 8, 8, 1), x_test.reshape(-1, 8, 8, 1)
    cnn = residual_cnn()
    cnn.fit(images, y, epochs=epochs, verbose=0)
    # steer="branches": entropy steers only the residual branches, the lowest-entropy
    # branch first; an emptied branch is a constant that collapse_layers removes.
    pruned = entropy.egp_prune(cnn, (images, y), 0.9, rounds=2 if args.smoke else 6,
                               epochs=1 if args.smoke else 4, steer="branches",
                               validation_data=(images_test, y_test))
    small, report = structured.collapse_layers(keras_prune.strip_pruning(pruned), images)
    print(report)
    small.compile(metrics=["accuracy"], loss=keras.losses.SparseCategoricalCrossentropy(True))
    results["egp_90"] = small.evaluate(images_test, y_test, verbose=0)[1]
    results["egp_depth"] = (report.depth_before, report.depth_after)

    print("\n5. A plain MLP has no branch to empty: EGP makes two of its layers linear:")
    deep = mlp(depth=6, width=64)
    deep.fit(x, y, epochs=epochs, verbose=0)
    # The two lowest-entropy layers are pruned by sign until each unit is always on
    # (or off): they are then linear for every input and fold into the next layer.
    pruned = entropy.egp_prune(deep, (x, y), 0.9, rounds=2 if args.smoke else 6,
                               epochs=1 if args.smoke else 4, steer="linearize", linearize=2,
                               entropy_data=x, validation_data=(x_test, y_test))
    flat, flat_report = structured.collapse_layers(keras_prune.strip_pruning(pruned), x)
    print(flat_report)
    flat.compile(metrics=["accuracy"], loss=keras.losses.SparseCategoricalCrossentropy(True))
    results["linearize_90"] = flat.evaluate(x_test, y_test, verbose=0)[1]
    results["linearize_depth"] = (flat_report.depth_before, flat_report.depth_after)

    print("\nTest accuracy:", {k: (round(v, 4) if isinstance(v, float) else v)
                               for k, v in results.items()})
    return results, scan, ticket, report


if __name__ == "__main__":
    main()
