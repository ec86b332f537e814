"""Residual block removal."""

import keras
import numpy as np
import pytest

from keras_prune.structured import find_residual_blocks, remove_blocks

L = keras.layers


def resnet(blocks=3):
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inputs)
    for i in range(blocks):
        y = L.Conv2D(8, 3, padding="same", activation="relu", name=f"b{i}_c1")(x)
        y = L.Conv2D(8, 3, padding="same", name=f"b{i}_c2")(y)
        x = L.Add(name=f"b{i}_add")([x, y])
    projection = L.Conv2D(4, 1, name="proj")(x)
    y = L.Conv2D(4, 3, padding="same", name="not_skip")(x)
    x = L.Add(name="projected_add")([projection, y])  # no identity skip: not removable
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(2, name="out")(x))


def test_find_residual_blocks_lists_identity_blocks_only():
    blocks = find_residual_blocks(resnet())
    assert [b.name for b in blocks] == ["b0_add", "b1_add", "b2_add"]
    assert blocks[1].layers == ["b1_c1", "b1_c2"]


def test_removing_a_block_whose_branch_is_zero_keeps_predictions():
    model = resnet()
    layer = model.get_layer("b1_c2")
    layer.set_weights([w * 0 for w in layer.get_weights()])
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype("float32")
    new_model, report = remove_blocks(model, count=1, importance="l1")
    assert [name for name, _ in report.blocks] == ["b1_add"]
    names = {layer.name for layer in new_model.layers}
    assert "b1_c1" not in names and "b1_add" not in names and "b0_c1" in names
    assert new_model.count_params() == model.count_params() - sum(
        model.get_layer(n).count_params() for n in ("b1_c1", "b1_c2"))
    np.testing.assert_allclose(new_model.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    new_model, report = remove_blocks(model, count=1, importance="activation", data=x)
    assert [name for name, _ in report.blocks] == ["b1_add"]


def test_remove_named_blocks_and_bad_arguments():
    model = resnet()
    new_model, report = remove_blocks(model, blocks=["b0_add", "b2_add"])
    assert len(report.blocks) == 2 and report.flops_after < report.flops_before
    with pytest.raises(ValueError, match="projected_add"):
        remove_blocks(model, blocks=["projected_add"])
    with pytest.raises(ValueError, match="at most the number"):
        remove_blocks(model, count=4)
    with pytest.raises(ValueError, match="importance"):
        remove_blocks(model, count=1, importance="taylor")
