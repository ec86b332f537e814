"""The `keras-prune` command and the main job (`make demo`), on the smoke setting."""

import json

import keras
import numpy as np
import pytest

import keras_prune
import keras_prune_cli as cli


def test_demo_smoke_writes_models_and_summary(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--smoke", "--output", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sparsity_report"]["sparsity"] == pytest.approx(0.8, abs=0.01)
    assert 0.0 <= summary["pruned_test_accuracy"] <= 1.0
    model = keras.saving.load_model(out / "pruned.keras")
    assert not keras_prune.layers.collect_wrappers(model)
    kernel = keras.ops.convert_to_numpy(model.get_layer("dense").kernel)
    assert (kernel == 0).mean() == pytest.approx(0.8, abs=0.01)
    assert not list(out.glob(".*tmp*")), "temporary files left behind"
    # Both models are saved the same way (no optimizer state): same-size files.
    dense_bytes, pruned_bytes = ((out / f).stat().st_size for f in ("dense.keras", "pruned.keras"))
    assert abs(dense_bytes - pruned_bytes) < 0.05 * dense_bytes
    assert pruned_bytes < 1.2 * 4 * model.count_params()  # float32 weights, no Adam slots
    printed = capsys.readouterr().out
    assert "Dense accuracy" in printed and "sparsity" in printed
    rows = {row["file"]: row for row in summary["tflite"]}
    assert set(rows) == {"dense_float.tflite", "dense_int8.tflite", "pruned_float.tflite",
                         "pruned_sparse_float.tflite", "pruned_int8.tflite"}
    assert all(row["verified"] for row in rows.values())
    for name, row in rows.items():
        assert (out / name).stat().st_size == row["bytes"]
    # Sparse encoding shrinks the pruned float file; the float files score as in Keras.
    assert rows["pruned_sparse_float.tflite"]["bytes"] < 0.4 * rows["pruned_float.tflite"]["bytes"]
    assert rows["pruned_float.tflite"]["litert_accuracy"] == rows["pruned_float.tflite"]["keras_accuracy"]
    assert "LiteRT acc" in printed
    # The plots are real PNG images of a sensible size.
    from PIL import Image

    for name in ("schedule.png", "sparsity.png", "tradeoff.png"):
        assert name in summary["files"]
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.width >= 400 and image.height >= 250


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


@pytest.fixture
def saved_model_and_data(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3)])
    path = tmp_path / "m.keras"
    model.save(path)
    x = np.random.default_rng(0).standard_normal((50, 6)).astype("float32")
    y = np.argmax(model.predict(x, verbose=0), -1)
    np.savez(tmp_path / "calibration.npz", x=x)
    np.savez(tmp_path / "test.npz", x=x, y=y)
    return path, tmp_path


def test_export_inspect_evaluate_commands(saved_model_and_data, capsys):
    path, folder = saved_model_and_data
    out = folder / "m.tflite"
    cli.main(["export", str(path), "-o", str(out), "--quantize", "int8",
              "--calibration", str(folder / "calibration.npz")])
    assert out.is_file() and "verification passed" in capsys.readouterr().out
    cli.main(["inspect", str(out)])
    printed = capsys.readouterr().out
    assert "FULLY_CONNECTED" in printed and "int8" in printed and "Recommendations" in printed
    cli.main(["inspect", str(out), "--keras", str(path)])
    printed = capsys.readouterr().out
    kernels = [w.path for w in keras.saving.load_model(path).weights if len(w.shape) == 2]
    assert len(kernels) == 2 and all(name in printed for name in kernels)  # Keras' names
    cli.main(["evaluate", str(out), "--data", str(folder / "test.npz"), "--keras", str(path)])
    printed = capsys.readouterr().out
    accuracy = float(printed.split("LiteRT accuracy ")[1].split(",")[0])
    assert accuracy >= 0.9  # labels are the float model's own predictions
    keras_accuracy = float(printed.split("Keras accuracy ")[1].split(";")[0])
    assert keras_accuracy == 1.0  # side by side with the model it came from
    cli.main(["inspect", str(path)])  # a .keras file: converted in memory, named by Keras
    printed = capsys.readouterr().out
    assert "FULLY_CONNECTED" in printed and all(name in printed for name in kernels)
    cli.main(["benchmark", str(out), "--runs", "5", "--warmup", "1"])
    assert "us" in capsys.readouterr().out
    np.savez(folder / "regression.npz", x=np.zeros((4, 6), "float32"), y=[0.2, 1.5, 0.1, 2.0])
    with pytest.raises(SystemExit, match=r"--data: array `y` must hold class labels.*0\.2"):
        cli.main(["evaluate", str(out), "--data", str(folder / "regression.npz")])


