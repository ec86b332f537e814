"""Small graph models covering every layer kind the structured rules know."""

import keras

L = keras.layers


def residual_cnn():
    """Conv/BN/ReLU, a residual Add, depthwise x2, Concatenate, Flatten into Dense."""
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, padding="same", name="c1")(inputs)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.ReLU(name="relu1")(x)
    y = L.Conv2D(8, 3, padding="same", name="c2")(x)
    y = L.BatchNormalization(name="bn2")(y)
    x = L.Add(name="add")([x, y])
    dw = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(x)
    side = L.Conv2D(4, 1, name="c3")(x)
    x = L.Concatenate(name="concat")([dw, side])
    x = L.MaxPooling2D(2, name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(16, activation="relu", name="d1")(x)
    x = L.Dropout(0.1, name="drop")(x)
    return keras.Model(inputs, L.Dense(3, name="out")(x), name="residual_cnn")


def assorted_cnn():
    """Separable, transpose, padding, cropping, upsampling, PReLU, SE-style Multiply,
    Subtract/Average/Maximum/Minimum merges, global pooling, Reshape."""
    inputs = keras.Input((8, 8, 2))
    x = L.ZeroPadding2D(1, name="pad")(inputs)
    x = L.SeparableConv2D(8, 3, depth_multiplier=2, name="sep")(x)
    x = L.PReLU(name="prelu")(x)
    t = L.Conv2DTranspose(8, 3, strides=2, padding="same", name="tconv")(x)
    t = L.Cropping2D(4, name="crop")(t)
    t = L.UpSampling2D(name="up")(L.AveragePooling2D(2, name="avg")(t))
    squeeze = L.GlobalAveragePooling2D(name="gap")(t)
    squeeze = L.Dense(4, activation="relu", name="se1")(squeeze)
    squeeze = L.Dense(8, activation="sigmoid", name="se2")(squeeze)
    squeeze = L.Reshape((1, 1, 8), name="se_reshape")(squeeze)
    t = L.Multiply(name="se_mul")([t, squeeze])
    merged = [
        L.Subtract(name="sub")([x, t]),
        L.Average(name="avg_merge")([x, t]),
        L.Maximum(name="max")([x, t]),
        L.Minimum(name="min")([x, t]),
    ]
    x = L.Add(name="sum")(merged)
    x = L.Activation("tanh", name="tanh")(x)
    x = L.GlobalMaxPooling2D(name="gmp")(x)
    x = L.Dense(6, name="d")(x)
    return keras.Model(inputs, L.Dense(2, name="out")(x), name="assorted_cnn")


def conv1d_model():
    inputs = keras.Input((16, 3))
    x = L.Conv1D(8, 3, activation="relu", name="c1")(inputs)
    x = L.SeparableConv1D(6, 3, name="sep1")(x)
    x = L.DepthwiseConv1D(3, name="dw1")(x)
    x = L.Conv1DTranspose(5, 3, name="t1")(x)
    x = L.UpSampling1D(name="up")(L.MaxPooling1D(2, name="pool")(x))
    x = L.GlobalAveragePooling1D(name="gap")(x)
    return keras.Model(inputs, L.Dense(2, name="out")(x), name="conv1d_model")


def transformer(heads=4):
    """Embedding -> attention (+ residual, LayerNorm) -> feed-forward -> pooled logits."""
    tokens = keras.Input((6,), dtype="int32")
    x = L.Embedding(20, 16, name="embed")(tokens)
    attention = L.MultiHeadAttention(heads, 8, name="mha")(x, x)
    x = L.LayerNormalization(name="ln1")(L.Add(name="res1")([x, attention]))
    ffn = L.Dense(32, activation="relu", name="ffn1")(x)
    ffn = L.Dense(16, name="ffn2")(ffn)
    x = L.LayerNormalization(name="ln2")(L.Add(name="res2")([x, ffn]))
    x = L.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(tokens, L.Dense(3, name="out")(x), name="transformer")


def grouped_attention():
    """GroupQueryAttention (2 key/value groups, then multi-query) and MHA with output_shape."""
    tokens = keras.Input((6,), dtype="int32")
    x = L.Embedding(20, 16, name="embed")(tokens)
    attention = L.GroupQueryAttention(4, 4, 2, name="gqa")(x, x)
    x = L.LayerNormalization(name="ln1")(L.Add(name="res1")([x, attention]))
    x = L.MultiHeadAttention(2, 4, output_shape=12, name="mha_out")(x, x)
    x = L.Dense(16, activation="relu", name="ffn")(x)
    x = L.GroupQueryAttention(4, 4, 1, use_gate=True, name="mqa")(x, x)
    x = L.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(tokens, L.Dense(3, name="out")(x), name="grouped_attention")


def sequential_mlp():
    return keras.Sequential(
        [keras.Input((10,)), L.Dense(12, activation="relu", name="h1"),
         L.BatchNormalization(name="bn"), L.Dense(8, activation="relu", name="h2"),
         L.Dense(2, name="out")],
        name="mlp",
    )


def nested():
    """A Functional backbone inside a Sequential head."""
    inputs = keras.Input((8, 8, 1))
    x = L.Conv2D(8, 3, activation="relu", name="b1")(inputs)
    x = L.Conv2D(6, 3, activation="relu", name="b2")(x)
    backbone = keras.Model(inputs, x, name="backbone")
    return keras.Sequential(
        [keras.Input((8, 8, 1)), backbone, L.GlobalAveragePooling2D(name="gap"),
         L.Dense(4, activation="relu", name="h"), L.Dense(2, name="out")],
        name="nested",
    )


def shared_dense():
    """One Dense applied to two inputs: its input and output channels are shared."""
    a, b = keras.Input((5,), name="a"), keras.Input((5,), name="b")
    first = L.Dense(8, activation="relu", name="first")
    shared = L.Dense(6, activation="relu", name="shared")
    x = L.Concatenate(name="cat")([shared(first(a)), shared(first(b))])
    return keras.Model([a, b], L.Dense(2, name="out")(x), name="shared_dense")
