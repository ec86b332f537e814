"""keras_prune.plot draws what it is given and writes real image files."""

import keras
import numpy as np
import pytest

import keras_prune
from keras_prune import plot



def _png_size(path):
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_schedule_plots_the_target_sparsity_and_update_steps(tmp_path):
    schedule = keras_prune.schedules.PolynomialDecay(0.0, 0.8, 0, 100, frequency=10)
    ax = plot.schedule(schedule, steps=150)
    line = ax.get_lines()[0]
    assert line.get_xdata()[0] == 1  # the first training batch is step 1, as in tfmot
    np.testing.assert_allclose(line.get_ydata()[[99, 148]], [0.8, 0.8], atol=1e-6)
    updates = ax.get_lines()[1]
    assert list(updates.get_xdata()) == list(range(10, 101, 10))  # no update at step 0
    np.testing.assert_allclose(updates.get_ydata()[-1], 0.8, atol=1e-6)
    width, height = _png_size(plot.save(ax, tmp_path / "schedule.png"))
    assert width > 300 and height > 200


def test_sparsity_plots_one_bar_per_layer(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="a"),
                              keras.layers.Dense(2, name="b")])
    weights = model.get_weights()
    weights[0][:, :4] = 0.0  # half of layer a
    model.set_weights(weights)
    ax = plot.sparsity(model)
    heights = [bar.get_height() for bar in ax.patches]
    assert heights == pytest.approx([0.5, 0.0])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a\n32 w", "b\n16 w"]
    assert [t.get_text() for t in ax.texts] == ["50%", "0%"]  # every bar says what it is
    assert ax.get_ylim() == (0, 1)
    assert _png_size(plot.save(ax, tmp_path / "sparsity.png"))[0] > 300


def test_tradeoff_plots_accuracy_and_size(tmp_path):
    results = [{"sparsity": 0.8, "accuracy": 0.95, "bytes": 200_000},
               {"sparsity": 0.0, "accuracy": 0.97, "bytes": 600_000, "label": "dense"}]
    ax = plot.tradeoff(results, accuracy_label="LiteRT accuracy", size_label=".tflite size")
    line = ax.get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), [0.97, 0.95])
    assert line.get_linestyle() == "None"  # two measurements are not joined by a line
    assert ax.get_ylim()[1] == 1.0  # accuracy never runs past 100%
    assert ax.get_ylabel() == "LiteRT accuracy"
    size_axis = [other for other in ax.figure.axes if other is not ax][0]
    np.testing.assert_allclose(size_axis.get_lines()[0].get_ydata(), [600, 200])
    assert size_axis.get_ylabel() == ".tflite size (kB)"
    legend = ax.get_legend()
    assert legend.get_bbox_to_anchor().y1 < ax.get_window_extent().y0  # below: covers no point
    plot.save(ax, tmp_path / "t.png")
    assert not list(tmp_path.glob(".*tmp*"))


def test_bad_plot_arguments_are_explained():
    with pytest.raises(TypeError, match="`schedule` must be a pruning schedule"):
        plot.schedule(0.5, steps=10)
    with pytest.raises(ValueError, match="`steps` must be an integer >= 1"):
        plot.schedule(keras_prune.schedules.ConstantSparsity(0.5, 0), steps=0)
    with pytest.raises(ValueError, match="'sparsity' and 'accuracy'"):
        plot.tradeoff([{"accuracy": 1.0}])
    with pytest.raises(ValueError, match="no kernel weights"):
        plot.sparsity(keras.Sequential([keras.Input((3,)), keras.layers.ReLU()]))


def test_budget_plots_every_candidate_and_marks_the_chosen_one(tmp_path):
    from keras_prune.structured import prune_to_budget

    inputs = keras.Input((16,))
    hidden = keras.layers.Dense(64, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Dense(64)(hidden)))
    _, report = prune_to_budget(model, params=0.5, round_to=1, steps=4, verbose=0)
    ax = plot.budget(report)
    points = sum(len(line.get_xdata()) for line in ax.get_lines()[:2])
    assert points == len(report.candidates)
    chosen = ax.get_lines()[2]
    assert chosen.get_xdata()[0] == pytest.approx(report.chosen.cost / report.dense_cost)
    assert chosen.get_ydata()[0] == report.chosen.params
    budget_line = ax.get_lines()[3]
    assert budget_line.get_xdata()[0] == pytest.approx(report.target / report.dense_cost)
    width, _ = _png_size(plot.save(ax, tmp_path / "budget.png"))
    assert width > 300
    with pytest.raises(TypeError, match="BudgetReport of keras_prune.structured"):
        plot.budget({"candidates": []})
