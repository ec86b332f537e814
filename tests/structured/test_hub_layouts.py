"""keras_hub layouts beyond one stack of transformer blocks: encoder-decoders, ALBERT's
shared groups, DINOv2's nested encoder, RWKV7, Moonshine, and mixtures of experts.

Tiny configs, random weights. The exactness check is the transformers': the smaller
model computes what the original computes with the removed units and heads zeroed.
"""

import keras
import numpy as np
import pytest

from keras_prune import structured
from keras_prune.structured import TransformerPruner

keras_hub = pytest.importorskip("keras_hub")
M = keras_hub.models
TEXT = dict(vocabulary_size=50, num_layers=2, hidden_dim=16, intermediate_dim=32)
DECODER = dict(vocabulary_size=50, num_layers=2, hidden_dim=16, num_query_heads=2,
               num_key_value_heads=1)

LAYOUTS = {
    # two stacks: encoder and decoder blocks, cross-attention in the decoder's
    "T5": lambda: M.T5Backbone(**TEXT, num_heads=2),
    "Bart": lambda: M.BartBackbone(**TEXT, num_heads=2, max_sequence_length=16),
    # every width once per stack (encoder_num_attention_heads, decoder_head_dim, ...)
    "T5Gemma": lambda: M.T5GemmaBackbone(vocabulary_size=50, **{
        f"{stack}_{field}": value for stack in ("encoder", "decoder") for field, value in dict(
            hidden_dim=16, intermediate_dim=32, num_layers=1, num_attention_heads=4,
            num_key_value_heads=2, head_dim=8, layer_types=["full_attention"]).items()}),
    # one layer group shared by every repetition, embeddings narrower than the stream
    "Albert": lambda: M.AlbertBackbone(**TEXT, num_heads=2, num_groups=1,
                                       num_inner_repetitions=1, embedding_dim=8,
                                       max_sequence_length=16),
    # blocks in a list of a nested encoder layer
    "DINOV2": lambda: M.DINOV2Backbone(patch_size=4, num_layers=2, hidden_dim=16, num_heads=2,
                                       intermediate_dim=32, layer_scale_init_value=1.0,
                                       image_shape=(16, 16, 3),
                                       position_embedding_shape=(16, 16, 3)),
    "RWKV7": lambda: M.RWKV7Backbone(hidden_size=16, head_size=8, num_layers=2,
                                     vocabulary_size=50, intermediate_dim=32, gate_lora=8,
                                     mv_lora=8, aaa_lora=8, decay_lora=8),
    # stages of blocks of different widths; units as `mlp_ratio` times the stage's width
    "Swin": lambda: M.SwinTransformerBackbone(image_shape=(32, 32, 3), embed_dim=16,
                                              depths=[2, 2], num_heads=[2, 2], window_size=4,
                                              patch_size=4),
    # feed-forward width as `intermediate_dim * feedforward_expansion_factor`
    "Moonshine": lambda: M.MoonshineBackbone(
        vocabulary_size=50, filter_dim=16, encoder_num_layers=1, decoder_num_layers=1,
        hidden_dim=16, intermediate_dim=32, encoder_num_heads=2, decoder_num_heads=2),
    # experts stacked in one weight, gate and up fused: concatenated halves ...
    "QwenMoe": lambda: M.QwenMoeBackbone(**DECODER, intermediate_dim=32,
                                         moe_intermediate_dim=16,
                                         shared_expert_intermediate_dim=16, num_experts=4),
    # ... and alternating ones
    "GptOss": lambda: M.GptOssBackbone(**DECODER, intermediate_dim=32, num_experts=4,
                                       top_k=2),
}


