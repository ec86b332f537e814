"""keras_hub CNN backbones and their Tasks: smaller config, same class, same function."""

import keras
import numpy as np
import pytest

from keras_prune import structured

keras_hub = pytest.importorskip("keras_hub")
M = keras_hub.models
IMAGE = (32, 32, 3)

BACKBONES = {
    "ResNet": lambda: M.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 64],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2],
        block_type="bottleneck_block", image_shape=IMAGE),
    "VGG": lambda: M.VGGBackbone(stackwise_num_repeats=[1, 1], stackwise_num_filters=[16, 32],
                                 image_shape=IMAGE),
    "DenseNet": lambda: M.DenseNetBackbone(stackwise_num_repeats=[2, 2], image_shape=IMAGE),
    "EfficientNet": lambda: M.EfficientNetBackbone(
        stackwise_kernel_sizes=[3, 3], stackwise_num_repeats=[1, 1],
        stackwise_input_filters=[32, 16], stackwise_output_filters=[16, 24],
        stackwise_expansion_ratios=[1, 6], stackwise_strides=[1, 2],
        stackwise_squeeze_and_excite_ratios=[0.25, 0.25], stackwise_block_types=["v1", "v1"],
        stackwise_force_input_filters=[0, 0], stackwise_nores_option=[False, False],
        width_coefficient=1.0, depth_coefficient=1.0, input_shape=IMAGE),
    "Xception": lambda: M.XceptionBackbone(
        stackwise_conv_filters=[[32, 64], [128, 128], [256, 256]],
        stackwise_pooling=[False, True, False], image_shape=IMAGE),
}

# Its blocks are custom layers the dependency graph cannot see into: refused.
MOBILENET = lambda: M.MobileNetBackbone(  # noqa: E731
    # the second stage's two blocks are tied by a residual sum
    stackwise_expansion=[[1], [4, 3]], stackwise_num_blocks=[1, 2],
    stackwise_num_filters=[[16], [24, 24]], stackwise_kernel_size=[[3], [3, 3]],
    stackwise_num_strides=[[2], [2, 1]], stackwise_se_ratio=[[None], [None, None]],
    stackwise_activation=[["relu"], ["relu", "relu"]], stackwise_padding=[[1], [1, 1]],
    output_num_filters=64, depthwise_filters=8, depthwise_stride=2,
    depthwise_residual=False, last_layer_filter=32, input_num_filters=16,
    image_shape=IMAGE)

# Its stages split an expanded width in halves that later meet a block's output again
CSPNET = lambda: M.CSPNetBackbone(  # noqa: E731
    stem_filters=16, stem_kernel_size=3, stem_strides=1, stackwise_strides=2,
    stackwise_depth=[1, 1], stackwise_num_filters=[16, 32], image_shape=IMAGE,
    down_growth=True, bottle_ratio=(0.5, 1.0), block_ratio=(1.0, 0.5),
    expand_ratio=(2.0, 1.0), block_type="dark_block", stage_type="csp",
    stem_padding="same")

# Each block concatenates its input and every layer's output before one 1x1 convolution;
# a stage's output width is the next stage's input width (two entries, set together)
HGNETV2 = lambda: M.HGNetV2Backbone(  # noqa: E731
    embedding_size=32, stem_channels=[3, 16, 32], hidden_act="relu",
    use_learnable_affine_block=False, image_shape=IMAGE, depths=[1, 2],
    hidden_sizes=[64, 128], stackwise_stage_filters=[[32, 16, 64, 1, 3, 3],
                                                     [64, 32, 128, 2, 3, 3]],
    apply_downsample=[False, True], use_lightweight_conv_block=[False, False])


def _images(n=2):
    return np.random.default_rng(0).random((n,) + IMAGE).astype("float32")


def _reloads_equal(model, x, tmp_path):
    path = str(tmp_path / "model.keras")
    model.save(path)
    again = keras.saving.load_model(path)
    assert type(again) is type(model)
    for a, b in zip(keras.tree.flatten(again(x)), keras.tree.flatten(model(x))):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b),
                                   atol=1e-5)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_cnn_backbone_shrinks_through_its_config_and_keeps_its_class(name, tmp_path):
    keras.utils.set_random_seed(0)
    model = BACKBONES[name]()
    smaller, report = structured.prune_structured(model, 0.5, verbose=0)
    assert type(smaller) is type(model)
    assert smaller.count_params() < 0.9 * model.count_params()
    assert any("config:" in note and "->" in note for note in report.notes)
    assert keras.ops.convert_to_numpy(smaller(_images())).shape[:-1] == (
        keras.ops.convert_to_numpy(model(_images())).shape[:-1])
    _reloads_equal(smaller, _images(), tmp_path)


def test_the_smaller_vgg_computes_the_dense_one_with_the_removed_filters_zeroed():
    """VGG is conv + ReLU + pooling: a filter zeroed (kernel and bias) outputs zeros, which
    is what removing it does, so the two must agree on the kept channels."""
    keras.utils.set_random_seed(0)
    model = BACKBONES["VGG"]()
    smaller, _ = structured.prune_structured(model, 0.5, verbose=0)
    dense_convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    small_convs = [l for l in smaller.layers if isinstance(l, keras.layers.Conv2D)]
    kept_inputs = np.arange(3)
    for dense, small in zip(dense_convs, small_convs):
        kernel = keras.ops.convert_to_numpy(dense.kernel)[:, :, kept_inputs, :]
        small_kernel = keras.ops.convert_to_numpy(small.kernel)
        kept = [next(c for c in range(kernel.shape[-1])
                     if np.array_equal(kernel[..., c], small_kernel[..., j]))
                for j in range(small_kernel.shape[-1])]
        zeroed_kernel = keras.ops.convert_to_numpy(dense.kernel).copy()
        zeroed_bias = keras.ops.convert_to_numpy(dense.bias).copy()
        removed = np.setdiff1d(np.arange(kernel.shape[-1]), kept)
        zeroed_kernel[..., removed] = 0.0
        zeroed_bias[removed] = 0.0
        dense.kernel.assign(zeroed_kernel)
        dense.bias.assign(zeroed_bias)
        kept_inputs = np.array(kept)
    dense_out = keras.ops.convert_to_numpy(model(_images()))[..., kept_inputs]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(smaller(_images())), dense_out,
                               rtol=1e-5, atol=1e-6)


