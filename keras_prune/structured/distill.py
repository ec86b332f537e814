"""Recovery by knowledge distillation: the pruned student learns the teacher's outputs."""

import keras

from keras_prune._validation import check_int

_LOSSES = ("kl", "mse")


class Distiller(keras.Model):
    """Trains `student` on a teacher's outputs with plain `fit`, on every backend.

    The loss is `alpha * distillation + (1 - alpha) * loss(y, student(x))` (the
    second term only when labels are given). Distillation is the KL divergence
    between the teacher's and the student's softened logits (temperature T,
    scaled by T**2, Hinton et al. 2015), or the mean squared error between their
    outputs (`loss="mse"`, for models whose outputs are not logits). Token
    positions whose `padding_mask` is False do not count.
    """

    def __init__(self, student, teacher, temperature=2.0, alpha=1.0, loss="kl", **kwargs):
        super().__init__(**kwargs)
        self.student = student
        self.teacher = teacher
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.distillation_loss = loss

    def call(self, x, training=False):
        return self.student(x, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        teacher = keras.ops.stop_gradient(self.teacher(x, training=False))
        weights = _token_weights(x, y_pred)
        if self.distillation_loss == "kl":
            t = self.temperature
            p = keras.ops.softmax(teacher / t, axis=-1)
            log_q = keras.ops.log_softmax(y_pred / t, axis=-1)
            log_p = keras.ops.log_softmax(teacher / t, axis=-1)
            per_token = keras.ops.sum(p * (log_p - log_q), axis=-1) * (t * t)
        else:
            per_token = keras.ops.mean(keras.ops.square(teacher - y_pred), axis=-1)
        loss = _weighted_mean(per_token, weights) * self.alpha
        if y is not None and self.alpha < 1:
            ce = keras.losses.sparse_categorical_crossentropy(y, y_pred, from_logits=True)
            loss = loss + (1 - self.alpha) * _weighted_mean(ce, weights)
        return loss


def _token_weights(x, y_pred):
    mask = x.get("padding_mask") if isinstance(x, dict) else None
    if mask is None or len(mask.shape) != len(y_pred.shape) - 1:
        return None
    return keras.ops.cast(mask, y_pred.dtype)


def _weighted_mean(values, weights):
    if weights is None:
        return keras.ops.mean(values)
    return keras.ops.sum(values * weights) / keras.ops.maximum(keras.ops.sum(weights), 1.0)


def distill(student, teacher, data, y=None, *, epochs=1, batch_size=32, steps_per_epoch=None,
            temperature=2.0, alpha=1.0, loss="kl", optimizer=None, learning_rate=1e-3,
            callbacks=None, verbose="auto"):
    """Trains `student` in place to match `teacher`'s outputs; returns the History.

    The usual recovery after structured pruning (Minitron, arXiv 2407.14679): the
    pruned model learns the unpruned model's logits (KL at `temperature`), which
    recovers more per step than the labels alone. The teacher is not changed.

    Example:

    ```python
    small, report = keras_prune.structured.prune_structured(lm, units=0.5, heads=0.5)
    keras_prune.structured.distill(small, lm, x_train, epochs=1)
    ```

    Args:
        student: the model to train (e.g. the pruned model); trained in place.
        teacher: the model to learn from (e.g. the unpruned model); its outputs
            must have the student's shape.
        data: inputs as `fit` takes them (arrays, dicts of arrays), or a
            `tf.data.Dataset` of inputs or of (inputs, labels) batches.
        y: optional labels (integer classes or next tokens) for the
            `(1 - alpha)` cross-entropy term.
        epochs, batch_size, steps_per_epoch, callbacks, verbose: as in `fit`.
        temperature: softening of both distributions for "kl" (default 2.0).
        alpha: weight of the distillation term, in (0, 1]; 1 (default) ignores `y`.
        loss: "kl" (outputs are logits, default) or "mse".
        optimizer: a Keras optimizer; default Adam(learning_rate).
        learning_rate: for the default optimizer (default 1e-3).

    Returns:
        The `keras.callbacks.History` of the `fit`.
    """
    for name, model in (("student", student), ("teacher", teacher)):
        if not isinstance(model, keras.Model):
            raise TypeError(f"Argument `{name}` must be a Keras model. Received: {type(model)}.")
    if loss not in _LOSSES:
        raise ValueError(f"Argument `loss` must be one of {_LOSSES}. Received: loss={loss!r}.")
    if not 0 < alpha <= 1:
        raise ValueError(f"Argument `alpha` must be in (0, 1]. Received: alpha={alpha}.")
    if not temperature > 0:
        raise ValueError(f"Argument `temperature` must be > 0. Received: temperature={temperature}.")
    check_int("epochs", epochs, minimum=1)
    if alpha < 1 and y is None and not hasattr(data, "as_numpy_iterator"):
        raise ValueError(
            f"alpha={alpha} gives {1 - alpha:.2f} of the loss to the labels, but `y` is None. "
            "Pass the labels as `y`, or alpha=1.0 to learn from the teacher alone."
        )
    if data is None:
        raise ValueError("Argument `data` is required: the inputs (or a dataset) the student "
                         "learns the teacher's outputs on. Received: data=None.")
    leaves = [] if hasattr(data, "as_numpy_iterator") else [
        leaf for leaf in keras.tree.flatten(data) if hasattr(leaf, "shape")]
    if leaves and any(len(leaf.shape) and leaf.shape[0] == 0 for leaf in leaves):
        raise ValueError("Argument `data` holds no samples (0 rows), so distillation would "
                         "return without training. Pass the training inputs, e.g. data=x_train.")
    _check_same_outputs(student, teacher)
    if student is teacher:
        raise ValueError("Arguments `student` and `teacher` are the same model; pass the pruned "
                         "model as `student` and the unpruned one as `teacher`.")
    trainable = teacher.trainable
    teacher.trainable = False
    try:
        distiller = Distiller(student, teacher, temperature, alpha, loss)
        distiller.compile(optimizer=optimizer or keras.optimizers.Adam(learning_rate))
        return distiller.fit(data, y, epochs=epochs, batch_size=None if hasattr(
            data, "as_numpy_iterator") else batch_size, steps_per_epoch=steps_per_epoch,
            callbacks=callbacks, verbose=verbose)
    finally:
        teacher.trainable = trainable


def _output_widths(model):
    """The last dimension of each output, where the model's graph records it."""
    try:
        outputs = keras.tree.flatten(model.outputs)
    except (AttributeError, ValueError):  # a subclassed model: nothing recorded
        return None
    return [t.shape[-1] for t in outputs]


def _check_same_outputs(student, teacher):
    mine, theirs = _output_widths(student), _output_widths(teacher)
    if mine is None or theirs is None or mine == theirs:
        return
    raise ValueError(
        f"The student's outputs ({mine} classes or tokens) differ from the teacher's "
        f"({theirs}): distillation compares them one by one, so both need the same "
        "vocabulary or classes. Prune the teacher itself for the student (its output layer "
        "keeps its width), or give both the same head."
    )