def _sample(model, batch=2, length=8):
    rng = np.random.default_rng(0)
    if "MoonshineBackbone" == type(model).__name__:
        return {"encoder_input_values": rng.normal(size=(batch, 1600, 1)).astype("float32"),
                "encoder_padding_mask": np.ones((batch, 1600), "int32"),
                "decoder_token_ids": rng.integers(0, 40, (batch, length)).astype("int32"),
                "decoder_padding_mask": np.ones((batch, length), "int32")}
    x = {}
    for tensor in model.inputs:
        shape = [batch, *[length if d is None else d for d in tensor.shape[1:]]]
        if "int" not in str(tensor.dtype):
            x[tensor.name] = rng.uniform(size=shape).astype("float32")
        elif "mask" in tensor.name:
            x[tensor.name] = np.ones(shape, "int32")
        elif "segment" in tensor.name:
            x[tensor.name] = np.zeros(shape, "int32")
        else:
            x[tensor.name] = rng.integers(0, 40, size=shape).astype("int32")
    return x if len(x) > 1 else next(iter(x.values()))


def _first(outputs):
    return keras.ops.convert_to_numpy(keras.tree.flatten(outputs)[0])


def _equals_the_zeroed_original_and_reloads(model, pruner, smaller, x, tmp_path):
    expected = _first(pruner.masked_copy()(x))
    np.testing.assert_allclose(_first(smaller(x)), expected, rtol=1e-4, atol=1e-5)
    assert np.abs(_first(model(x)) - expected).max() > 1e-6  # the removed part mattered
    path = str(tmp_path / "small.keras")
    smaller.save(path)
    again = keras.saving.load_model(path)
    assert type(again) is type(model)
    np.testing.assert_allclose(_first(again(x)), _first(smaller(x)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_layout_shrinks_keeps_its_class_and_equals_the_masked_original(layout, tmp_path):
    model = LAYOUTS[layout]()
    x = _sample(model)
    pruner = TransformerPruner(model, heads=0.5, units=0.5)
    smaller, report = pruner.apply()
    assert type(smaller) is type(model)
    assert report.params_after < 0.95 * report.params_before
    assert {row.kind for row in report.layers}  # something was cut, per block
    _equals_the_zeroed_original_and_reloads(model, pruner, smaller, x, tmp_path)


def test_every_stack_of_an_encoder_decoder_shrinks_and_the_seq2seq_lm_generates():
    lm = M.BartSeq2SeqLM(backbone=LAYOUTS["Bart"](), preprocessor=None)
    pruner = TransformerPruner(lm, heads=0.0, units=0.5)
    smaller, report = pruner.apply()
    widths = {row.layer: row.after for row in report.layers}
    assert any("encoder" in name for name in widths) and any("decoder" in name for name in widths)
    assert set(widths.values()) == {16}
    assert type(smaller) is M.BartSeq2SeqLM
    prompt = {"encoder_token_ids": np.full((2, 8), 7, "int32"),
              "encoder_padding_mask": np.ones((2, 8), "int32"),
              "decoder_token_ids": np.array([[2, 0] + [1] * 6] * 2, "int32"),
              "decoder_padding_mask": np.array([[1, 1] + [0] * 6] * 2, "int32")}
    masked = pruner.masked_copy()
    for lm in (smaller, masked):
        lm.compile(sampler="greedy")
    generated = smaller.generate(prompt, max_length=8, stop_token_ids=None)
    expected = masked.generate(prompt, max_length=8, stop_token_ids=None)
    tokens = keras.ops.convert_to_numpy(generated["decoder_token_ids"])
    assert tokens.shape == (2, 8)
    np.testing.assert_array_equal(tokens, keras.ops.convert_to_numpy(
        expected["decoder_token_ids"]))


def test_every_expert_loses_the_same_units_and_the_config_says_so():
    model = LAYOUTS["QwenMoe"]()
    smaller, report = structured.prune_structured(model, 0.5, verbose=0)
    config = smaller.get_config()
    assert config["moe_intermediate_dim"] == 8
    assert config["shared_expert_intermediate_dim"] == 8
    assert config["intermediate_dim"] == 32  # no dense feed-forward layer holds it: kept
    assert {row.kind for row in report.layers} == {"moe_intermediate_dim",
                                                   "shared_expert_intermediate_dim"}
    experts = [w for w in smaller.weights if "expert_feedforward_gate_dense" in w.path]
    assert experts and all(tuple(w.shape) == (4, 16, 16) for w in experts)  # 2 x 8, fused


def test_layouts_that_cannot_be_pruned_say_why_in_words():
    with pytest.raises(NotImplementedError, match="no weight whose axis is its heads"):
        structured.prune_structured(LAYOUTS["T5"](), 0.5, hidden=0.5, verbose=0)
    with pytest.raises(NotImplementedError, match="2 stacks of blocks"):
        structured.remove_blocks(LAYOUTS["Bart"](), count=1, importance="random")
    _, swin = structured.prune_structured(LAYOUTS["Swin"](), 0.5, verbose=0)
    assert any("head count per stage (`num_heads`)" in note for note in swin.notes)


def _expert_weights(model, name="gate_up_proj"):
    return [keras.ops.convert_to_numpy(w) for w in model.weights
            if w.path.endswith(f"experts/{name}")]


def test_experts_go_by_the_router_probability_they_receive_on_the_data(tmp_path):
    model = LAYOUTS["GptOss"]()
    for weight in model.weights:
        if "router_dense/kernel" in weight.path:
            weight.assign(np.zeros(weight.shape, "float32"))
        elif "router_dense/bias" in weight.path:
            weight.assign(np.array([0.0, 5.0, 0.0, 5.0], "float32"))  # experts 1 and 3 win
        elif weight.path.endswith("experts/gate_up_proj"):
            value = keras.ops.convert_to_numpy(weight).copy()
            value[[0, 2]] *= 10.0  # ... though experts 0 and 2 have the larger weights
            weight.assign(value)
    x = _sample(model)
    routed, report = structured.prune_structured(model, 0.5, heads=0.0, units=0.0,
                                                 experts=0.5, data=x, verbose=0)
    assert routed.get_config()["num_experts"] == 2 and routed.get_config()["top_k"] == 2
    assert [row.kind for row in report.layers] == ["experts", "experts"]
    for before, after in zip(_expert_weights(model), _expert_weights(routed)):
        np.testing.assert_array_equal(after, before[[1, 3]])
    by_weight, _ = structured.prune_structured(model, 0.5, heads=0.0, units=0.0, experts=0.5,
                                               verbose=0)
    for before, after in zip(_expert_weights(model), _expert_weights(by_weight)):
        np.testing.assert_array_equal(after, before[[0, 2]])
    path = str(tmp_path / "routed.keras")
    routed.save(path)
    again = keras.saving.load_model(path)
    np.testing.assert_allclose(_first(again(x)), _first(routed(x)), rtol=1e-5, atol=1e-6)


def test_top_k_is_lowered_to_the_experts_left_and_reported():
    model = LAYOUTS["QwenMoe"]()  # top_k defaults to 4 of 4 experts
    smaller, report = structured.prune_structured(model, 0.5, heads=0.0, units=0.0,
                                                  experts=0.75, verbose=0)
    assert smaller.get_config()["num_experts"] == 1
    assert smaller.get_config()["top_k"] == 1
    assert any("top_k: 4 -> 1" in note for note in report.notes)
    _, dense = structured.prune_structured(LAYOUTS["T5"](), 0.5, experts=0.5, verbose=0)
    assert any("experts kept: T5Backbone is not a mixture of experts" in note
               for note in dense.notes)
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="`experts` applies to keras_hub transformers"):
        structured.prune_structured(plain, 0.5, experts=0.5, verbose=0)


VISION = dict(patch_size=4, hidden_dim=16, num_layers=2, num_heads=2, intermediate_dim=32,
              image_shape=(16, 16, 3))
WORDS = dict(vocabulary_size=50, embedding_dim=16, hidden_dim=16, num_layers=2, num_heads=2,
             intermediate_dim=32, max_sequence_length=16)
TOWERS = {
    "CLIP": lambda: M.CLIPBackbone(M.CLIPVisionEncoder(**VISION), M.CLIPTextEncoder(**WORDS),
                                   projection_dim=8),
    # the vision tower's pooling head has a feed-forward width outside the blocks
    "SigLIP": lambda: M.SigLIPBackbone(M.SigLIPVisionEncoder(**VISION),
                                       M.SigLIPTextEncoder(**WORDS, projection_dim=16)),
    # the image encoder (ViTDet) keeps its blocks as top-level layers, in no list
    "SAM": lambda: M.SAMBackbone(
        M.ViTDetBackbone(hidden_size=16, num_layers=2, intermediate_dim=32, num_heads=2,
                         global_attention_layer_indices=[1], image_shape=(32, 32, 3),
                         patch_size=4, num_output_channels=8, window_size=2),
        keras_hub.layers.SAMPromptEncoder(hidden_size=8, image_embedding_size=(8, 8),
                                          input_image_size=(32, 32), mask_in_channels=4),
        keras_hub.layers.SAMMaskDecoder(hidden_size=8, num_layers=2, intermediate_dim=16,
                                        num_heads=2, embedding_dim=8, iou_head_hidden_dim=8)),
    # get_config() returns the image encoder itself, and from_config edits the config
    "PARSeq": lambda: M.PARSeqBackbone(
        image_encoder=M.ViTBackbone(image_shape=(16, 32, 3), patch_size=(4, 8), num_layers=1,
                                    num_heads=2, hidden_dim=16, mlp_dim=32,
                                    use_class_token=False),
        vocabulary_size=50, max_label_length=15, decoder_hidden_dim=16, num_decoder_layers=1,
        num_decoder_heads=2, decoder_mlp_dim=32),
}


def _tower_sample(model):
    from tests.test_zoo import _sample as zoo_sample

    return zoo_sample(model, batch=2, length=16)


@pytest.mark.parametrize("name", sorted(TOWERS))
def test_every_tower_shrinks_and_the_model_keeps_its_class(name, tmp_path):
    from keras_prune.structured.hub.towers import TowerPruner

    if name == "SAM" and keras.backend.backend() == "jax":
        pytest.skip("keras_hub's SAM prompt encoder does not run on JAX (its cond branches "
                    "return different types), pruned or not")
    model = TOWERS[name]()
    x = _tower_sample(model)
    pruner = TowerPruner(model, heads=0.5, units=0.5)
    smaller, report = pruner.apply()
    assert type(smaller) is type(model)
    assert report.params_after < (0.95 if name == "PARSeq" else 0.9) * report.params_before
    _equals_the_zeroed_original_and_reloads(model, pruner, smaller, x, tmp_path)


def test_towers_take_their_own_fractions_and_refuse_what_they_cannot_follow():
    model = TOWERS["CLIP"]()
    smaller, report = structured.prune_structured(
        model, units={"vision_encoder": 0.5, "text_encoder": 0.25}, verbose=0)
    vision = smaller.get_config()["vision_encoder"]["config"]
    text = smaller.get_config()["text_encoder"]["config"]
    assert (vision["intermediate_dim"], text["intermediate_dim"]) == (16, 24)
    assert {row.layer.split("/")[0] for row in report.layers} == {"vision_encoder",
                                                                 "text_encoder"}
    with pytest.raises(ValueError, match=r"`units` names \['image'\].*Towers: "):
        structured.prune_structured(model, units={"image": 0.5}, verbose=0)
    with pytest.raises(ValueError, match="towers, each with its own inputs: pass `data` as "
                                         "a dict"):
        structured.prune_structured(model, 0.5, data=_tower_sample(model)["images"],
                                    verbose=0)


def test_towers_are_ranked_on_their_own_inputs_from_the_data(tmp_path):
    from keras_prune.structured.hub.towers import TowerPruner

    model = TOWERS["CLIP"]()
    x = _tower_sample(model)
    by_weights = TowerPruner(model, heads=0.0, units=0.5)
    by_data = TowerPruner(model, heads=0.0, units=0.5, importance="activation", data=x)
    assert set(by_data.pruners) == {"vision_encoder", "text_encoder"} and not by_data.notes
    assert any(not np.array_equal(by_data.pruners[f].keep[k], by_weights.pruners[f].keep[k])
               for f in by_data.pruners for k in by_data.pruners[f].keep)
    smaller, _ = by_data.apply()
    _equals_the_zeroed_original_and_reloads(model, by_data, smaller, x, tmp_path)
    # a tower whose inputs the data does not hold is ranked by its weights, and said so
    partial = TowerPruner(model, heads=0.0, units=0.5, importance="activation",
                          data={"images": x["images"]})
    assert any("text_encoder: ranked by its weights" in note for note in partial.notes)


def test_heads_held_once_per_stack_go_from_both_stacks_alike():
    smaller, _ = structured.prune_structured(LAYOUTS["T5Gemma"](), heads=0.5, units=0.0,
                                             verbose=0)
    config = smaller.get_config()
    assert [config[f"{stack}_{field}"] for field in ("num_attention_heads",
                                                      "num_key_value_heads", "head_dim")
            for stack in ("encoder", "decoder")] == [2, 2, 1, 1, 8, 8]


def test_a_towers_residual_width_narrows_with_the_projection_that_reads_it(tmp_path):
    from keras_prune.structured.hub.towers import TowerPruner

    model = TOWERS["CLIP"]()
    pruner = TowerPruner(model, heads=0.0, units=0.0, hidden={"vision_encoder": 0.5})
    smaller, _ = pruner.apply()
    assert type(smaller) is M.CLIPBackbone
    config = smaller.get_config()
    assert config["vision_encoder"]["config"]["hidden_dim"] == 8
    assert config["text_encoder"]["config"]["hidden_dim"] == 16
    kept = pruner.pruners["vision_encoder"].keep[("hidden", None)]
    np.testing.assert_array_equal(  # the pooled features' surviving channels, read as before
        keras.ops.convert_to_numpy(smaller.vision_projection.kernel),
        keras.ops.convert_to_numpy(model.vision_projection.kernel)[kept])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(smaller.text_projection.kernel),
                                  keras.ops.convert_to_numpy(model.text_projection.kernel))
    x = _tower_sample(model)
    path = str(tmp_path / "clip.keras")
    smaller.save(path)
    np.testing.assert_allclose(_first(keras.saving.load_model(path)(x)), _first(smaller(x)),
                               rtol=1e-5, atol=1e-6)
    # SigLIP's head ties the vision width to the text projection: refused in words
    with pytest.raises(NotImplementedError, match="SigLIPBackbone does not run with a narrower "
                                                  "residual width in vision_encoder.*hidden=0"):
        structured.prune_structured(TOWERS["SigLIP"](), 0.5, hidden=0.5, verbose=0)