def test_export_and_inspect_errors_are_one_line_messages(saved_model_and_data):
    path, folder = saved_model_and_data
    np.savez(folder / "wrong.npz", x=np.zeros((5, 7), "float32"))
    with pytest.raises(SystemExit, match=r"keras-prune export: --calibration.*\(5, 7\).*expects \(6,\)"):
        cli.main(["export", str(path), "-o", str(folder / "a.tflite"), "--quantize", "int8",
                  "--calibration", str(folder / "wrong.npz")])
    np.savez(folder / "named.npz", a=np.zeros((5, 6), "float32"), b=np.zeros((5, 6), "float32"))
    with pytest.raises(SystemExit, match=r"--calibration: .* has no array 'x' \(it has \['a', 'b'\]"):
        cli.main(["export", str(path), "-o", str(folder / "a.tflite"), "--quantize", "int8",
                  "--calibration", str(folder / "named.npz")])
    with pytest.raises(SystemExit, match="--calibration is only used with --quantize int8"):
        cli.main(["export", str(path), "-o", str(folder / "a.tflite"),
                  "--calibration", str(folder / "named.npz")])
    with pytest.raises(SystemExit, match="keras-prune export: --quantize int8 needs --calibration"):
        cli.main(["export", str(path), "-o", str(folder / "a.tflite"), "--quantize", "int8"])
    with pytest.raises(SystemExit, match="--calibration: no such file"):
        cli.main(["export", str(path), "-o", str(folder / "a.tflite"), "--quantize", "int8",
                  "--calibration", str(folder / "missing.npz")])
    with pytest.raises(SystemExit, match="keras-prune export: .*no such file"):
        cli.main(["export", str(folder / "missing.keras"), "-o", str(folder / "a.tflite")])
    (folder / "corrupt.tflite").write_bytes(b"garbage garbage")
    with pytest.raises(SystemExit, match="keras-prune inspect: .*not a .tflite file"):
        cli.main(["inspect", str(folder / "corrupt.tflite")])
    with pytest.raises(SystemExit, match="keras-prune evaluate: .*no such file"):
        cli.main(["evaluate", str(folder / "missing.tflite"), "--data", str(folder / "test.npz")])
    assert not (folder / "a.tflite").exists()


def test_shrink_command_saves_a_smaller_model_and_explains_bad_input(tmp_path, capsys):
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(x))
    path, out = tmp_path / "m.keras", tmp_path / "small.keras"
    model.save(path)
    np.savez(tmp_path / "x.npz", x=np.ones((4, 6, 6, 1), "float32"))
    assert cli.main(["shrink", str(path), "-o", str(out), "--ratio", "0.5",
                     "--importance", "activation", "--data", str(tmp_path / "x.npz")]) == 0
    small = keras.saving.load_model(out)
    assert small.get_layer("conv").filters == 4
    assert "params:" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["shrink", str(path), "-o", str(out), "--ratio", "1.5"])
    assert "--ratio: expected a fraction in [0, 1)" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="needs --data: .*an .npz with array x"):
        cli.main(["shrink", str(path), "-o", str(out), "--importance", "entropy"])
    with pytest.raises(SystemExit, match="no such file"):
        cli.main(["shrink", str(tmp_path / "missing.keras"), "-o", str(out)])


