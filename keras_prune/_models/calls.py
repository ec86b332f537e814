"""How Keras binds a layer's call arguments, set for wrappers (Keras' private attributes)."""

import inspect


def adopt_call_signature(wrapper, layer):
    """Makes Keras bind a wrapper's call arguments to the wrapped layer's signature.

    The wrapper's own `call(*args, training=None, **kwargs)` forwards anything,
    but Keras binds arguments to the signature it records in `Layer.__init__`:
    with the inner layer's signature (plus `training`), keyword calls such as
    `MultiHeadAttention(query=x, value=x)` work through the wrapper. Sets
    `wrapper._inner_takes_training`: whether the wrapped layer's call takes `training`.
    """
    signature = inspect.signature(layer.call)
    wrapper._inner_takes_training = "training" in signature.parameters
    parameters = list(signature.parameters.values())
    if "training" not in signature.parameters:
        training = inspect.Parameter("training", inspect.Parameter.KEYWORD_ONLY, default=None)
        variadic = [p for p in parameters if p.kind is inspect.Parameter.VAR_KEYWORD]
        parameters = [p for p in parameters if p not in variadic] + [training] + variadic
    wrapper._call_signature = signature.replace(parameters=parameters)
    wrapper.call_signature_parameters = [p.name for p in parameters]
    wrapper._call_has_training_arg = True
    wrapper._call_has_mask_arg = "mask" in wrapper.call_signature_parameters
    if hasattr(wrapper, "_call_has_context_arg"):
        wrapper._call_has_context_arg = {
            arg: arg in wrapper.call_signature_parameters for arg in wrapper._call_context_args
        }


def takes_training(model):
    """Whether `model.call` takes a `training` argument (Keras records it on the layer)."""
    return getattr(model, "_call_has_training_arg", True)


def own_variables(layer):
    """The variables a layer creates itself (not its sub-layers'), trainable first."""
    return list(layer._trainable_variables) + list(layer._non_trainable_variables)