def test_the_residual_width_narrows_an_equal_embedding_width_with_it(tmp_path):
    electra = M.ElectraBackbone(vocab_size=50, num_layers=2, num_heads=2, hidden_dim=16,
                                embedding_dim=16, intermediate_dim=32, max_sequence_length=16)
    smaller, _ = structured.prune_structured(electra, 0.5, hidden=0.5, verbose=0)
    config = smaller.get_config()
    assert (config["hidden_dim"], config["embedding_dim"]) == (8, 8)
    assert len(smaller.weights) == len(electra.weights)  # no projection was added
    x = _sample(electra)
    path = str(tmp_path / "electra.keras")
    smaller.save(path)
    np.testing.assert_allclose(_first(keras.saving.load_model(path)(x)), _first(smaller(x)),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["SigLIP", "PARSeq"])
def test_a_stripped_two_tower_model_gets_its_class_back(name):
    # SigLIP's rebuilt weights are auto-named one number apart (`variable_3`, `variable_2`);
    # PARSeq's config holds a live model, which its from_config replaces in place
    import keras_prune

    model = TOWERS[name]()
    x = _tower_sample(model)
    pruned = keras_prune.prune_low_magnitude(model)
    stripped = keras_prune.strip_pruning(pruned)
    assert type(stripped) is type(model)
    np.testing.assert_allclose(_first(stripped(x)), _first(model(x)), rtol=1e-5, atol=1e-5)
