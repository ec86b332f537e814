"""Structured pruning of keras_hub transformers: heads, units, width, depth, distillation.

Every family is built with a tiny config and random weights (no downloads). The
exactness check: the smaller model computes what the original computes with the
removed heads and units zeroed (`TransformerPruner.masked_copy`).
"""

import os

import keras
import numpy as np
import pytest

from keras_prune.structured import (
    TransformerPruner,
    distill,
    prune_structured,
    remove_blocks,
)

keras_hub = pytest.importorskip("keras_hub")
M = keras_hub.models
TEXT = dict(vocabulary_size=50, num_layers=2, hidden_dim=16)
GQA = dict(num_query_heads=4, num_key_value_heads=2)

# family -> (constructor, prunes heads too: the config holds the head width)
FAMILIES = {
    "Bert": (lambda: M.BertBackbone(**TEXT, num_heads=2, intermediate_dim=32,
                                    max_sequence_length=8), False),
    "GPT2": (lambda: M.GPT2Backbone(**TEXT, num_heads=2, intermediate_dim=32,
                                    max_sequence_length=8), False),
    "RoBERTa": (lambda: M.RobertaBackbone(**TEXT, num_heads=2, intermediate_dim=32,
                                          max_sequence_length=8), False),
    "DistilBert": (lambda: M.DistilBertBackbone(**TEXT, num_heads=2, intermediate_dim=32,
                                                max_sequence_length=8), False),
    "OPT": (lambda: M.OPTBackbone(**TEXT, num_heads=2, intermediate_dim=32,
                                  max_sequence_length=8), False),
    "Llama": (lambda: M.LlamaBackbone(**TEXT, **GQA, intermediate_dim=32), False),
    "Llama3": (lambda: M.Llama3Backbone(**TEXT, **GQA, intermediate_dim=32), False),
    "Qwen": (lambda: M.QwenBackbone(**TEXT, **GQA, intermediate_dim=32), False),
    "Phi3": (lambda: M.Phi3Backbone(**TEXT, **GQA, intermediate_dim=32), False),
    "ViT": (lambda: M.ViTBackbone(image_shape=(8, 8, 3), patch_size=4, num_layers=2,
                                  num_heads=2, hidden_dim=16, mlp_dim=32), False),
    "Gemma": (lambda: M.GemmaBackbone(**TEXT, **GQA, intermediate_dim=64, head_dim=8), True),
    "Gemma3": (lambda: M.Gemma3Backbone(**TEXT, **GQA, intermediate_dim=32, head_dim=8,
                                        image_size=8, vision_encoder=None), True),
    "Mistral": (lambda: M.MistralBackbone(**TEXT, **GQA, intermediate_dim=32), True),
    # as many key/value heads as query heads, and a single shared one (MQA)
    "MistralKV=Q": (lambda: M.MistralBackbone(**TEXT, num_query_heads=2, num_key_value_heads=2,
                                              intermediate_dim=32), True),
    "GemmaMQA": (lambda: M.GemmaBackbone(**TEXT, num_query_heads=4, num_key_value_heads=1,
                                         intermediate_dim=64, head_dim=8), True),
}


def inputs_for(model, batch=2, length=8, seed=0):
    rng = np.random.default_rng(seed)
    names = [t.name for t in model.inputs]
    if "images" in names:
        return rng.uniform(size=(batch, 8, 8, 3)).astype("float32")
    x = {"token_ids": rng.integers(1, 50, size=(batch, length)).astype("int32"),
         "padding_mask": np.ones((batch, length), dtype=bool)}
    if "segment_ids" in names:
        x["segment_ids"] = np.zeros((batch, length), dtype="int32")
    return x


def outputs(model, x):
    return keras.ops.convert_to_numpy(keras.tree.flatten(model(x, training=False))[0])


