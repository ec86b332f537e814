"""Real models nobody here wrote: keras.applications and keras_hub backbones.

Each is pruned (unstructured) -> trained a step with PruneCallback -> stripped ->
saved and reloaded with plain Keras; and pruned structurally -> run -> saved and
reloaded. A few also convert to TFLite (float and int8), verified in LiteRT.
TensorFlow backend only (conversion); one heavy test per family.
"""

import keras
import numpy as np
import pytest

import keras_prune
from keras_prune import tflite
from keras_prune.layers import collect_wrappers
from keras_prune.schedules import ConstantSparsity

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TFLite needs TF"),
]

A = keras.applications
APPLICATIONS = {
    "MobileNetV2": lambda: A.MobileNetV2(input_shape=(32, 32, 3), weights=None, classes=4),
    "MobileNetV3Small": lambda: A.MobileNetV3Small(
        input_shape=(32, 32, 3), weights=None, classes=4, include_preprocessing=False
    ),
    "EfficientNetB0": lambda: A.EfficientNetB0(input_shape=(32, 32, 3), weights=None, classes=4),
    "EfficientNetV2B0": lambda: A.EfficientNetV2B0(
        input_shape=(32, 32, 3), weights=None, classes=4
    ),
    "ResNet50V2": lambda: A.ResNet50V2(input_shape=(32, 32, 3), weights=None, classes=4),
    "DenseNet121": lambda: A.DenseNet121(input_shape=(32, 32, 3), weights=None, classes=4),
    "NASNetMobile": lambda: A.NASNetMobile(input_shape=(32, 32, 3), weights=None, classes=4),
    "ConvNeXtTiny": lambda: A.ConvNeXtTiny(input_shape=(32, 32, 3), weights=None, classes=4),
}
# Conversions are the slow part: two families here. EfficientNetV2B0 int8 once failed
# after 50% pruning and one SGD step (activation tensors with an infinite scale that
# XNNPACK refused); it is kept here so that it stays fixed.
CONVERTED = {"MobileNetV2": ("float", "int8"), "EfficientNetV2B0": ("int8",)}


def _hub_backbones():
    import keras_hub

    models = keras_hub.models
    return {
        "BertBackbone": lambda: models.BertBackbone(
            vocabulary_size=50, num_layers=2, num_heads=2, hidden_dim=16,
            intermediate_dim=32, max_sequence_length=16,
        ),
        "GPT2Backbone": lambda: models.GPT2Backbone(
            vocabulary_size=50, num_layers=2, num_heads=2, hidden_dim=16,
            intermediate_dim=32, max_sequence_length=16,
        ),
        "ViTBackbone": lambda: models.ViTBackbone(
            image_shape=(16, 16, 3), patch_size=4, num_layers=2, num_heads=2, hidden_dim=16,
            mlp_dim=32,
        ),
        "ResNetBackbone": lambda: models.ResNetBackbone(
            input_conv_filters=[64], input_conv_kernel_sizes=[3],
            stackwise_num_filters=[64, 32], stackwise_num_blocks=[1, 1],
            stackwise_num_strides=[1, 2], block_type="basic_block", image_shape=(16, 16, 3),
        ),
    }


HUB = ["BertBackbone", "GPT2Backbone", "ViTBackbone", "ResNetBackbone"]
SEQUENCE = 16


def _sample(model, batch=2, length=SEQUENCE):
    """Random inputs for `model`; unknown (sequence) dimensions get `length`."""
    rng = np.random.default_rng(0)

    def one(tensor):
        shape = [batch, *[length if d is None else d for d in tensor.shape[1:]]]
        if "int" in str(tensor.dtype):
            if "mask" in tensor.name:
                return np.ones(shape, "int32")
            if "segment" in tensor.name:
                return np.zeros(shape, "int32")
            return rng.integers(0, 40, size=shape).astype("int32")
        return rng.random(shape, dtype="float32")

    return keras.tree.map_structure(one, keras_prune._models.input_structure(model))


def _first(outputs):
    return keras.ops.convert_to_numpy(keras.tree.flatten(outputs)[0])


