"""The rule of each layer class: `rule_for(layer)`, `register_rule(cls, rule)`.

Rules are looked up by exact layer class: a subclass may compute something else, so
it gets no rule (and its channels are frozen) until it is registered.
"""

import keras

from keras_prune.structured import attention_rules, rules
from keras_prune.structured.rules import Rule

_RULES = {}


def register_rule(layer_class, rule):
    """Uses `rule` (a `Rule` instance) for layers of exactly `layer_class`.

    Built-in rules can be reused for a subclass that keeps its parent's weights and
    channel semantics: `register_rule(MyConv, rules.CONV)`.
    """
    if not (isinstance(layer_class, type) and issubclass(layer_class, keras.layers.Layer)):
        raise TypeError(
            "Argument `layer_class` must be a keras.layers.Layer subclass. "
            f"Received: {layer_class!r}."
        )
    if not isinstance(rule, Rule):
        raise TypeError(
            f"Argument `rule` must be a keras_prune.structured.Rule instance. Received: {rule!r}."
        )
    _RULES[layer_class] = rule


def rule_for(layer):
    return _RULES.get(type(layer))


L = keras.layers
for _cls in (
    L.ReLU, L.LeakyReLU, L.ELU, L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D,
    L.SpatialDropout3D, L.GaussianNoise, L.GaussianDropout, L.AlphaDropout,
    L.ActivityRegularization, L.Identity, L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D,
    L.Cropping1D, L.Cropping2D, L.Cropping3D, L.UpSampling1D, L.UpSampling2D, L.UpSampling3D,
    L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D, L.AveragePooling1D, L.AveragePooling2D,
    L.AveragePooling3D, L.GlobalAveragePooling1D, L.GlobalAveragePooling2D,
    L.GlobalAveragePooling3D, L.GlobalMaxPooling1D, L.GlobalMaxPooling2D, L.GlobalMaxPooling3D,
    L.RepeatVector,
):
    _RULES[_cls] = rules.PASS
for _cls in (L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum):
    _RULES[_cls] = rules.MERGE
for _cls in (L.Conv1D, L.Conv2D, L.Conv3D):
    _RULES[_cls] = rules.CONV
for _cls in (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose):
    _RULES[_cls] = rules.CONV_TRANSPOSE
for _cls in (L.DepthwiseConv1D, L.DepthwiseConv2D):
    _RULES[_cls] = rules.DEPTHWISE
for _cls in (L.SeparableConv1D, L.SeparableConv2D):
    _RULES[_cls] = rules.SEPARABLE
_RULES.update({
    L.Activation: rules.ACTIVATION,
    L.Rescaling: rules.RESCALING,
    L.Dense: rules.DENSE,
    L.Embedding: rules.EMBEDDING,
    L.BatchNormalization: rules.BATCH_NORM,
    L.LayerNormalization: rules.LAYER_NORM,
    L.PReLU: rules.PRELU,
    L.Concatenate: rules.CONCATENATE,
    L.Flatten: rules.FLATTEN,
    L.Reshape: rules.RESHAPE,
    L.MultiHeadAttention: attention_rules.MULTI_HEAD_ATTENTION,
    L.GroupQueryAttention: attention_rules.GROUP_QUERY_ATTENTION,
})
del L, _cls
