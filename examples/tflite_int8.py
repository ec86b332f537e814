"""Quantization-ready export: an 80%-pruned model as a verified int8 .tflite file.

Prunes Dense kernels in the 16x1 blocks that TFLite's int8 sparse kernel reads
(`keras_prune.tflite.BLOCK_INT8`), then exports full-integer int8 calibrated on 100
training samples, verified in the LiteRT interpreter with default delegates.

    python examples/tflite_int8.py [--smoke] [--output model_int8.tflite]
"""

import argparse
import os
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402

import keras_prune  # noqa: E402
from keras_prune import tflite  # noqa: E402
from keras_prune.demo import digits_cnn, load_digits_data  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="1 epoch each, for tests")
    parser.add_argument("--output", default=None, help="the .tflite file to write")
    parser.add_argument("--int8-io", action="store_true", help="int8 input/output tensors too")
    args = parser.parse_args(argv)
    epochs = 1 if args.smoke else 12
    output = args.output or os.path.join(tempfile.mkdtemp(), "model_int8.tflite")

    keras.utils.set_random_seed(0)
    x_train, x_test, y_train, y_test = load_digits_data()
    schedule = keras_prune.schedules.ConstantSparsity(0.8, begin_step=0, frequency=20)
    model = keras_prune.prune_low_magnitude(digits_cnn(), pruning_schedule=schedule,
                                            block_size=tflite.BLOCK_INT8)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0,
              callbacks=[keras_prune.callbacks.PruneCallback()])

    float_file = tflite.convert(model, sparse=False, verify=False)
    result = tflite.convert(model, output, quantize="int8", representative_data=x_train[:100],
                            int8_io=args.int8_io)
    print(result)
    print(tflite.inspect(result.path))
    lite = tflite.evaluate(result.path, x_test, y_test)
    keras_accuracy = model.evaluate(x_test, y_test, verbose=0)[1]
    print(f"int8 file: {result.bytes / float_file.bytes:.3f}x the float file; accuracy Keras "
          f"{keras_accuracy:.4f}, LiteRT {lite['accuracy']:.4f}")
    return result, keras_accuracy, lite["accuracy"]


if __name__ == "__main__":
    main()
