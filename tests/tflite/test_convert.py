"""keras_prune.tflite.convert: float/float16/dynamic/int8, sparse encoding, verification."""

import os
import re

import keras
import numpy as np
import pytest

import keras_prune
from keras_prune import tflite
from keras_prune.tflite import _flatbuffer
from tests.tflite.conftest import keras_accuracy

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="TFLite conversion runs in-process on TF"
)


def _weights_by_shape(content):
    """{shape: dense int8/float array} of the constant weights in a (dense) .tflite file."""
    model = _flatbuffer.read(content)
    found = {}
    for tensor in model.subgraphs[0].tensors:
        values = _flatbuffer.buffer_array(model, tensor)
        if tensor.sparsity is None and values.size and values.size == np.prod(tensor.shape) > 64:
            found[tuple(int(d) for d in tensor.shape)] = values.reshape(tuple(tensor.shape))
    return found


def test_float_export_matches_keras_and_leaves_model_wrapped(pruned_model, digits_split, tmp_path):
    (_, _), (x_test, y_test) = digits_split
    before = [w.copy() for w in pruned_model.get_weights()]
    path = tmp_path / "model.tflite"
    result = tflite.convert(pruned_model, path, sparse=False)
    assert os.path.isfile(path) and os.path.getsize(path) == result.bytes
    assert result.verification.passed and result.verification.max_abs_diff < 1e-4
    assert result.verification.default_delegates
    lite = tflite.evaluate(path, x_test, y_test)
    assert abs(lite["accuracy"] - keras_accuracy(pruned_model, x_test, y_test)) < 1e-9
    # The input model keeps its wrappers and weights.
    assert keras_prune.layers.collect_wrappers(pruned_model)
    for old, new in zip(before, pruned_model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_sparse_auto_float_is_smaller_and_loads(pruned_model):
    dense = tflite.convert(pruned_model, sparse=False, verify=False)
    sparse = tflite.convert(pruned_model, sparse="auto")
    assert sparse.bytes <= 0.45 * dense.bytes, (sparse.bytes, dense.bytes)
    assert sparse.sparse_tensors and sparse.verification.passed
    tflite.load_interpreter(sparse.content)  # default delegates


def test_int8_keeps_pruned_weights_exactly_zero(pruned_model, digits_split):
    (x_train, _), _ = digits_split
    result = tflite.convert(pruned_model, quantize="int8", representative_data=x_train[:64], sparse=False)
    stored = _weights_by_shape(result.content)
    stripped = keras_prune.strip_pruning(pruned_model)
    checked = 0
    for layer in stripped.layers:
        if not hasattr(layer, "kernel"):
            continue
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        # TFLite layouts: FULLY_CONNECTED (units, inputs), CONV_2D (out, h, w, in).
        expected = kernel.T if kernel.ndim == 2 else np.transpose(kernel, (3, 0, 1, 2))
        if expected.shape not in stored:
            continue
        quantized = stored[expected.shape]
        assert quantized.dtype == np.int8
        assert np.all(quantized[expected == 0] == 0), layer.name
        assert np.mean(quantized == 0) >= np.mean(expected == 0)
        checked += 1
    assert checked >= 2


def test_int8_random_sparse_tfmot_path_fails_auto_path_loads(pruned_model, digits_split, tmp_path):
    (x_train, _), (x_test, y_test) = digits_split
    path = tmp_path / "int8.tflite"
    path.write_bytes(b"previous file")
    # tfmot's documented path (EXPERIMENTAL_SPARSITY on int8) breaks in the default runtime;
    # convert refuses to hand it over and leaves the previous file alone.
    with pytest.raises(tflite.VerificationError, match="default delegates"):
        tflite.convert(pruned_model, path, quantize="int8", representative_data=x_train[:64], sparse=True)
    assert path.read_bytes() == b"previous file"
    assert sorted(os.listdir(tmp_path)) == ["int8.tflite"]
    result = tflite.convert(pruned_model, path, quantize="int8", representative_data=x_train[:64])
    assert result.verification.passed
    assert result.kept_dense and all("DENSIFY" in why or "smaller" in why for why in result.kept_dense.values())
    assert tflite.inspect(path).densify_ops == 0
    # inspect's XNNPACK advice is measured: the refused layout, kept without verification,
    # is reported as not loading; the file convert wrote loads.
    refused = tflite.convert(pruned_model, quantize="int8", representative_data=x_train[:64],
                             sparse=True, verify=False)
    report = tflite.inspect(refused)
    assert report.default_delegates[0] is False and "XNNPack" in report.default_delegates[1]
    assert "does not load with the default delegates" in report.recommendations()[0]
    assert tflite.inspect(path).default_delegates[0] is True
    lite = tflite.evaluate(path, x_test, y_test)
    assert abs(lite["accuracy"] - keras_accuracy(pruned_model, x_test, y_test)) <= 0.02


def test_int8_block_pruning_is_stored_sparse_without_densify(int8_block_model, digits_split):
    (x_train, _), _ = digits_split
    dense_float = tflite.convert(int8_block_model, sparse=False, verify=False)
    result = tflite.convert(int8_block_model, quantize="int8", representative_data=x_train[:64])
    report = tflite.inspect(result.content)
    assert report.densify_ops == 0
    blocks = [t for t in report.tensors if t.storage == "sparse, block 1x16"]
    assert blocks and all(t.op == "FULLY_CONNECTED" and t.dtype == "int8" for t in blocks)
    assert result.bytes <= 0.15 * dense_float.bytes, (result.bytes, dense_float.bytes)
    assert result.verification.passed


def test_float_block_pruning_is_stored_block_sparse(float_block_model):
    result = tflite.convert(float_block_model)
    report = tflite.inspect(result.content)
    blocks = [t for t in report.tensors if t.storage == "sparse, block 1x4"]
    assert blocks and all(not t.densify for t in blocks)
    assert result.verification.max_abs_diff < 1e-4


@pytest.mark.parametrize("quantize, max_drop", [("float16", 0.005), ("dynamic", 0.02)])
def test_float16_and_dynamic(pruned_model, digits_split, quantize, max_drop):
    _, (x_test, y_test) = digits_split
    result = tflite.convert(pruned_model, quantize=quantize)
    assert result.verification.passed
    lite = tflite.evaluate(result.content, x_test, y_test)
    assert lite["accuracy"] >= keras_accuracy(pruned_model, x_test, y_test) - max_drop


def test_int8_io_has_integer_tensors_and_still_scores(pruned_model, digits_split):
    (x_train, _), (x_test, y_test) = digits_split
    result = tflite.convert(pruned_model, quantize="int8", representative_data=x_train[:64], int8_io=True)
    interpreter = tflite.load_interpreter(result.content)
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    lite = tflite.evaluate(result.content, x_test, y_test)
    assert lite["accuracy"] >= keras_accuracy(pruned_model, x_test, y_test) - 0.03


def _dataset(x, y):
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((x, y)).batch(16)


@pytest.mark.parametrize(
    "make",
    [
        lambda x, y: x[:40],
        lambda x, y: _dataset(x[:40], y[:40]),
        lambda x, y: (sample for sample in x[:40]),
        lambda x, y: (lambda: ([s[None]] for s in x[:40])),
    ],
    ids=["numpy", "dataset", "generator", "tf-style-callable"],
)
def test_representative_data_forms(pruned_model, digits_split, make):
    (x_train, y_train), _ = digits_split
    result = tflite.convert(
        pruned_model, quantize="int8", representative_data=make(x_train, y_train),
        num_calibration_samples=30, verify_samples=8,
    )
    assert result.verification.passed and result.verification.samples == 8


def test_non_keras_file_and_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="model"):
        tflite.convert(str(tmp_path / "missing.keras"))
    bad = tmp_path / "bad.keras"
    bad.write_text("not a model")
    with pytest.raises(ValueError, match="is not a .keras file: not a zip archive"):
        tflite.convert(str(bad))


