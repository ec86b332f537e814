"""Bad input gets a clear error that says what to do."""

import keras
import numpy as np
import pytest

import keras_prune
from keras_prune.structured import StructuredPruner, prune_structured, register_rule
from tests.structured import models


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5])
def test_ratio_outside_unit_interval(ratio):
    with pytest.raises(ValueError, match=r"`ratio` must be in \[0, 1\)"):
        prune_structured(models.sequential_mlp(), ratio=ratio)


def test_ratio_of_wrong_type_and_unknown_layer_names():
    model = models.sequential_mlp()
    with pytest.raises(TypeError, match="`ratio` must be a number"):
        prune_structured(model, ratio="half")
    with pytest.raises(ValueError, match="'nope', which is not in the model"):
        prune_structured(model, ratio={"nope": 0.5})
    with pytest.raises(ValueError, match=r"ratio\['h1'\]"):
        prune_structured(model, ratio={"h1": 2.0})
    with pytest.raises(ValueError, match="`ignore` names layer 'x'"):
        prune_structured(model, ignore=["x"])
    with pytest.raises(ValueError, match="global_ranking=True"):
        prune_structured(model, ratio={"h1": 0.5}, global_ranking=True)
    with pytest.raises(ValueError, match="round_to"):
        prune_structured(model, round_to=0)


def test_unknown_importance_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"one of \['activation', 'apoz', .*'l1'"):
        prune_structured(models.sequential_mlp(), importance="l3")
    with pytest.raises(TypeError, match="importance"):
        prune_structured(models.sequential_mlp(), importance=3)


def test_subclassed_model_explains_what_to_do_instead():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(8)
            self.out = keras.layers.Dense(2)

        def call(self, x):
            return self.out(self.hidden(x))

    net = Net()
    net(np.zeros((1, 4), "float32"))
    with pytest.raises(ValueError, match="subclassed model.*Functional API.*prune_low_magnitude"):
        prune_structured(net)


def test_unbuilt_wrapped_and_non_model_inputs():
    unbuilt = keras.Sequential([keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="not built"):
        prune_structured(unbuilt)
    wrapped = keras_prune.prune_low_magnitude(models.sequential_mlp())
    with pytest.raises(ValueError, match="strip_pruning"):
        prune_structured(wrapped)
    with pytest.raises(TypeError, match="keras.Model"):
        prune_structured(keras.layers.Dense(3))


def test_data_of_the_wrong_shape_names_the_input():
    with pytest.raises(ValueError, match=r"`data` must be an array of samples shaped \(n, 10\)"):
        prune_structured(models.sequential_mlp(), importance="activation",
                         data=np.zeros((4, 3), "float32"))


def test_argument_errors_come_before_the_progress_line(capsys):
    for kwargs in ({"importance": "activation"}, {"ratio": 1.0}):
        with pytest.raises(ValueError):
            prune_structured(models.sequential_mlp(), **kwargs)
        assert capsys.readouterr().out == ""  # no "dependency graph failed" first


def test_bad_interactive_edits_are_refused():
    pruner = StructuredPruner(models.sequential_mlp(), ratio=0.5)
    group = next(pruner.interactive())
    group.remove = list(range(group.size))
    with pytest.raises(ValueError, match="keep at least one"):
        pruner.apply()
    group.remove = [0, 0]
    with pytest.raises(ValueError, match="distinct channel indices"):
        pruner.apply()
    frozen = [g for g in pruner.groups if g.frozen][0]
    group.skip()
    frozen.remove = [0]
    with pytest.raises(ValueError, match="frozen"):
        pruner.apply()


def test_criterion_returning_the_wrong_shape():
    with pytest.raises(ValueError, match="must return 12 finite scores"):
        prune_structured(models.sequential_mlp(), ratio={"h1": 0.5},
                         importance=lambda group: np.ones(3))


def test_register_rule_checks_its_arguments():
    with pytest.raises(TypeError, match="layer_class"):
        register_rule("Dense", None)
    with pytest.raises(TypeError, match="Rule instance"):
        register_rule(keras.layers.Dense, object())


def test_prune_structured_progress_line_and_ratio_hint(capsys):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(2)])
    keras_prune.structured.prune_structured(model, 0.5)
    printed = capsys.readouterr().out
    assert printed.startswith("Structured pruning: dependency graph") and printed.count("\n") == 1
    assert "score 2 channel groups" in printed and "rebuild" in printed  # hidden + output
    keras_prune.structured.prune_structured(model, 0.5, verbose=0)
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="ratio of 0.5 removes half of the channels"):
        keras_prune.structured.prune_structured(model, 1.0)


class _ConvBlock(keras.layers.Layer):
    """A custom layer that makes its Conv2D in __init__ (no structured-pruning rule)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(8, 3, padding="same", name="inner_conv")

    def build(self, input_shape):
        self.conv.build(input_shape)

    def call(self, x):
        return keras.ops.relu(self.conv(x))


def test_report_names_custom_layers_whose_inner_layers_are_not_pruned():
    inputs = keras.Input((8, 8, 3))
    hidden = _ConvBlock(name="block")(keras.layers.Conv2D(16, 3, padding="same")(inputs))
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(hidden))
    _, report = prune_structured(keras.Model(inputs, outputs), 0.5, verbose=0)
    assert report.opaque == [("block", "_ConvBlock", ["inner_conv"])]
    assert "not pruned: `block` (_ConvBlock)" in str(report) and "inner_conv" in str(report)
    assert report.to_dict()["opaque"][0]["inner_layers"] == ["inner_conv"]


def test_empty_data_is_refused_instead_of_pruning_anyway():
    model = models.sequential_mlp()
    x = np.zeros((0,) + tuple(model.inputs[0].shape[1:]), "float32")
    with pytest.raises(ValueError, match="`data` holds no samples"):
        prune_structured(model, importance="activation", data=x, verbose=0)
    with pytest.raises(ValueError, match="`data` holds no samples"):
        keras_prune.structured.distill(models.sequential_mlp(), model, x)


def test_distill_names_an_output_width_mismatch():
    inputs = keras.Input((4,))
    teacher = keras.Model(inputs, keras.layers.Dense(5)(inputs))
    student = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    with pytest.raises(ValueError, match=r"student's outputs \(\[3\].*teacher's \(\[5\]\)"):
        keras_prune.structured.distill(student, teacher, np.zeros((8, 4), "float32"))