def _unstructured(model, x, tmp_path):
    pruned = keras_prune.prune_low_magnitude(
        model, pruning_schedule=ConstantSparsity(0.5, 0, frequency=1)
    )
    assert pruned.pruning_report.pruned
    targets = keras.tree.map_structure(lambda o: np.zeros(o.shape, "float32"), model(x))
    pruned.compile("sgd", "mse", run_eagerly=True)  # one step: tracing would cost more
    pruned.fit(x, targets, epochs=1, verbose=0, callbacks=[keras_prune.callbacks.PruneCallback()])
    for wrapper in collect_wrappers(pruned):
        for mask in wrapper.masks:
            assert abs(float(keras.ops.convert_to_numpy(mask).mean()) - 0.5) < 0.02
    stripped = keras_prune.strip_pruning(pruned)
    assert not collect_wrappers(stripped)
    np.testing.assert_allclose(_first(stripped(x)), _first(pruned(x)), rtol=1e-4, atol=1e-4)
    return stripped


def _reloads(model, x, tmp_path):
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(_first(reloaded(x)), _first(model(x)), rtol=1e-4, atol=1e-4)


def _convert(model, x, kinds, input_shapes=None):
    data = keras.tree.flatten(x)
    calibration = data[0] if len(data) == 1 else data
    for kind in kinds:
        quantize = None if kind == "float" else kind
        result = tflite.convert(model, quantize=quantize, representative_data=calibration
                                if quantize else None, verify_samples=4, sparse=False,
                                input_shapes=input_shapes)
        assert result.verification.passed, result.verification


@pytest.mark.parametrize("name", sorted(APPLICATIONS))
def test_application_prunes_strips_reloads_and_shrinks(name, tmp_path):
    keras.utils.set_random_seed(0)
    model = APPLICATIONS[name]()
    x = _sample(model)
    stripped = _unstructured(model, x, tmp_path)
    _reloads(stripped, x, tmp_path)
    if name in CONVERTED:
        _convert(stripped, x, CONVERTED[name])
    smaller, report = keras_prune.structured.prune_structured(model, 0.3)
    assert smaller.count_params() < model.count_params()
    _reloads(smaller, x, tmp_path)
    if name == "MobileNetV3Small":
        _convert(smaller, x, ("float",))


@pytest.mark.parametrize("name", HUB)
def test_keras_hub_backbone_prunes_inside_its_blocks_and_converts(name, tmp_path):
    keras.utils.set_random_seed(0)
    model = _hub_backbones()[name]()
    x = _sample(model)
    stripped = _unstructured(model, x, tmp_path)
    assert type(stripped) is type(model)  # the class is restored (ViT lost it once)
    _reloads(stripped, x, tmp_path)
    shapes = None
    if isinstance(x, dict):
        shapes = {key: (SEQUENCE,) for key in x}
    _convert(stripped, x, ("float", "int8") if name == "GPT2Backbone" else ("float",),
             input_shapes=shapes)
    smaller, _ = keras_prune.structured.prune_structured(model, 0.3)
    assert smaller.count_params() <= model.count_params()
    assert np.isfinite(_first(smaller(x))).all()