def _console(*args, cwd=None):
    """Runs the installed `keras-prune` console script; returns (code, stdout, stderr)."""
    import os
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(sys.executable), "keras-prune")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    done = subprocess.run([script, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300)
    return done.returncode, done.stdout, done.stderr


def test_help_version_and_argument_errors_do_not_load_keras():
    import subprocess
    import sys

    code = ("import sys, keras_prune_cli\n"
            "for argv in (['--help'], ['--version'], ['demo', '--sparsity', '1.5']):\n"
            "    try:\n"
            "        keras_prune_cli.main(argv)\n"
            "    except SystemExit:\n"
            "        pass\n"
            "print('loaded:', 'keras' in sys.modules, 'tensorflow' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.strip().endswith("loaded: False False"), done.stdout + done.stderr
    assert "0.8 removes 80%), got 1.5" in done.stderr


def test_console_strip_verb_and_version(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d")])
    pruned = keras_prune.prune_low_magnitude(model)
    pruned.save(tmp_path / "pruned.keras")
    code, out, _ = _console("strip", str(tmp_path / "pruned.keras"), "-o",
                            str(tmp_path / "plain.keras"))
    assert code == 0 and "Saved" in out
    assert not keras_prune.layers.collect_wrappers(keras.saving.load_model(tmp_path / "plain.keras"))
    code, out, _ = _console("--version")
    assert code == 0 and out.startswith("keras-prune ")


@pytest.mark.parametrize(
    "args, message",
    [
        (["export", "{model}", "-o", "{tmp}"], "is a directory"),
        (["export", "{model}", "-o", "{tmp}/missing/x.tflite"], "does not exist"),
        (["export", "{model}", "-o", ""], "output path is empty"),
        (["shrink", "{model}", "-o", "{tmp}/s.tflite"], "must end in .keras"),
        (["export", "{model}", "-o", "{tmp}/m.tflite", "--quantize", "int8"], "--calibration"),
        (["report", "{tmp}/garbage.keras"], "is not a .keras file"),
        (["evaluate", "{tmp}/m.tflite", "--data", "{tmp}/d.npz", "--batch-size", "0"],
         "expected a number >= 1"),
        (["demo", "--sparsity", "1.5", "--output", "{tmp}/demo"], "(0.8 removes 80%), got"),
        (["export", "{model}", "-o", "/proc/x.tflite"], "cannot write /proc/x.tflite"),
        (["shrink", "{model}", "-o", "/sys/out.keras"], "cannot write /sys/out.keras"),
        (["strip", "{model}", "-o", "/sys/out.keras"], "cannot write /sys/out.keras"),
    ],
)
def test_cli_errors_name_the_flag_and_leave_no_file(tmp_path, capsys, args, message):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.save(tmp_path / "model.keras")
    (tmp_path / "garbage.keras").write_bytes(b"\x00not a zip")
    before = sorted(p.name for p in tmp_path.iterdir())
    filled = [a.format(model=tmp_path / "model.keras", tmp=tmp_path) for a in args]
    with pytest.raises(SystemExit) as info:
        cli.main(filled)
    shown = str(info.value.code) + capsys.readouterr().err
    assert info.value.code != 0 and message in shown
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_console_script_errors_are_one_line_without_traceback(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.save(tmp_path / "model.keras")
    code, out, err = _console("export", str(tmp_path / "model.keras"), "-o", str(tmp_path))
    lines = [line for line in err.splitlines() if line.startswith("keras-prune")]
    assert code == 1 and lines == [
        f"keras-prune export: -o/--output: {tmp_path} is a directory; give a file name such as "
        f"{tmp_path / 'model.tflite'}"
    ]
    assert "Traceback" not in err and not out


def test_files_of_the_wrong_kind_are_named_as_such(saved_model_and_data):
    path, folder = saved_model_and_data
    tflite_file = folder / "m.tflite"
    keras_prune.tflite.convert(str(path), tflite_file, verify=False, verbose=0)
    (folder / "truncated.keras").write_bytes(path.read_bytes()[:300])
    np.savez(folder / "objects.npz", x=np.array([np.zeros(2), np.zeros(3)], dtype=object),
             y=np.array([0, 1]))
    with pytest.raises(SystemExit, match=r"^keras-prune export: '.*m.tflite' is not a .keras "
                                         r"file: a .tflite file"):
        cli.main(["export", str(tflite_file), "-o", str(folder / "x.tflite")])
    with pytest.raises(SystemExit, match="truncated.keras' is not a .keras file: not a zip"):
        cli.main(["strip", str(folder / "truncated.keras"), "-o", str(folder / "x.keras")])
    with pytest.raises(SystemExit, match="--data: .*objects.npz holds object arrays"):
        cli.main(["evaluate", str(tflite_file), "--data", str(folder / "objects.npz")])
    assert not (folder / "x.tflite").exists() and not (folder / "x.keras").exists()


def test_console_names_a_tflite_given_where_a_keras_file_belongs(saved_model_and_data):
    path, folder = saved_model_and_data
    tflite_file = folder / "m.tflite"
    keras_prune.tflite.convert(str(path), tflite_file, verify=False, verbose=0)
    before = sorted(p.name for p in folder.iterdir())
    code, out, err = _console("shrink", str(tflite_file), "-o", str(folder / "s.keras"))
    assert code != 0 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("keras-prune")]
    assert len(lines) == 1 and "is not a .keras file: a .tflite file" in lines[0]
    assert sorted(p.name for p in folder.iterdir()) == before


def test_export_of_a_quantization_aware_model_needs_no_calibration(tmp_path, capsys):
    from keras_prune import quantization

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3)])
    qat = quantization.quantize_model(model)
    qat.compile("adam", "mse")
    x = np.random.default_rng(0).standard_normal((64, 6)).astype("float32")
    qat.fit(x, np.zeros((64, 3)), verbose=0)
    path, out = tmp_path / "qat.keras", tmp_path / "qat.tflite"
    qat.save(path)
    cli.main(["export", str(path), "-o", str(out), "--quantize", "int8", "--int8-io"])
    printed = capsys.readouterr().out
    assert out.is_file() and "output quantization steps" in printed


