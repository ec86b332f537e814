"""The one place keras_prune branches on the Keras backend: gradients of a model.

Used by criteria that need d(objective)/d(weight) once, outside `fit`: SNIP and
SynFlow (pruning at initialization) and the Taylor criterion of structured pruning.
"""

import keras

from keras_prune._models.calls import takes_training


def gradients(model, inputs, objective):
    """Gradients of `objective(model(inputs))` for `model.trainable_variables`.

    The model runs in inference mode; `objective` maps its outputs to a scalar.
    Returns one tensor per trainable variable, on any backend.
    """
    backend = keras.backend.backend()
    variables = model.trainable_variables
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            value = objective(model(inputs, training=False))
        return tape.gradient(value, variables)
    if backend == "jax":
        import jax

        non_trainable = [v.value for v in model.non_trainable_variables]
        # stateless_call hands its keywords to call(); a subclassed call() may take none.
        mode = {"training": False} if takes_training(model) else {}

        def compute(trainable):
            outputs, _ = model.stateless_call(trainable, non_trainable, inputs, **mode)
            return objective(outputs)

        return jax.grad(compute)([v.value for v in variables])
    if backend == "torch":
        for variable in variables:
            variable.value.grad = None
        objective(model(inputs, training=False)).backward()
        return [variable.value.grad for variable in variables]
    raise NotImplementedError(f"Gradients are not implemented for the {backend} backend.")


def loss_gradients(model, x, y, loss):
    """Gradients of the mean of `loss(y, model(x))` for `model.trainable_variables`."""
    y = keras.ops.convert_to_tensor(y)
    return gradients(model, x, lambda outputs: keras.ops.mean(loss(y, outputs)))


def resolve_loss(model, loss, purpose):
    """`loss` (a name, function or Loss) or else the model's compiled loss."""
    loss = loss if loss is not None else getattr(model, "loss", None)
    if loss is None:
        raise ValueError(
            f"{purpose} needs a loss: compile the model first, or pass `loss=` (e.g. "
            "keras.losses.SparseCategoricalCrossentropy(from_logits=True))."
        )
    return keras.losses.get(loss)


def summed_loss_gradients(model, x, y, loss, batch_size):
    """{id(variable): sum over mini-batches of the loss gradient} as NumPy arrays.

    `x` is one array or a list of arrays (one per model input).
    """
    import numpy as np

    inputs = x if isinstance(x, (list, tuple)) else [x]
    total = {}
    for start in range(0, len(y), batch_size):
        batch = [np.asarray(a[start:start + batch_size]) for a in inputs]
        batch = batch[0] if len(batch) == 1 else batch
        grads = loss_gradients(model, batch, np.asarray(y[start:start + batch_size]), loss)
        for variable, grad in zip(model.trainable_variables, grads):
            if grad is not None:
                total[id(variable)] = total.get(id(variable), 0) + keras.ops.convert_to_numpy(grad)
    return total
