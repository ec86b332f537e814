"""keras.applications models prune, run, save, load and convert."""

import keras
import numpy as np
import pytest

from keras_prune.structured import prune_structured, remove_blocks


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).uniform(0, 1, size=(2, 64, 64, 3)).astype("float32")


@pytest.mark.parametrize("name", ["MobileNetV2", "ResNet50"])
def test_application_prunes_runs_saves_and_loads(name, x, tmp_path):
    model = getattr(keras.applications, name)(weights=None, input_shape=(64, 64, 3), classes=10)
    new_model, report = prune_structured(model, ratio=0.5, round_to=8)
    assert report.params_ratio < 0.45 and report.flops_ratio < 0.4
    assert all(row.after % 8 == 0 for row in report.layers if row.before % 8 == 0)
    # Only the classifier (a model output) is frozen.
    assert [name for name, _, _ in report.frozen] == ["predictions"]
    predictions = new_model.predict(x, verbose=0)
    assert predictions.shape == (2, 10)
    path = tmp_path / "pruned.keras"
    new_model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.count_params() == new_model.count_params()
    np.testing.assert_allclose(loaded.predict(x, verbose=0), predictions, rtol=1e-5, atol=1e-6)


def test_resnet50_ratio_zero_is_identical(x):
    model = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=10)
    new_model, _ = prune_structured(model, ratio=0.0)
    np.testing.assert_allclose(new_model.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_mobilenet_blocks_and_channels_prune_together(x):
    model = keras.applications.MobileNetV2(weights=None, input_shape=(64, 64, 3), classes=10)
    fewer_blocks, report = remove_blocks(model, count=3)
    assert len(report.blocks) == 3
    smaller, report = prune_structured(fewer_blocks, ratio=0.3)
    assert smaller.predict(x, verbose=0).shape == (2, 10)
    assert smaller.count_params() < fewer_blocks.count_params() < model.count_params()
