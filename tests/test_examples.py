"""The example scripts run top to bottom on their smoke setting (TF backend)."""

import importlib.util
import os

import keras
import pytest

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="the examples export TFLite in-process")

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


def _load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart(tmp_path, capsys):
    rows = _load("quickstart").main(["--smoke", "--output", str(tmp_path)])
    (_, dense_bytes, dense_gzip, _, _), (_, pruned_bytes, pruned_gzip, keras_acc, lite_acc) = rows
    assert pruned_gzip < 0.5 * dense_gzip  # 80% zeros compress
    assert abs(keras_acc - lite_acc) < 1e-6
    assert (tmp_path / "pruned.tflite").stat().st_size == pruned_bytes
    assert "LiteRT acc" in capsys.readouterr().out


def test_tflite_int8(tmp_path):
    output = tmp_path / "m.tflite"
    result, keras_acc, lite_acc = _load("tflite_int8").main(["--smoke", "--output", str(output)])
    assert output.is_file() and result.verification.passed
    from keras_prune import tflite

    report = tflite.inspect(output)
    assert report.densify_ops <= 1  # only a conv weight may go through DENSIFY
    assert any(t.storage == "sparse, block 1x16" for t in report.tensors)
    assert abs(keras_acc - lite_acc) <= 0.03
