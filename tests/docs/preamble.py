"""What the Python blocks of README.md and docs/*.md take as given: a user's data and
models (digits, a small CNN, an MLP, a tiny GPT-2 with a tokenizer built from a small
vocabulary). Every name a snippet uses without defining it is defined here, small."""

import math  # noqa: F401 (snippets use it)
import string

import keras
import numpy as np
import tensorflow as tf  # noqa: F401 (docs/distributed.md)

import keras_prune  # noqa: F401
from keras_prune.demo import load_digits_arrays

x_all, y_all = load_digits_arrays()
x_train, y_train = x_all[:1024], y_all[:1024]
x_test, y_test = x_all[1200:1500], y_all[1200:1500]
x_val, y_val = x_all[1500:], y_all[1500:]
x, y = x_train[:128], y_train[:128]
x_calibration = x_train[:128]
batch_size, epochs = 32, 4
loss = "sparse_categorical_crossentropy"


def build_model(seed=0):
    """A small residual CNN on 8x8 digits, softmax head."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(48, 3, padding="same", activation="relu")(inputs)
    branch = keras.layers.Conv2D(48, 3, padding="same", activation="relu")(h)
    h = keras.layers.Add()([h, keras.layers.Conv2D(48, 1)(branch)])
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = keras.layers.Dense(32, activation="relu")(h)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(h))


model = build_model()
model.compile("adam", loss, metrics=["accuracy"])
model.fit(x_train, y_train, epochs=2, verbose=0)
mlp = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                        *[keras.layers.Dense(32, activation="relu") for _ in range(4)],
                        keras.layers.Dense(10)])
mlp.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
schedule = keras_prune.schedules.ConstantSparsity(0.5, begin_step=0, frequency=8)
dataset = tf.data.Dataset.from_tensor_slices((x_train, y_train)).batch(64)


def _gpt2():
    import keras_hub

    vocabulary = {"<|endoftext|>": 0}
    for token in [*string.ascii_lowercase, *("Ġ" + c for c in string.ascii_lowercase), "Ġ",
                  ".", ",", "Ġt", "he"]:
        vocabulary.setdefault(token, len(vocabulary))
    tokenizer = keras_hub.models.GPT2Tokenizer(vocabulary=vocabulary, merges=["Ġ t", "h e"])
    preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(tokenizer, sequence_length=16)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=len(vocabulary), num_layers=3, num_heads=2, hidden_dim=16,
        intermediate_dim=32, max_sequence_length=16)
    return backbone, preprocessor


backbone, preprocessor = _gpt2()
lm = keras_hub_lm = None
token_ids = preprocessor(["the quick brown fox", "jumps over the lazy dog"] * 4)[0]
token_ids = {key: np.asarray(value) for key, value in token_ids.items()}
calibration_tokens = token_ids


def _lm():
    import keras_hub

    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=preprocessor)


lm = _lm()

def _moe_and_clip():
    """A mixture of experts reading those token ids, and a two-tower CLIP."""
    import keras_hub

    models = keras_hub.models
    moe = models.QwenMoeBackbone(
        vocabulary_size=backbone.vocabulary_size, num_layers=2, num_query_heads=2,
        num_key_value_heads=1, hidden_dim=16, intermediate_dim=32, moe_intermediate_dim=16,
        shared_expert_intermediate_dim=16, num_experts=4, top_k=2)
    clip = models.CLIPBackbone(
        models.CLIPVisionEncoder(patch_size=4, hidden_dim=16, num_layers=2, num_heads=2,
                                 intermediate_dim=32, image_shape=(16, 16, 3)),
        models.CLIPTextEncoder(vocabulary_size=50, embedding_dim=16, hidden_dim=16,
                               num_layers=2, num_heads=2, intermediate_dim=32,
                               max_sequence_length=16),
        projection_dim=8)
    return moe, clip


moe, clip = _moe_and_clip()
