import keras
import pytest

import keras_prune
from keras_prune.schedules import ConstantSparsity


def test_tf_keras_model_gets_a_migration_message():
    LegacySequential = type("Sequential", (), {"get_config": lambda self: {}})
    LegacySequential.__module__ = "tf_keras.src.engine.sequential"
    with pytest.raises(TypeError, match=r"tf_keras \(Keras 2\).*Keras 3"):
        keras_prune.prune_low_magnitude(LegacySequential())


class _Unbuilt(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(3)

    def call(self, x):
        return self.dense(x)


class _Scale(keras.layers.Layer):
    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],))

    def call(self, x):
        return x * self.scale


def test_unbuilt_subclassed_model_is_rejected_with_how_to_build_it():
    with pytest.raises(ValueError, match=r"not built.*keras.Input"):
        keras_prune.prune_low_magnitude(_Unbuilt())


def test_unsupported_layer_asked_for_lists_supported_and_the_hook():
    with pytest.raises(NotImplementedError, match=r"_Scale.*Dense.*register_prunable_layer"):
        keras_prune.prune_low_magnitude(_Scale())


def test_unsupported_layer_error_is_also_a_value_error_as_in_tfmot():
    with pytest.raises(ValueError, match="_Scale"):
        keras_prune.prune_low_magnitude(_Scale())


def test_unsupported_layer_named_in_filters_is_an_error(helpers):
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2)(keras.layers.BatchNormalization(name="bn")(inputs))
    model = keras.Model(inputs, outputs)
    with pytest.raises(NotImplementedError, match="bn"):
        keras_prune.prune_low_magnitude(model, filters=["bn"])
    with pytest.raises(ValueError, match="not in model"):
        keras_prune.prune_low_magnitude(model, filters=["no_such_layer"])


def test_already_wrapped_layers_are_kept_as_they_are_as_in_tfmot(helpers):
    pruned = keras_prune.prune_low_magnitude(helpers.small_cnn())
    again = keras_prune.prune_low_magnitude(pruned)
    assert again.pruning_report.kept_wrapped == ["prune_low_magnitude_conv2d",
                                                 "prune_low_magnitude_dense",
                                                 "prune_low_magnitude_dense_1"]
    assert [type(layer).__name__ for layer in again.layers] == [
        type(layer).__name__ for layer in pruned.layers
    ]
    wrapper = keras_prune.prune_low_magnitude(keras.layers.Dense(2))
    assert keras_prune.prune_low_magnitude(wrapper) is wrapper


def test_schedule_that_is_not_a_pruning_schedule_is_a_type_error(helpers):
    with pytest.raises(TypeError, match=r"pruning_schedule.*PruningSchedule.*float"):
        keras_prune.prune_low_magnitude(helpers.small_cnn(), pruning_schedule=0.5)


def test_block_size_that_does_not_fit_the_weight(helpers):
    with pytest.raises(ValueError, match=r"block_size.*does not fit"):
        keras_prune.prune_low_magnitude(helpers.small_cnn(), block_size=(64, 64), filters=["dense_1"])
    with pytest.raises(ValueError, match="block_size"):
        keras_prune.prune_low_magnitude(helpers.small_cnn(), block_size=(0, 2))


def test_m_greater_than_n_is_rejected(helpers):
    with pytest.raises(ValueError, match="m must be smaller than n"):
        keras_prune.prune_low_magnitude(helpers.small_cnn(), sparsity_m_by_n=(4, 2))


def test_bad_filters_and_pooling_type(helpers):
    with pytest.raises(TypeError, match="filters"):
        keras_prune.prune_low_magnitude(helpers.small_cnn(), filters=3)
    with pytest.raises(ValueError, match="block_pooling_type"):
        keras_prune.prune_low_magnitude(helpers.small_cnn(), block_pooling_type="SUM")


def test_register_prunable_layer_makes_custom_layers_prunable(helpers):
    class Scale(keras.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], 4))

        def call(self, x):
            return x @ self.w

    with pytest.raises(NotImplementedError):
        keras_prune.prune_low_magnitude(Scale())
    keras_prune.register_prunable_layer(Scale, ["w"])
    wrapper = keras_prune.prune_low_magnitude(Scale(), ConstantSparsity(0.5, 0))
    wrapper.build((None, 8))
    assert wrapper.masks[0].shape == (8, 4)
    with pytest.raises(TypeError, match="weight_names"):
        keras_prune.register_prunable_layer(Scale, "w")


def test_prunable_layer_protocol(helpers):
    class MyDense(keras.layers.Layer, keras_prune.PrunableLayer):
        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], 3))
            self.other = self.add_weight(shape=(3,))

        def call(self, x):
            return x @ self.kernel + self.other

        def get_prunable_weights(self):
            return [self.kernel]

    wrapper = keras_prune.prune_low_magnitude(MyDense())
    wrapper.build((None, 5))
    assert [m.shape for m in wrapper.masks] == [(5, 3)]
