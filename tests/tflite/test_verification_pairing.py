"""Outputs of a file are matched to the Keras model's by shape when the file's order differs."""

import numpy as np

from keras_prune.tflite.verification import _paired


def test_outputs_in_another_order_are_paired_by_shape():
    keras_outputs = [np.zeros((2, 8, 8, 4)), np.zeros((2, 4, 4, 4)), np.zeros((2, 10))]
    lite_outputs = [np.ones((2, 4, 4, 4)), np.ones((2, 10)), np.ones((2, 8, 8, 4))]
    paired = _paired(lite_outputs, keras_outputs)
    assert [p.shape for p in paired] == [k.shape for k in keras_outputs]
    # Same shapes keep the file's order; a flattened output is matched by size.
    same = [np.full((2, 3), 1.0), np.full((2, 3), 2.0), np.ones(12)]
    paired = _paired(same, [np.zeros((2, 3)), np.zeros((2, 6)), np.zeros((2, 3))])
    assert [float(p.flat[0]) for p in paired] == [1.0, 1.0, 2.0]
    assert paired[1].size == 12