def test_converts_a_saved_keras_file(pruned_model, tmp_path):
    source = tmp_path / "pruned.keras"
    pruned_model.save(source)
    result = tflite.convert(str(source), tmp_path / "from_file.tflite")
    assert result.verification.passed


def test_unconvertible_layer_is_named_and_nothing_written(tmp_path):
    import tensorflow as tf

    class SingularValues(keras.layers.Layer):
        def call(self, x):
            return tf.linalg.svd(tf.reshape(x, (-1, 4, 4)), compute_uv=False)

    model = keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(16), SingularValues(name="singular_values"),
         keras.layers.Dense(2)]
    )
    with pytest.raises(tflite.ConversionError, match=r"singular_values.*tf\.Svd"):
        tflite.convert(model, tmp_path / "x.tflite")
    assert os.listdir(tmp_path) == []


def test_inspect_reports_every_weight_and_densify(pruned_model, tmp_path):
    path = tmp_path / "sparse.tflite"
    tflite.convert(pruned_model, path, sparse=True)
    report = tflite.inspect(path)
    assert report.bytes == os.path.getsize(path) and 0 < report.gzip_bytes < report.bytes
    assert report.densify_ops == len(report.tensors) == 3  # conv, hidden, logits
    for info in report.tensors:
        assert info.densify and info.storage == "sparse" and info.dtype == "float32"
        assert 0.79 <= info.zero_fraction <= 0.85
    assert not report.meets_xnnpack_sparse_rules  # no 1x1 convolutions, no MEAN
    assert report.default_delegates[0] is True  # float DENSIFY loads with XNNPACK
    text = str(report)
    assert "DENSIFY x3" in text and "sparse via DENSIFY" in text and "Recommendations" in text
    assert "does not load" not in text


