"""The example scripts run top to bottom on their smoke setting (TF backend)."""

import importlib.util
import os

import keras
import numpy as np
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


def test_migrate_from_tfmot_program_uses_only_tfmot_names(capsys):
    source = open(os.path.join(EXAMPLES, "migrate_from_tfmot.py"), encoding="utf-8").read()
    program = source.split("# --- program (tfmot's, unchanged) ---")[1].split("# --- end")[0]
    assert "keras_prune" not in program and "tfmot.sparsity.keras.prune_low_magnitude" in program
    model, accuracy, log_dir = _load("migrate_from_tfmot").main(["--smoke"])
    assert not keras_prune_wrappers(model)
    kernel = keras.ops.convert_to_numpy(model.layers[2].kernel)
    # As in tfmot, masks change every 100 steps (frequency's default): after 123 steps
    # they were set once, at step 100, to the schedule's 0.7998.
    assert (kernel == 0).mean() == pytest.approx(0.80, abs=0.01)
    assert os.listdir(log_dir)  # PruningSummaries wrote TensorBoard events
    assert "test accuracy" in capsys.readouterr().out


def keras_prune_wrappers(model):
    import keras_prune

    return keras_prune.layers.collect_wrappers(model)


def test_custom_layer():
    final, report, accuracy, same = _load("custom_layer").main(["--smoke"])
    rows = {(r.layer, r.weight): r for r in report.rows}
    assert rows[("scaled", "kernel")].sparsity == pytest.approx(0.75, abs=0.01)
    assert rows[("scaled", "scale")].zeros == 0  # not a prunable weight
    assert rows[("gated", "gate")].sparsity == pytest.approx(0.75, abs=0.01)
    assert same


def test_structured():
    rows, report = _load("structured").main(["--smoke"])
    dense, pruned = rows
    assert pruned["params"] < 0.35 * dense["params"]
    assert pruned["bytes"] < 0.35 * dense["bytes"]
    assert {row.layer: row.after for row in report.layers}["stem"] == 32


def test_sparsity_sweep(tmp_path):
    results, png = _load("sparsity_sweep").main(["--smoke", "--output", str(tmp_path)])
    assert [r["sparsity"] for r in results] == [0.0, 0.5, 0.9]
    sizes = [r["bytes"] for r in results]
    assert sizes[2] < sizes[1] < sizes[0]
    from PIL import Image

    with Image.open(png) as image:
        assert image.format == "PNG"


def test_beyond_magnitude(capsys):
    results, scan, ticket, report = _load("beyond_magnitude").main(["--smoke"])
    assert set(scan.results) == {"h0", "h1", "out"}
    assert abs(ticket.sparsity - 0.9) < 1e-3 and ticket.rounds[0].sparsity == 0.0
    assert report.depth_after <= report.depth_before == 8 and report.max_difference < 1e-4
    assert results["linearize_depth"] == (7, 5)  # two linear layers folded away
    assert 0.1 < results["dense"] <= 1.0
    out = capsys.readouterr().out
    assert "Sensitivity scan" in out and "round 0" in out and "EGP round 2/2" in out


def test_transformers():
    keras_hub = pytest.importorskip("keras_hub")
    results, small, timings = _load("transformers").main(["--smoke"])
    assert type(small) is keras_hub.models.GPT2CausalLM
    assert results["pruned"][0] < 0.6 * results["dense"][0]
    assert all(np.isfinite(bpb) for _, bpb in results.values())
    assert timings["pruned"] > 0 and timings["dense"] > 0


def test_qat_int8(tmp_path):
    output = tmp_path / "qat.tflite"
    accuracy, result, kernels = _load("qat_int8").main(["--smoke", "--output", str(output)])
    assert output.is_file() and result.verification.passed
    assert "output quantization steps" in result.verification.tolerance
    assert abs(accuracy["QAT int8 (LiteRT)"] - accuracy["QAT (Keras)"]) <= 0.01
    assert kernels and min(t.zero_fraction for t in kernels) >= 0.74  # pruned 75%