def weights_of(model):
    return [keras.ops.convert_to_numpy(w).copy() for w in model.weights]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_pruned_family_keeps_its_class_and_equals_original_with_removed_zeroed(family, tmp_path):
    build, heads = FAMILIES[family]
    model = build()
    before = weights_of(model)
    x = inputs_for(model)
    pruner = TransformerPruner(model, heads=0.5, units=0.5)
    smaller, report = pruner.apply()

    assert type(smaller) is type(model)
    config, new_config = model.get_config(), smaller.get_config()
    units_field = "mlp_dim" if "mlp_dim" in config else "intermediate_dim"
    assert new_config[units_field] == config[units_field] // 2
    head_field = "num_query_heads" if "num_query_heads" in config else "num_heads"
    assert new_config[head_field] == (config[head_field] // 2 if heads else config[head_field])
    if heads and "num_key_value_heads" in config:  # whole key/value groups went (MQA keeps 1)
        assert new_config["num_key_value_heads"] == max(config["num_key_value_heads"] // 2, 1)
    assert report.params_after < report.params_before
    assert any("heads kept" in note for note in report.notes) == (not heads)
    np.testing.assert_allclose(outputs(smaller, x), outputs(pruner.masked_copy(), x),
                               atol=1e-5, rtol=1e-4)
    for old, now in zip(before, model.weights):  # the input model is unchanged
        np.testing.assert_array_equal(old, keras.ops.convert_to_numpy(now))
    path = os.path.join(tmp_path, f"{family}.keras")
    smaller.save(path)
    reloaded = keras.saving.load_model(path)
    assert type(reloaded) is type(model)
    np.testing.assert_allclose(outputs(reloaded, x), outputs(smaller, x), atol=1e-5)


def test_removed_heads_and_units_change_the_output():
    """The exactness test above would pass trivially if nothing were removed."""
    model = FAMILIES["Gemma"][0]()
    x = inputs_for(model)
    pruner = TransformerPruner(model, heads=0.5, units=0.5)
    assert np.abs(outputs(model, x) - outputs(pruner.masked_copy(), x)).max() > 1e-4


def test_activation_importance_drops_units_that_never_fire():
    model = FAMILIES["GPT2"][0]()
    block = model.transformer_layers[0]
    dense = block._feedforward_intermediate_dense
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in (dense.kernel, dense.bias))
    dead = np.arange(8)  # large weights, but a bias that keeps GELU at zero
    kernel[:, dead] *= 10
    bias[dead] = -1e4
    dense.kernel.assign(kernel)
    dense.bias.assign(bias)
    x = inputs_for(model, batch=8)
    by_weights = TransformerPruner(model, heads=0, units=0.5).plan()
    by_data = TransformerPruner(model, heads=0, units=0.5, importance="activation",
                                data=x).plan()
    assert set(dead) <= set(by_weights[("units", 0)].tolist())
    assert not set(dead) & set(by_data[("units", 0)].tolist())


@pytest.mark.parametrize("family", ["GPT2", "Gemma"])
def test_reconstruction_refits_readers_closer_to_the_original(family):
    model = FAMILIES[family][0]()
    x = inputs_for(model, batch=32, seed=3)
    reference = outputs(model, x)

    def error(smaller):
        return float(((outputs(smaller, x) - reference) ** 2).sum() / (reference ** 2).sum())

    plain, _ = prune_structured(model, ratio=0.5, verbose=0)
    refitted, report = prune_structured(model, ratio=0.5, reconstruct=x, verbose=0)
    assert error(refitted) < 0.8 * error(plain)
    assert any("re-fitted" in note for note in report.notes)
    widened, _ = prune_structured(model, ratio=0.5, hidden=0.5, reconstruct=x, verbose=0)
    assert np.isfinite(outputs(widened, x)).all()  # readers whose outputs shrink too


@pytest.mark.parametrize("family", ["GPT2", "Llama"])
def test_tied_head_width_families_lose_whole_heads_with_their_share_of_the_width(family):
    model = FAMILIES[family][0]()
    config = model.get_config()
    field = "num_query_heads" if "num_query_heads" in config else "num_heads"
    smaller, report = prune_structured(model, ratio=0.5, hidden=0.5, verbose=0)
    new = smaller.get_config()
    assert new[field] == config[field] // 2 and new["hidden_dim"] == config["hidden_dim"] // 2
    if "num_key_value_heads" in config:  # whole key/value groups went
        assert new["num_key_value_heads"] == config["num_key_value_heads"] // 2
    head_width = config["hidden_dim"] // config[field]
    assert new["hidden_dim"] // new[field] == head_width  # heads went, not their width
    assert not any("heads kept" in note for note in report.notes)
    assert np.isfinite(outputs(smaller, inputs_for(model))).all()


def test_residual_width_pruning_keeps_class_saves_and_reloads(tmp_path):
    model = FAMILIES["GPT2"][0]()
    smaller, report = prune_structured(model, ratio=0.5, hidden=0.5, verbose=0)
    assert smaller.get_config()["hidden_dim"] == 8
    assert report.params_ratio < 0.35
    x = inputs_for(model)
    path = os.path.join(tmp_path, "small.keras")
    smaller.save(path)
    reloaded = keras.saving.load_model(path)
    assert type(reloaded) is type(model)
    np.testing.assert_allclose(outputs(reloaded, x), outputs(smaller, x), atol=1e-5)


def test_causal_lm_task_stays_a_task_that_generates():
    lm = M.GPT2CausalLM(backbone=FAMILIES["GPT2"][0](), preprocessor=None)
    smaller, _ = prune_structured(lm, ratio=0.5, verbose=0)
    assert type(smaller) is M.GPT2CausalLM
    assert smaller.backbone.get_config()["intermediate_dim"] == 16
    prompt = inputs_for(lm)
    prompt["padding_mask"][:, 3:] = False
    generated = smaller.generate(prompt, max_length=8, stop_token_ids=None)
    tokens = keras.ops.convert_to_numpy(generated["token_ids"])
    assert tokens.shape == (2, 8)
    np.testing.assert_array_equal(tokens[:, :3], prompt["token_ids"][:, :3])


def test_text_classifier_keeps_its_preprocessor_and_predicts_strings(tmp_path):
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "quick", "brown",
                  "fox", "jumps"]
    preprocessor = M.BertTextClassifierPreprocessor(
        M.BertTokenizer(vocabulary=vocabulary), sequence_length=8)
    backbone = M.BertBackbone(vocabulary_size=len(vocabulary), num_layers=2, num_heads=2,
                              hidden_dim=16, intermediate_dim=32, max_sequence_length=8)
    classifier = M.BertTextClassifier(backbone, num_classes=3, preprocessor=preprocessor)
    texts = ["the quick brown fox", "fox jumps", "the fox", "quick quick"]
    smaller, _ = prune_structured(classifier, ratio=0.5, hidden=0.5, importance="activation",
                                  data=texts, verbose=0)
    assert type(smaller) is M.BertTextClassifier
    assert smaller.preprocessor is not None
    predictions = smaller.predict(texts, verbose=0)
    assert predictions.shape == (4, 3) and np.isfinite(predictions).all()
    path = os.path.join(tmp_path, "classifier.keras")
    smaller.save(path)
    reloaded = keras.saving.load_model(path)
    assert type(reloaded) is M.BertTextClassifier
    np.testing.assert_allclose(reloaded.predict(texts, verbose=0), predictions, atol=1e-5)


