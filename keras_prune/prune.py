"""`prune_low_magnitude`: wrap the prunable layers of a layer, list or model."""

import re

import keras

from keras_prune import _models, _validation
from keras_prune.errors import NotALayerError, UnsupportedLayerError
from keras_prune.layers import registry
from keras_prune.layers.wrapper import PruneLowMagnitude, check_schedule, collect_wrappers
from keras_prune.masking.block import is_blockable
from keras_prune.pruning_policy import PruningPolicy
from keras_prune.report import PruningReport
from keras_prune.schedules import PruningSchedule


def _make_filter(filters):
    if filters is None:
        return lambda layer: True
    if isinstance(filters, str):
        pattern = re.compile(filters)
        return lambda layer: bool(pattern.search(layer.name))
    if callable(filters):
        return filters
    if isinstance(filters, (list, tuple, set)) and all(isinstance(f, str) for f in filters):
        names = set(filters)
        return lambda layer: layer.name in names
    raise TypeError(
        "Argument `filters` must be None, a regex string matched against layer names, a "
        f"list of layer names, or a callable layer -> bool. Received: filters={filters!r}."
    )


def _prunable(layer):
    """A layer with weights to prune (not merely a no-op wrapper candidate)."""
    return registry.is_prunable(layer) and not registry.has_nothing_to_prune(layer)


def _blocks_fit(layer, block_size):
    """False when a built layer has a prunable weight that is not rank 2."""
    if not layer.built:
        return True  # checked when the wrapper is built
    return all(is_blockable(w.shape) for w in registry.get_prunable_weights(layer))


def _check_layer_sparsity(layer_sparsity, global_pruning):
    if layer_sparsity is None:
        return {}
    if not isinstance(layer_sparsity, dict):
        raise TypeError(
            "Argument `layer_sparsity` must be a dict {layer name: sparsity or schedule}, "
            "e.g. keras_prune.sensitivity.allocate(model, 0.9). "
            f"Received: {type(layer_sparsity).__name__}."
        )
    if global_pruning:
        raise ValueError(
            "Arguments `layer_sparsity` and `global_pruning=True` cannot be combined: a "
            "global threshold decides each layer's sparsity itself."
        )
    return dict(layer_sparsity)


def _layer_schedule(schedule, value, name):
    if isinstance(value, PruningSchedule):
        return value
    sparsity = _validation.check_fraction(f"layer_sparsity['{name}']", value)
    return schedule.with_final_sparsity(sparsity)


def prune_low_magnitude(
    to_prune,
    pruning_schedule=None,
    block_size=(1, 1),
    block_pooling_type="AVG",
    sparsity_m_by_n=None,
    filters=None,
    global_pruning=False,
    layer_sparsity=None,
    verbose=False,
    pruning_policy=None,
    **kwargs,
):
    """Wraps layers so that their weights are pruned by magnitude during training.

    tfmot's function, for Keras 3 on every backend. Accepts a layer, a list of
    layers, or a Sequential, Functional (also nested) or subclassed model. Only
    layers with prunable weights are wrapped; a model comes back as a NEW model
    with the same weights, and the input model is left unchanged. The returned
    model's `pruning_report` lists the pruned layers and the skipped ones (why).

    Example:

    ```python
    schedule = keras_prune.schedules.PolynomialDecay(0.0, 0.8, 0, 1000)
    pruned = keras_prune.prune_low_magnitude(model, pruning_schedule=schedule)
    pruned.compile(...)
    pruned.fit(x, y, callbacks=[keras_prune.callbacks.PruneCallback()])
    ```

    Args:
        to_prune: A Keras 3 layer, list of layers, or built model.
        pruning_schedule: A `PruningSchedule`. Defaults to a new
            `ConstantSparsity(0.5, begin_step=0)` on every call.
        block_size: (rows, cols) blocks pruned together in rank-2 weights (after
            dropping size-1 dimensions). A wrapped layer whose weights are not rank 2
            raises, as in tfmot; in a model such layers are pruned element by element
            and listed in `pruning_report.elementwise`.
        block_pooling_type: "AVG" or "MAX" pooling of a block's magnitudes.
        sparsity_m_by_n: None or (m, n): m zeros in every n input channels.
        filters: Which layers of a model to prune: None (all supported), a regex
            matched against layer names, a list of names, or a callable.
        global_pruning: One magnitude threshold across all pruned layers of the
            model (layers end up with different sparsities, the total on schedule).
        layer_sparsity: Per-layer targets from one call, e.g. the result of
            `keras_prune.sensitivity.allocate`: {layer name: final sparsity or
            PruningSchedule}. A number rescales `pruning_schedule` to end at it
            (`schedule.with_final_sparsity`); layers not named use
            `pruning_schedule`. Layers inside custom layers may be named
            "outer/inner" or by their own name.
        verbose: Print the pruning report.
        pruning_policy: tfmot's `PruningPolicy` for a model, e.g.
            `keras_prune.PruneForLatencyOnXNNPack()`: the model's structure is checked
            (ValueError otherwise) and only the layers the policy allows are wrapped.
        **kwargs: Passed to each `PruneLowMagnitude` wrapper.

    Returns:
        A wrapper, a list of wrappers, or a new model (with `.pruning_report`).

    Raises:
        TypeError: for a tf_keras (Keras 2) object or a non-schedule.
        ValueError: for an unbuilt subclassed model, or bad arguments.
        UnsupportedLayerError: (a ValueError and a NotImplementedError) for a
            layer that cannot be pruned, passed directly or named in `filters`.
        NotALayerError: (a ValueError and a TypeError, as tfmot raises
            ValueError) when `to_prune` is not a layer, list or model.
    """
    _models.check_keras3(to_prune, "to_prune")
    wrapper_args = _wrapper_arguments(pruning_schedule, block_size, block_pooling_type,
                                      sparsity_m_by_n, global_pruning, kwargs)
    per_layer = _check_layer_sparsity(layer_sparsity, global_pruning)
    if per_layer and not isinstance(to_prune, keras.Model):
        raise ValueError(
            "Argument `layer_sparsity` applies to a model. For a single layer or a list, "
            "pass each layer its own `pruning_schedule`."
        )
    if not isinstance(to_prune, keras.Model):
        return _wrap_layers(to_prune, wrapper_args)
    if not (isinstance(to_prune, keras.Sequential) and not to_prune.built):
        _models.check_built(to_prune)  # an unbuilt Sequential builds on its first call
    filters = _with_policy(pruning_policy, to_prune, filters)
    new = _ModelPruning(to_prune, wrapper_args, filters, per_layer).run()
    if verbose:
        print(new.pruning_report)
    return new