def test_a_missing_input_file_is_named_before_keras_loads(tmp_path):
    import subprocess
    import sys

    code = ("import sys, keras_prune_cli\n"
            "try:\n"
            f"    keras_prune_cli.main(['export', {str(tmp_path / 'none.keras')!r}, '-o', 'x.tflite'])\n"
            "except SystemExit as exit:\n"
            "    print(exit.code)\n"
            "print('loaded:', 'keras' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert "keras-prune export: model: no such file" in done.stdout
    assert done.stdout.strip().endswith("loaded: False")


def test_convert_and_the_cli_agree_that_the_folder_must_exist(tmp_path):
    pytest.importorskip("tensorflow")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    with pytest.raises(FileNotFoundError, match="folder .*missing does not exist"):
        keras_prune.tflite.convert(model, str(tmp_path / "missing" / "x.tflite"), verbose=0)
    assert not (tmp_path / "missing").exists()


def test_shrink_to_a_budget(tmp_path, capsys):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16,))
    h = keras.layers.Dense(64, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Dense(64, activation="relu")(h)))
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "calibration.npz", x=np.random.default_rng(0).normal(size=(64, 16)))
    out = tmp_path / "small.keras"
    assert cli.main(["shrink", str(tmp_path / "m.keras"), "-o", str(out), "--params", "0.5",
                     "--calibration", str(tmp_path / "calibration.npz"), "-q"]) == 0
    assert keras.saving.load_model(out).count_params() <= 0.5 * model.count_params()
    assert "widths: sensitivity, params priced" in capsys.readouterr().out
    assert cli.main(["shrink", str(tmp_path / "m.keras"), "-o", str(out), "--params", "0.5",
                     "--calibration", str(tmp_path / "calibration.npz"), "-q",
                     "--group-costs", "none"]) == 0
    assert keras.saving.load_model(out).count_params() <= 0.5 * model.count_params()
    assert "widths: sensitivity\n" in capsys.readouterr().out  # the tolerance rule
    with pytest.raises(SystemExit, match="--group-costs prices .* pass --calibration"):
        cli.main(["shrink", str(tmp_path / "m.keras"), "-o", str(out), "--params", "0.5",
                  "--group-costs", "flops"])
    with pytest.raises(SystemExit, match="budget .* leave out --ratio"):
        cli.main(["shrink", str(tmp_path / "m.keras"), "-o", str(out), "--flops", "0.5",
                  "--ratio", "0.3"])
    with pytest.raises(SystemExit):
        cli.main(["shrink", str(tmp_path / "m.keras"), "-o", str(out), "--flops", "0.5",
                  "--params", "0.3"])