def test_block_influence_removes_the_block_that_does_nothing():
    model = M.GPT2Backbone(**{**TEXT, "num_layers": 3}, num_heads=2, intermediate_dim=32,
                           max_sequence_length=8)
    idle = model.transformer_layers[1]
    for dense in (idle._self_attention_layer._output_dense, idle._feedforward_output_dense):
        for weight in dense.weights:  # both residual branches write zeros: y = x
            weight.assign(np.zeros(weight.shape))
    x = inputs_for(model, batch=4)
    shallower, report = remove_blocks(model, count=1, data=x)
    assert type(shallower) is type(model)
    assert shallower.get_config()["num_layers"] == 2
    assert [name for name, _ in report.blocks] == [idle.name]
    np.testing.assert_allclose(outputs(shallower, x), outputs(model, x), atol=1e-5)
    # The new model holds copies: running it compiled must leave the input usable (JAX
    # donates the buffers of the variables it runs with).
    np.testing.assert_allclose(shallower.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-5)
    random_pick, _ = remove_blocks(model, count=1, importance="random")
    assert random_pick.get_config()["num_layers"] == 2


def test_distillation_moves_the_student_towards_the_teacher():
    teacher = M.GPT2CausalLM(backbone=FAMILIES["GPT2"][0](), preprocessor=None)
    embeddings = teacher.backbone.token_embedding.embeddings
    embeddings.assign(embeddings * 20)  # sharp logits: something to learn
    student, _ = prune_structured(teacher, ratio=0.5, hidden=0.5, verbose=0)
    teacher_before = weights_of(teacher)
    x = inputs_for(teacher, batch=32, seed=1)

    def gap():
        t, s = outputs(teacher, x), outputs(student, x)
        p = np.exp(t - t.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        log_q = s - s.max(-1, keepdims=True)
        log_q -= np.log(np.exp(log_q).sum(-1, keepdims=True))
        return float((p * (np.log(p) - log_q)).sum(-1).mean())

    start = gap()
    history = distill(student, teacher, x, epochs=20, batch_size=8, verbose=0)
    assert len(history.history["loss"]) == 20
    assert gap() < 0.8 * start
    for old, now in zip(teacher_before, teacher.weights):
        np.testing.assert_array_equal(old, keras.ops.convert_to_numpy(now))
    assert teacher.trainable


def test_bad_arguments_name_the_argument():
    model = FAMILIES["GPT2"][0]()
    with pytest.raises(ValueError, match="`heads`"):
        TransformerPruner(model, heads=1.0)
    with pytest.raises(ValueError, match="needs `data`"):
        prune_structured(model, importance="activation", verbose=0)
    with pytest.raises(ValueError, match="global_ranking"):
        prune_structured(model, global_ranking=True, verbose=0)
    with pytest.raises(ValueError, match="`count`"):
        remove_blocks(model, count=2, importance="random")
    with pytest.raises(ValueError, match="`data` is required"):
        remove_blocks(model, count=1)
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4)])
    with pytest.raises(ValueError, match="keras_hub transformers only"):
        prune_structured(plain, heads=0.5, verbose=0)
    with pytest.raises(ValueError, match="`y`"):
        distill(plain, keras.Sequential([keras.Input((4,)), keras.layers.Dense(4)]),
                np.zeros((4, 4)), alpha=0.5)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="conversion needs TF")
@pytest.mark.parametrize("family", ["GPT2", "Bert", "ViT"])
def test_pruned_backbone_converts_to_verified_litert(family, tmp_path):
    from keras_prune import tflite

    model = FAMILIES[family][0]()
    smaller, _ = prune_structured(model, ratio=0.5, hidden=0.5, verbose=0)
    shapes = None if family == "ViT" else {t.name: (8,) for t in smaller.inputs}
    result = tflite.convert(smaller, os.path.join(tmp_path, "m.tflite"), input_shapes=shapes,
                            verbose=0)
    assert result.verification.passed
