import keras
import numpy as np
import pytest

from keras_prune import masking
from keras_prune.masking.m_by_n import check_m_by_n
from keras_prune.masking.magnitude import kth_largest, num_kept


def _np(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.8, 0.95])
def test_magnitude_mask_keeps_exactly_the_k_largest(sparsity):
    weight = np.random.default_rng(0).normal(size=(37, 23)).astype("float32")
    mask, _ = masking.magnitude_mask(weight, sparsity)
    mask = _np(mask)
    k = num_kept(weight.size, sparsity)
    assert int(mask.sum()) == k
    kept = np.abs(weight)[mask == 1]
    dropped = np.abs(weight)[mask == 0]
    if dropped.size:
        assert kept.min() > dropped.max()


def test_kth_largest_matches_numpy_on_both_sides_of_the_split():
    values = np.random.default_rng(1).normal(size=1001).astype("float32")
    for k in (1, 10, 500, 501, 502, 990, 1001):
        assert float(_np(kth_largest(keras.ops.convert_to_tensor(values), k))) == (
            np.sort(values)[::-1][k - 1]
        )


def test_block_mask_drops_whole_blocks():
    weight = np.random.default_rng(2).normal(size=(16, 12)).astype("float32")
    mask = _np(masking.block_mask(weight, 0.5, (4, 3))[0])
    blocks = mask.reshape(4, 4, 4, 3).transpose(0, 2, 1, 3).reshape(16, 12)
    assert set(np.unique(blocks.sum(axis=1))) <= {0.0, 12.0}
    assert mask.mean() == pytest.approx(0.5)


def test_block_mask_pads_uneven_edges_and_max_pooling_works():
    weight = np.random.default_rng(3).normal(size=(10, 7)).astype("float32")
    mask = _np(masking.block_mask(weight, 0.5, (4, 4), "MAX")[0])
    assert mask.shape == (10, 7)
    assert 0.0 < mask.mean() < 1.0


def test_block_mask_rejects_conv_kernels_that_are_not_rank_2_as_tfmot_does():
    weight = np.random.default_rng(4).normal(size=(3, 3, 4, 8)).astype("float32")
    with pytest.raises(ValueError, match="2-dimensional"):
        masking.block_mask(weight, 0.75, (2, 2))


def test_block_mask_squeezes_a_1x1_conv_kernel_to_rank_2_as_tfmot_does():
    weight = np.random.default_rng(4).normal(size=(1, 1, 8, 6)).astype("float32")
    mask = _np(masking.block_mask(weight, 0.5, (2, 2))[0])
    assert mask.shape == weight.shape
    blocks = mask.reshape(4, 2, 3, 2).transpose(0, 2, 1, 3).reshape(12, 4)
    assert set(np.unique(blocks.sum(axis=1))) == {0.0, 4.0}


@pytest.mark.parametrize("shape", [(8, 6), (3, 3, 8, 5), (10, 3)])
def test_m_by_n_mask_has_m_zeros_in_every_group_of_input_channels(shape):
    weight = np.random.default_rng(5).normal(size=shape).astype("float32")
    mask = _np(masking.m_by_n_mask(weight, (2, 4))[0])
    moved = np.moveaxis(mask, -2, -1)
    channels = moved.shape[-1]
    full = channels - channels % 4
    groups = moved[..., :full].reshape(-1, 4)
    assert np.all(groups.sum(axis=1) == 2)
    # Survivors are the two largest of each group.
    magnitudes = np.moveaxis(np.abs(weight), -2, -1)[..., :full].reshape(-1, 4)
    kept_min = np.where(groups == 1, magnitudes, np.inf).min(axis=1)
    dropped_max = np.where(groups == 0, magnitudes, -np.inf).max(axis=1)
    assert np.all(kept_min >= dropped_max)


def test_m_by_n_rejects_m_not_smaller_than_n():
    with pytest.raises(ValueError, match=r"m must be smaller than n.*\(4, 2\)"):
        check_m_by_n((4, 2))
    with pytest.raises(TypeError, match="sparsity_m_by_n"):
        check_m_by_n("2:4")


def test_global_masks_share_one_threshold():
    rng = np.random.default_rng(6)
    small = rng.normal(scale=0.01, size=(50, 10)).astype("float32")
    large = rng.normal(scale=1.0, size=(50, 10)).astype("float32")
    masks, threshold = masking.global_magnitude_masks([small, large], 0.5)
    small_mask, large_mask = (_np(m) for m in masks)
    assert small_mask.sum() + large_mask.sum() == num_kept(1000, 0.5)
    assert small_mask.mean() < 0.1 < 0.9 < large_mask.mean()
    t = float(_np(threshold))
    assert np.all(np.abs(large)[large_mask == 1] >= t)


@pytest.mark.parametrize("host", [True, False])
def test_kth_largest_is_exact_with_linear_selection_and_with_top_k(host, monkeypatch):
    from keras_prune.masking import magnitude

    if not host:  # what accelerators and traced functions use
        monkeypatch.setattr(magnitude, "_host_array", lambda values: None)
    rng = np.random.default_rng(3)
    magnitudes = np.abs(rng.normal(size=1001)).astype("float32")
    magnitudes[rng.permutation(1001)[:600]] = 0.0  # after a mask update: many exact zeros
    for values in (rng.normal(size=1001).astype("float32"), magnitudes):
        ordered = np.sort(values)[::-1]
        for k in (1, 17, 401, 402, 500, 501, 1001):
            result = magnitude.kth_largest(keras.ops.convert_to_tensor(values), k)
            assert float(keras.ops.convert_to_numpy(result)) == ordered[k - 1]