def _with_policy(policy, model, filters):
    """`filters` narrowed to the layers `policy` allows, after it checked the model."""
    if policy is None:
        return filters
    if not isinstance(policy, PruningPolicy):
        raise TypeError(
            "Argument `pruning_policy` must be a keras_prune.PruningPolicy, e.g. "
            f"PruneForLatencyOnXNNPack(). Received: pruning_policy={policy!r}.")
    policy.ensure_model_supports_pruning(model)
    selected = _make_filter(filters)
    return lambda layer: policy.allow_pruning(layer) and selected(layer)


def _wrapper_arguments(pruning_schedule, block_size, block_pooling_type, sparsity_m_by_n,
                       global_pruning, kwargs):
    """The keyword arguments of every `PruneLowMagnitude` made by one call."""
    group = None
    schedule = check_schedule(pruning_schedule)
    if global_pruning:
        if isinstance(sparsity_m_by_n, (list, tuple)) or tuple(block_size) != (1, 1):
            raise ValueError(
                "Argument `global_pruning=True` ranks single weights across layers and cannot "
                "be combined with `block_size` or `sparsity_m_by_n`."
            )
        group = "global"
    return dict(
        pruning_schedule=schedule,
        block_size=_validation.check_int_pair("block_size", block_size),
        block_pooling_type=block_pooling_type,
        sparsity_m_by_n=sparsity_m_by_n,
        pruning_group=group,
        **kwargs,
    )


def _wrap_layers(to_prune, wrapper_args):
    """A layer or a list of layers: each wrapped (already wrapped ones kept, as in tfmot)."""
    if isinstance(to_prune, (list, tuple)):
        for index, layer in enumerate(to_prune):
            _models.check_keras3(layer, f"to_prune[{index}]")
        return [
            layer if isinstance(layer, PruneLowMagnitude) else PruneLowMagnitude(layer, **wrapper_args)
            for layer in to_prune
        ]
    if not isinstance(to_prune, keras.layers.Layer):
        raise NotALayerError(
            "Argument `to_prune` must be a Keras 3 layer, a list of layers or a Keras model. "
            f"Received: to_prune={to_prune!r} of type {type(to_prune).__name__}."
        )
    if isinstance(to_prune, PruneLowMagnitude):
        return to_prune  # already wrapped: returned as it is, as in tfmot
    return PruneLowMagnitude(to_prune, **wrapper_args)


