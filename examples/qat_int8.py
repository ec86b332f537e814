"""Prune, then train quantization-aware, then int8 LiteRT: the zeros and the accuracy kept.

1. A depthwise-separable CNN is trained on scikit-learn's digits and pruned to 75%
   zeros with `PruneCallback`; the wrappers are stripped.
2. The same pruned model goes two ways:
   - post-training quantization: `tflite.convert(..., quantize="int8",
     representative_data=...)`;
   - quantization-aware training: `quantization.quantize_model` (the zeros stay
     zero), a short `fit`, then `tflite.convert(..., quantize="int8")` with no
     representative data: the ranges learned in training are used.
3. The accuracies (Keras and LiteRT side by side) and the int8 file's zeros are printed.

    python examples/qat_int8.py [--smoke] [--output model_qat.tflite] [--int8-io]
"""

import argparse
import os
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402

import keras_prune  # noqa: E402
from keras_prune import quantization, tflite  # noqa: E402
from keras_prune.demo import load_digits_data  # noqa: E402

L = keras.layers


def separable_cnn():
    inputs = keras.Input((8, 8, 1))
    h = L.ReLU()(L.BatchNormalization()(L.Conv2D(16, 3, padding="same", use_bias=False)(inputs)))
    for _ in range(2):
        h = L.ReLU()(L.BatchNormalization()(L.DepthwiseConv2D(3, padding="same", use_bias=False)(h)))
        h = L.ReLU()(L.BatchNormalization()(L.Conv2D(32, 1, use_bias=False)(h)))
    h = L.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, L.Dense(10)(h))


def compiled(model, learning_rate):
    model.compile(keras.optimizers.Adam(learning_rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few epochs, for tests")
    parser.add_argument("--output", default=None, help="the QAT .tflite file to write")
    parser.add_argument("--int8-io", action="store_true", help="int8 input/output tensors too")
    args = parser.parse_args(argv)
    epochs, prune_epochs, qat_epochs = (4, 2, 1) if args.smoke else (30, 10, 5)
    output = args.output or os.path.join(tempfile.mkdtemp(), "model_qat.tflite")

    keras.utils.set_random_seed(0)
    x_train, x_test, y_train, y_test = load_digits_data()
    model = compiled(separable_cnn(), 1e-3)
    model.fit(x_train, y_train, batch_size=64, epochs=epochs, verbose=0)

    # The schedule ends at two thirds of the pruning steps, so that BatchNormalization's
    # moving statistics follow the last masks; they are re-estimated after stripping too.
    # (A schedule that ends on the last step leaves them stale: inference-mode accuracy
    # then drops to chance, and any later comparison measures that, not quantization.)
    steps = prune_epochs * -(-len(x_train) // 64)
    schedule = keras_prune.schedules.PolynomialDecay(0.0, 0.75, 0, 2 * steps // 3, frequency=10)
    pruned = compiled(keras_prune.prune_low_magnitude(model, pruning_schedule=schedule), 1e-3)
    pruned.fit(x_train, y_train, batch_size=64, epochs=prune_epochs, verbose=0,
               callbacks=[keras_prune.callbacks.PruneCallback()])
    stripped = compiled(keras_prune.strip_pruning(pruned), 1e-4)
    keras_prune.structured.update_batchnorm_statistics(stripped, x_train)

    ptq = tflite.convert(stripped, None, quantize="int8", representative_data=x_train[:200],
                         verbose=0)
    qat = compiled(quantization.quantize_model(stripped), 1e-4)  # zeros are kept
    qat.fit(x_train, y_train, batch_size=64, epochs=qat_epochs, verbose=0)
    result = tflite.convert(qat, output, quantize="int8", int8_io=args.int8_io,
                            verify_data=x_test[:64])
    print(qat.quantization_report)
    print(result)

    rows = [
        ("float, pruned (Keras)", stripped.evaluate(x_test, y_test, verbose=0)[1]),
        ("PTQ int8 (LiteRT)", tflite.evaluate(ptq.content, x_test, y_test)["accuracy"]),
        ("QAT (Keras)", qat.evaluate(x_test, y_test, verbose=0)[1]),
        ("QAT int8 (LiteRT)", tflite.evaluate(result.path, x_test, y_test)["accuracy"]),
    ]
    for name, accuracy in rows:
        print(f"{name:24s} {accuracy:.4f}")
    kernels = [t for t in tflite.inspect(result.path).tensors if len(t.shape) > 1]
    print("int8 kernel zeros:", ", ".join(f"{t.label} {t.zero_fraction:.0%}" for t in kernels))
    return dict(rows), result, kernels


if __name__ == "__main__":
    main()