def test_inspect_names_weights_by_keras_layer(pruned_model, digits_split):
    x_train = digits_split[0][0]
    stripped = keras_prune.strip_pruning(pruned_model)
    kernels = {layer.name + "/kernel" for layer in stripped.layers if layer.weights}
    for quantize, sparse in [(None, "auto"), ("dynamic", "auto"), ("int8", "auto"),
                             ("int8", True)]:  # int8 stored sparse: per-channel, encoded
        result = tflite.convert(pruned_model, quantize=quantize, sparse=sparse,
                                representative_data=x_train[:64], verify=False)
        named = {t.layer: t for t in tflite.inspect(result, keras_model=pruned_model).tensors}
        assert set(named) == kernels, (quantize, sparse)
        assert named["hidden/kernel"].shape == (64, 16 * 6 * 6)  # TFLite stores (out, in)
    # A Keras model is converted in memory and names its own weights.
    assert {t.layer for t in tflite.inspect(stripped).tensors} == kernels
    # Without the model, names come from the file, without TensorFlow op suffixes.
    anonymous = tflite.inspect(tflite.convert(stripped, verify=False).content)
    labels = [t.label for t in anonymous.tensors]
    assert all(t.layer is None for t in anonymous.tensors)
    assert not any("MatMul" in label or "Conv2D" in label for label in labels), labels
    assert "keras_model=" in str(anonymous)


def test_benchmark_reports_latency(pruned_model, tmp_path):
    path = tflite.convert(pruned_model, tmp_path / "m.tflite", verify=False).path
    latency = tflite.benchmark(path, num_threads=1, runs=30, warmup=3)
    assert 0 < latency.median_us <= latency.p90_us
    assert latency.runs == 30 and latency.default_delegates


def test_integer_inputs_are_verified_with_integer_samples():
    model = keras.Sequential([keras.Input((6,), dtype="int32"), keras.layers.Embedding(5, 4),
                              keras.layers.Flatten(), keras.layers.Dense(3)])
    result = tflite.convert(model)
    assert result.verification.passed and result.verification.max_abs_diff < 1e-5
    tokens = np.array([[0, 1, 2, 3, 4, 0]], "int32")
    lite = tflite.predict(tflite.load_interpreter(result.content), tokens)
    np.testing.assert_allclose(lite, model.predict(tokens, verbose=0), atol=1e-5)


def test_structured_pruned_mobilenet_converts_smaller_and_verifies(tmp_path):
    from keras_prune.structured import prune_structured

    model = keras.applications.MobileNetV2(weights=None, input_shape=(64, 64, 3), alpha=0.5,
                                           classes=10)
    pruned, report = prune_structured(model, ratio=0.5, round_to=8)
    x = np.random.default_rng(0).uniform(-1, 1, size=(16, 64, 64, 3)).astype("float32")
    dense = tflite.convert(model, verify=False, sparse=False)
    result = tflite.convert(pruned, tmp_path / "pruned.tflite", quantize="int8",
                            representative_data=x, verify_data=x)
    assert result.verification.passed
    smaller = tflite.convert(pruned, verify_data=x)
    assert smaller.verification.passed
    assert smaller.bytes < 0.5 * dense.bytes
    assert report.params_ratio < 0.5


def test_convert_shows_one_progress_line_that_can_be_turned_off(capsys):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    result = tflite.convert(model)
    printed = capsys.readouterr()
    assert re.fullmatch(r"TFLite \(float32\): convert [\d.]+ s, verify in LiteRT [\d.]+ s: "
                        + f"{result.bytes:,} bytes\n", printed.out), printed.out
    assert "XNNPACK delegate" not in printed.out + printed.err  # LiteRT's chatter is silenced
    tflite.convert(model, verbose=0)
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="`verbose` must be 0"):
        tflite.convert(model, verbose=2)


def test_evaluate_rejects_labels_that_are_not_classes():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    content = tflite.convert(model, verify=False, verbose=0).content
    x = np.zeros((3, 4), "float32")
    with pytest.raises(ValueError, match=r"`y` must hold class labels.*0\.5"):
        tflite.evaluate(content, x, np.array([0.5, 1.0, 2.0]))
    assert tflite.evaluate(content, x, np.array([0.0, 1.0, 2.0]))["samples"] == 3


def test_litert_messages_are_split_into_sentences():
    from keras_prune.tflite._runtime import clean_message

    glued = ("failed to delegate FULLY_CONNECTED node #11Node number 16 "
             "(TfLiteXNNPackDelegate) failed to prepare..\n")
    assert clean_message(glued) == ("failed to delegate FULLY_CONNECTED node #11. Node number 16 "
                                    "(TfLiteXNNPackDelegate) failed to prepare.")
    assert clean_message("kept as is... really") == "kept as is... really"


def test_verify_warn_still_refuses_a_file_litert_cannot_load(pruned_model, digits_split, tmp_path):
    (x_train, _), _ = digits_split
    path = tmp_path / "int8.tflite"
    with pytest.raises(tflite.VerificationError, match="Nothing was written") as caught:
        tflite.convert(pruned_model, path, quantize="int8", representative_data=x_train[:64],
                       sparse=True, verify="warn")
    message = str(caught.value)
    assert "Node number" not in message or ". Node number" in message  # no glued sentences
    assert not path.exists()