class _ModelPruning:
    """One `prune_low_magnitude` call on a model: a copy with the selected layers wrapped
    (also inside custom layers), and the report of what was wrapped and skipped."""

    def __init__(self, model, wrapper_args, filters, per_layer):
        self.model = model
        self.wrapper_args = wrapper_args
        self.selected = _make_filter(filters)
        self.explicit = set(filters) if isinstance(filters, (list, tuple, set)) else set()
        self.per_layer = per_layer
        self.report = PruningReport()
        self.used = set()  # the names of `per_layer` that were used

    def run(self):
        model = self.model
        if _models.is_graph_model(model) or isinstance(model, keras.Sequential):
            new, copier = _models.rewrite_graph_model(model, self.transform, self.restart)
            self.report.shared = list(copier.shared)
        else:
            new = _models.rewrite_subclassed_model(model, self.transform)
        self.report_unreached(new)
        self.check_result()
        new.pruning_report = self.report
        return new

    def restart(self):
        """A layer that failed to copy makes the rewrite start over: so does the report."""
        for entries in (self.report.pruned, self.report.skipped, self.report.kept_wrapped,
                        self.report.elementwise):
            entries.clear()
        self.used.clear()

    def transform(self, original, copier):
        """The layer to use for `original` in the new model (None: a plain copy)."""
        report, selected = self.report, self.selected
        if isinstance(original, PruneLowMagnitude):
            report.kept_wrapped.append(original.name)
            return None  # kept as it is (copied), as in tfmot
        if isinstance(original, (keras.Model, keras.layers.InputLayer)):
            return None
        if not selected(original):
            report.skipped.append((original.name, "not selected by `filters`"))
            return None
        if not _prunable(original) and copier is not _models.NO_COPY:
            inside = [layer for layer in _models.flatten_layers(original)
                      if _prunable(layer) and selected(layer)]
            if inside and not _models.is_graph_model(original):
                # A custom layer (e.g. a transformer block) built from prunable layers:
                # copy it, then wrap its sub-layers in place.
                return copier.copy(original,
                                   then=lambda new: self.wrap_inside(new, original.name))
        if not _prunable(original):
            if original.name in self.explicit:
                raise UnsupportedLayerError(registry.unsupported_layer_message(original))
            reason = (
                "no weights" if not original.weights else f"{type(original).__name__} "
                "is not a prunable layer type (see register_prunable_layer)"
            )
            report.skipped.append((original.name, reason))
            return None
        layer = copier.copy(original)
        if layer is original and copier is not _models.NO_COPY:
            report.skipped.append((original.name, copier.shared.pop()[1]))
            return original
        return self.wrap(layer, original.name)

    def wrap(self, layer, name):
        """The wrapper for `layer`, recorded in the report under `name`."""
        args, per_layer = self.wrapper_args, self.per_layer
        key = name if name in per_layer else name.rsplit("/", 1)[-1]
        if key in per_layer:
            schedule = _layer_schedule(args["pruning_schedule"], per_layer[key], key)
            args = {**args, "pruning_schedule": schedule}
            self.used.add(key)
        if args["block_size"] != (1, 1) and not _blocks_fit(layer, args["block_size"]):
            args = {**args, "block_size": (1, 1)}
            self.report.elementwise.append(name)
        wrapper = PruneLowMagnitude(layer, **args)
        if layer.built:
            wrapper.build(None)
        self.report.pruned.append(name)
        return wrapper

    def wrap_inside(self, layer, outer_name):
        _models.swap_layers(
            layer,
            lambda inner: self.wrap(inner, f"{outer_name}/{inner.name}")
            if _prunable(inner) and self.selected(inner) else None,
        )

    def report_unreached(self, new):
        """Prunable layers that no wrapper reached: those inside a Sequential or
        Functional model that a custom layer holds (ViTDet's MLP, DeepLabV3's pyramid
        pooling). They stay dense; the report says so, with why."""
        masked = {id(v) for wrapper in collect_wrappers(new) for v in wrapper.prunable_weights}
        named = {name.rsplit("/", 1)[-1] for name, _ in self.report.skipped}
        for owner in _models.flatten_layers(new):
            if (isinstance(owner, PruneLowMagnitude) or _models.is_graph_model(owner)
                    or _prunable(owner)):
                continue
            held = []
            for value in vars(owner).values():
                items = value.values() if isinstance(value, dict) else (
                    value if isinstance(value, (list, tuple)) else [value])
                held += [item for item in items if _models.is_graph_model(item)]
            for nested in held:
                for layer in _models.flatten_layers(nested):
                    if (_prunable(layer) and self.selected(layer) and layer.name not in named
                            and not {id(v) for v in layer.weights} & masked):
                        named.add(layer.name)
                        self.report.skipped.append((
                            f"{owner.name}/{layer.name}",
                            f"inside a {type(nested).__name__} that the custom layer "
                            f"{type(owner).__name__} holds, which keras_prune cannot rewrite: "
                            "left dense"))

    def check_result(self):
        """Names that matched nothing, and a model with nothing pruned, are errors."""
        model, report = self.model, self.report
        pruned_names = {name.rsplit("/", 1)[-1] for name in report.pruned}
        missing = self.explicit - pruned_names - {name for name, _ in report.skipped}
        if missing:
            raise ValueError(
                f"Argument `filters` names layers that are not in model `{model.name}`: "
                f"{sorted(missing)}. Layer names: {[layer.name for layer in model.layers]}."
            )
        unused = sorted(set(self.per_layer) - self.used)
        if unused:
            raise ValueError(
                f"Argument `layer_sparsity` names layers that are not pruned in model "
                f"`{model.name}`: {unused[:5]}. Pruned layers: {report.pruned[:10]}."
            )
        if not report.pruned and not report.kept_wrapped:
            raise ValueError(
                f"No layer of model `{model.name}` can be pruned with these arguments.\n{report}\n"
                + registry.unsupported_layer_message(model.layers[-1]).split(": ", 1)[-1]
            )
