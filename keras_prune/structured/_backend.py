"""The one place structured pruning branches on the Keras backend: gradients."""

import keras


def gradients(model, x, y, loss):
    """Gradients of `loss(y, model(x))` for model.trainable_variables, on any backend."""
    backend = keras.backend.backend()
    variables = model.trainable_variables
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            value = keras.ops.mean(loss(y, model(x, training=False)))
        return tape.gradient(value, variables)
    if backend == "jax":
        import jax

        trainable = [v.value for v in variables]
        non_trainable = [v.value for v in model.non_trainable_variables]

        def compute(trainable):
            out, _ = model.stateless_call(trainable, non_trainable, x, training=False)
            return keras.ops.mean(loss(y, out))

        return jax.grad(compute)(trainable)
    if backend == "torch":
        for v in variables:
            v.value.grad = None
        value = keras.ops.mean(loss(keras.ops.convert_to_tensor(y), model(x, training=False)))
        value.backward()
        return [v.value.grad for v in variables]
    raise NotImplementedError(f"importance='taylor' is not implemented for the {backend} backend.")