def test_collapse_removes_an_emptied_resnet_block_exactly(tmp_path):
    keras.utils.set_random_seed(0)
    model = APPLICATIONS["ResNet50V2"]()
    blocks = keras_prune.structured.find_residual_blocks(model)
    block = blocks[len(blocks) // 2]
    emptied = 0
    for name in block.layers:  # every kernel of the branch pruned to 0: biases remain
        layer = model.get_layer(name)
        if isinstance(layer, keras.layers.Conv2D):
            weights = layer.get_weights()  # a bias of 0.1, so the branch is not zero
            layer.set_weights([np.zeros_like(weights[0]), *[w + 0.1 for w in weights[1:]]])
            emptied += 1
    x = _sample(model)
    smaller, report = keras_prune.structured.collapse_layers(model, x)
    assert report.offset_blocks == [block.name] and report.layers_removed == emptied == 3
    other = np.random.default_rng(1).normal(size=x.shape).astype("float32")
    np.testing.assert_allclose(_first(smaller(other)), _first(model(other)), rtol=1e-5,
                               atol=1e-6)
    _reloads(smaller, x, tmp_path)


def _hub_families():
    """keras_hub backbones whose blocks did not survive a copy on their own (config
    round-trip bugs in keras_hub, e.g. Llama's decoder get_config), that broke when a
    wrapper sat inside a block (Moonshine), or whose stripped model lost its class
    (RWKV7, SegFormer: the rewrite lists their layers in another order). Tiny configs,
    random weights."""
    import keras_hub

    models = keras_hub.models
    decoder = dict(vocabulary_size=50, num_layers=2, hidden_dim=16, intermediate_dim=32)
    return {
        "LlamaBackbone": lambda: models.LlamaBackbone(
            num_query_heads=2, num_key_value_heads=1, **decoder),
        "Llama3Backbone": lambda: models.Llama3Backbone(
            num_query_heads=2, num_key_value_heads=1, **decoder),
        "Qwen3Backbone": lambda: models.Qwen3Backbone(
            num_query_heads=2, num_key_value_heads=1, head_dim=8, **decoder),
        "GPTNeoXBackbone": lambda: models.GPTNeoXBackbone(
            num_heads=2, max_sequence_length=16, **decoder),
        "DeiTBackbone": lambda: models.DeiTBackbone(
            image_shape=(16, 16, 3), patch_size=4, num_layers=2, num_heads=2, hidden_dim=16,
            intermediate_dim=32),
        "SwinTransformerBackbone": lambda: models.SwinTransformerBackbone(
            image_shape=(32, 32, 3), embed_dim=16, depths=[2, 2], num_heads=[2, 2],
            window_size=4, patch_size=4),
        "RWKV7Backbone": lambda: models.RWKV7Backbone(
            hidden_size=16, head_size=8, num_layers=2, vocabulary_size=50, intermediate_dim=32,
            gate_lora=8, mv_lora=8, aaa_lora=8, decay_lora=8),
        "SegFormerBackbone": lambda: models.SegFormerBackbone(
            image_encoder=models.MiTBackbone(
                layerwise_depths=[1, 1], num_layers=2, layerwise_num_heads=[1, 2],
                layerwise_sr_ratios=[2, 1], max_drop_path_rate=0.0,
                layerwise_patch_sizes=[7, 3], layerwise_strides=[4, 2],
                image_shape=(32, 32, 3), hidden_dims=[8, 16]),
            projection_filters=8),
        "DebertaV3Backbone": lambda: models.DebertaV3Backbone(
            num_heads=2, max_sequence_length=16, bucket_size=4, **decoder),
        "MoonshineBackbone": lambda: models.MoonshineBackbone(
            vocabulary_size=50, filter_dim=16, encoder_num_layers=1, decoder_num_layers=1,
            hidden_dim=16, intermediate_dim=32, encoder_num_heads=2, decoder_num_heads=2),
    }


def _family_sample(name, model):
    if name != "MoonshineBackbone":
        return _sample(model)
    rng = np.random.default_rng(0)
    return {"encoder_input_values": rng.random((2, 1600, 1), dtype="float32"),
            "encoder_padding_mask": np.ones((2, 1600), "int32"),
            "decoder_token_ids": rng.integers(0, 40, (2, 8)).astype("int32"),
            "decoder_padding_mask": np.ones((2, 8), "int32")}


@pytest.mark.parametrize("name", [
    "DeiTBackbone", "GPTNeoXBackbone", "Llama3Backbone", "LlamaBackbone", "MoonshineBackbone",
    "Qwen3Backbone", "RWKV7Backbone", "SegFormerBackbone", "SwinTransformerBackbone"])
def test_keras_hub_family_blocks_are_pruned_not_shared(name, tmp_path):
    keras.utils.set_random_seed(0)
    model = _hub_families()[name]()
    x = _family_sample(name, model)
    pruned = keras_prune.prune_low_magnitude(model)
    assert pruned.pruning_report.shared == []  # every block was copied, none shared
    blocks = {entry.split("/")[0] for entry in pruned.pruning_report.pruned if "/" in entry}
    assert len(blocks) >= 2, pruned.pruning_report  # layers inside the blocks are wrapped
    stripped = _unstructured(model, x, tmp_path)
    _reloads(stripped, x, tmp_path)
    # The input model was not touched.
    assert not collect_wrappers(model)


@pytest.mark.parametrize("name", ["DeiTBackbone", "DebertaV3Backbone", "GPTNeoXBackbone",
                                  "LlamaBackbone", "Qwen3Backbone", "ViTBackbone"])
def test_keras_hub_structured_result_keeps_its_class_and_reloads(name, tmp_path):
    keras.utils.set_random_seed(0)
    model = {**_hub_families(), **_hub_backbones()}[name]()
    x = _sample(model)
    smaller, _ = keras_prune.structured.prune_structured(model, 0.3)
    assert type(smaller) is type(model)
    assert smaller.count_params() < model.count_params()
    _reloads(smaller, x, tmp_path)
