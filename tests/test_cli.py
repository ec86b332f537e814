"""The `keras-prune` command and the main job (`make demo`), on the smoke setting."""

import json

import keras
import numpy as np
import pytest

import keras_prune
from keras_prune import cli


def test_demo_smoke_writes_models_and_summary(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--smoke", "--output", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sparsity_report"]["sparsity"] == pytest.approx(0.8, abs=0.01)
    assert 0.0 <= summary["pruned_test_accuracy"] <= 1.0
    model = keras.saving.load_model(out / "pruned.keras")
    assert not keras_prune.callbacks.mask_updater.collect_wrappers(model)
    kernel = keras.ops.convert_to_numpy(model.get_layer("dense").kernel)
    assert (kernel == 0).mean() == pytest.approx(0.8, abs=0.01)
    assert not list(out.glob(".*tmp*")), "temporary files left behind"
    printed = capsys.readouterr().out
    assert "Dense accuracy" in printed and "sparsity" in printed


def test_report_command_prints_the_table_and_rejects_missing_files(tmp_path, capsys):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d")])
    weights = model.get_weights()
    weights[0][:2] = 0.0
    model.set_weights(weights)
    path = tmp_path / "m.keras"
    model.save(path)
    cli.main(["report", str(path)])
    assert "d  " in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no such file"):
        cli.main(["report", str(tmp_path / "missing.keras")])


def test_atomic_save_leaves_previous_file_untouched_on_failure(tmp_path):
    from keras_prune import _io

    target = tmp_path / "summary.json"
    target.write_text("previous")
    with pytest.raises(TypeError):
        _io.write_json({"bad": object()}, target)
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
