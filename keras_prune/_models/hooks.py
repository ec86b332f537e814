"""Eager layer hooks: watch chosen layers' inputs and outputs while a model runs."""

import contextlib


@contextlib.contextmanager
def hooked(layers, hook):
    """Calls `hook(layer, args, kwargs, output)` after each call of each layer (eager runs only)."""
    originals = {}

    def wrap(layer, original):
        def call(*args, **kwargs):
            output = original(*args, **kwargs)
            hook(layer, args, kwargs, output)
            return output

        return call

    try:
        for layer in layers:
            originals[id(layer)] = (layer, layer.call)
            layer.call = wrap(layer, layer.call)
        yield
    finally:
        for layer, original in originals.values():
            del layer.call
            if layer.call != original:  # an instance attribute of its own, put it back
                layer.call = original
