"""`python -m keras_prune.tflite._worker job.json`: conversion under the TF backend.

Used by `convert` when the calling process runs Keras on JAX or torch: the TFLite
converter needs TensorFlow graphs, so the model travels as a .keras file.
"""

import json
import sys

import numpy as np


def main(job_path):
    with open(job_path, encoding="utf-8") as handle:
        job = json.load(handle)
    import keras

    from keras_prune import _serializable  # noqa: F401 (registers the classes for loading)
    from keras_prune._io import atomic_path
    from keras_prune.tflite.tensorflow_conversion import convert_tensorflow

    model = keras.saving.load_model(job["model"], compile=False)
    calibration = None
    if job["calibration"]:
        with np.load(job["calibration"]) as data:
            arrays = [data[f"input_{i}"] for i in range(len(data.files))]
        calibration = [[a[i : i + 1] for a in arrays] for i in range(len(arrays[0]))]
    content, sparse_tensors, kept_dense = convert_tensorflow(
        model, job["quantize"], calibration, job["int8_io"], job["sparse"]
    )
    with atomic_path(job["output"]) as temporary, open(temporary, "wb") as handle:
        handle.write(content)
    with open(job["report"], "w", encoding="utf-8") as handle:
        json.dump({"sparse_tensors": sparse_tensors, "kept_dense": kept_dense}, handle)


if __name__ == "__main__":
    main(sys.argv[1])