def test_image_classifier_task_keeps_its_head_and_class(tmp_path):
    keras.utils.set_random_seed(0)
    task = M.ResNetImageClassifier(backbone=BACKBONES["ResNet"](), num_classes=5)
    smaller, report = structured.prune_structured(task, 0.5, verbose=0)
    assert type(smaller) is M.ResNetImageClassifier
    assert type(smaller.backbone) is M.ResNetBackbone
    assert smaller.count_params() < 0.7 * task.count_params()
    assert keras.ops.convert_to_numpy(smaller(_images())).shape == (2, 5)  # classes kept
    _reloads_equal(smaller, _images(), tmp_path)


def test_families_the_config_cannot_express_are_refused_with_the_reason():
    mit = M.MiTBackbone(layerwise_depths=[1, 1], num_layers=2, layerwise_num_heads=[1, 2],
                        layerwise_sr_ratios=[2, 1], max_drop_path_rate=0.0,
                        layerwise_patch_sizes=[7, 3], layerwise_strides=[4, 2],
                        image_shape=IMAGE, hidden_dims=[8, 16])
    # both paths' reasons: the graph's custom layers, then the entries' failed check
    with pytest.raises(NotImplementedError, match="MiTBackbone .*cannot see into.*Its config "
                                                  "entries alone: .*removed channels zeroed.*"
                                                  "prune_low_magnitude"):
        structured.prune_structured(mit, 0.5, verbose=0)
    resnet = BACKBONES["ResNet"]()
    _, report = structured.prune_structured(resnet, 0.5, verbose=0)
    assert any("kept stackwise_num_filters[0]=64" in note and "must be 64" in note
               for note in report.notes)
    with pytest.raises(ValueError, match="`heads` applies to keras_hub transformers"):
        structured.prune_structured(resnet, 0.5, heads=0.5, verbose=0)


def test_a_model_where_nothing_would_shrink_is_refused_not_returned_unchanged():
    rwkv = M.RWKV7Backbone(hidden_size=16, head_size=8, num_layers=2, vocabulary_size=50,
                           intermediate_dim=32, gate_lora=8, mv_lora=8, aaa_lora=8, decay_lora=8)
    with pytest.raises(NotImplementedError, match="Nothing of RWKV7Backbone shrank: heads kept"):
        structured.prune_structured(rwkv, 0.5, units=0.0, verbose=0)


def test_a_task_backbone_on_an_image_encoder_prunes_what_its_graph_can_follow(tmp_path):
    # DeepLabV3's pyramid pooling is a custom layer the dependency graph cannot see
    # into: the encoder's stage feeding it keeps its width, the others shrink.
    encoder = M.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 64, 64],
        stackwise_num_blocks=[1, 1, 1], stackwise_num_strides=[1, 2, 2],
        block_type="bottleneck_block", image_shape=IMAGE)
    model = M.DeepLabV3Backbone(image_encoder=encoder,
                                spatial_pyramid_pooling_key="P3", upsampling_size=8,
                                dilation_rates=[1, 2], image_shape=IMAGE)
    smaller, report = structured.prune_structured(model, 0.5, verbose=0)
    assert type(smaller) is M.DeepLabV3Backbone
    assert smaller.count_params() < model.count_params()
    assert any("stackwise_num_filters[1]=64: its channels reach layers the dependency graph "
               "cannot see into" in note for note in report.notes), report.notes
    encoder = smaller.get_config()["image_encoder"]["config"]
    assert encoder["stackwise_num_filters"] == [64, 64, 32]  # [0] must be 64, [1] feeds P3
    _reloads_equal(smaller, _images(), tmp_path)


@pytest.mark.parametrize("name, make, limit, notes", [
    # the residual-tied blocks share one choice; the features narrow as the graph's do
    ("MobileNet", MOBILENET, 0.6, ("stackwise_num_filters[1][0]..[1][1] (2 tied) 24 -> 12",
                                   "last_layer_filter 32 -> 16", "input_num_filters 16 -> 8")),
    # the graph reaches only CSPNet's stem (0.91x); each split half keeps the channels of
    # the block outputs it is added to, so the stage widths shrink too
    ("CSPNet", CSPNET, 0.4, ("stackwise_num_filters[1] 32 -> 16", "reach further")),
    # the concatenated axis keeps the kept channels of each of its parts; the features
    # of every stage (three outputs) narrow
    ("HGNetV2", HGNETV2, 0.3, ("stackwise_stage_filters[0][1] 16 -> 8",
                               "stackwise_stage_filters[0][2]..[1][0] (2 tied) 64 -> 32",
                               "stem_channels[2] 32 -> 16")),
])
def test_custom_blocks_the_graph_cannot_see_into_shrink_by_their_entries(
        name, make, limit, notes, tmp_path):
    # their config entries are pruned on their own and checked against the zeroed original
    model = make()
    smaller, report = structured.prune_structured(model, 0.5, verbose=0)
    assert type(smaller) is type(model)
    assert smaller.count_params() < limit * model.count_params()
    text = " ".join(report.notes)
    assert all(note in text for note in notes), report.notes
    _reloads_equal(smaller, _images(), tmp_path)
