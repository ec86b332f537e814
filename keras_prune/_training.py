"""Training and evaluating inside keras_prune's iterative methods (lottery, EGP).

Data is `(x, y)` arrays (batched by `batch_size`) or anything `fit`/`evaluate`
take (a tf.data.Dataset, a PyDataset...). Models are compiled from the user's
own compile config, so each round gets a fresh optimizer with the same settings.
"""


from keras_prune.callbacks import PruneCallback


def check_compiled(model, purpose):
    config = model.get_compile_config() if getattr(model, "compiled", False) else None
    if not config:
        raise ValueError(
            f"{purpose} trains the model, so `model` ({model.name}) must be compiled with the "
            "optimizer, loss and metrics to use, e.g. model.compile('adam', "
            "'sparse_categorical_crossentropy', metrics=['accuracy'])."
        )
    return config


def compile_from(model, config):
    """Compiles `model` with a fresh optimizer and the loss/metrics of `config`."""
    model.compile_from_config(config)
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    return model


def fit(model, data, *, epochs, batch_size, callbacks=(), verbose=0):
    callbacks = [PruneCallback(), *callbacks]
    if isinstance(data, tuple) and len(data) == 2:
        return model.fit(data[0], data[1], epochs=epochs, batch_size=batch_size,
                         callbacks=callbacks, verbose=verbose)
    return model.fit(data, epochs=epochs, callbacks=callbacks, verbose=verbose)


def evaluate(model, data, batch_size=256):
    """{metric name: float} of `model.evaluate` on `data`."""
    if isinstance(data, tuple) and len(data) == 2:
        logs = model.evaluate(data[0], data[1], batch_size=batch_size, verbose=0,
                              return_dict=True)
    else:
        logs = model.evaluate(data, verbose=0, return_dict=True)
    return {name: float(value) for name, value in logs.items()}


def headline(metrics):
    """(name, value) of the first accuracy metric in `metrics`, else the loss."""
    for name, value in metrics.items():
        if "acc" in name:
            return name, value
    return "loss", metrics.get("loss")
