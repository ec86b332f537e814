"""Structured pruning of keras_hub CNN backbones (and the Tasks on them), class kept.

keras_hub's CNN backbones (ResNet, VGG, CSPNet, MobileNet, EfficientNet, HGNetV2,
Xception, ...) are Functional graphs of plain Keras layers, so the dependency graph
traces them; their widths live in the config as integers or (nested) per-stage lists
(`stackwise_num_filters=[64, 128, ...]`). Pruning keeps the class by doing both:

1. **Probes** find the config's widths: each integer (or list entry) is halved in a
   copy of the config; an entry whose change moves some kernel's output width, and
   nothing else (no weight appears or goes), is a width. One that does not build is
   *fixed*, and the report says why.
2. **The smaller config** (every free width reduced by `ratio`, rounded) is built once,
   without weights, and each layer's width is read off it.
3. **The graph pruner** removes, from every layer, exactly the channels that bring it
   to that width (ranked by the chosen importance within each coupled group). A
   backbone's own outputs may narrow (its head is rebuilt); a Task's head keeps its classes.
4. Every weight of the new model, the same class (a Task with its head and
   preprocessor), is copied from the pruned graph by layer name; a shape that does not
   match says which config entry cannot express the pruned width.
"""

import keras
import numpy as np

from keras_prune._models import flatten_layers, input_sample
from keras_prune._views.hub import HubModel
from keras_prune.structured.hub.entries import Entry, config_integers, not_width
from keras_prune.structured.pruner import StructuredPruner, rounded_width
from keras_prune.structured.results import StructuredReport

def is_config_graph_model(model):
    """A keras_hub model the config-probe CNN path handles: no transformer widths."""
    hub = HubModel.of(model)
    return not hub.blocks and hub.units is None and hub.heads is None


class StagePruner:
    """Prunes a keras_hub CNN backbone or Task by editing its config entries.

    Args:
        model: a keras_hub Backbone (or a Task on one) built from Keras layers.
        ratio: the share of every free entry's channels to remove, in [0, 1).
        importance, data: how channels are ranked (see `prune_structured`).
        round_to: new entry values are multiples of this.
    """

    def __init__(self, model, ratio, importance="l1", *, data=None, round_to=None):
        self.hub = HubModel.of(model)
        self.ratio, self.importance, self.data = ratio, importance, data
        self.round_to = round_to
        self.entries = self._probe()

    # -- probes ---------------------------------------------------------------------

    def _probe(self):
        base = [tuple(v.shape) for v in self.hub.backbone.weights]
        position = {id(v): i for i, v in enumerate(self.hub.backbone.weights)}
        kernels = {position[id(layer.kernel)]: layer.name
                   for layer in _kernel_layers(self.hub.backbone) if id(layer.kernel) in position}
        entries = []
        for field, value in self.hub.config.items():
            if not not_width(field):
                entries += [Entry(field, path, v) for path, v in config_integers(value)]
        for entry in entries:
            self._probe_one(entry, kernels, base)
        return [e for e in entries if e.width or e.fixed]

    def _probe_one(self, entry, kernels, base):
        if entry.value < 2:
            return
        changes = entry.changed(self.hub.config, entry.value - entry.value // 2)
        try:
            probe = type(self.hub.backbone).from_config({**self.hub.config, **changes})
        except Exception as error:  # noqa: BLE001 (a config check of the family's own)
            entry.fixed = f"the backbone does not build with another value ({_short(error)})"
            return
        shapes = [tuple(v.shape) for v in probe.weights]
        if len(shapes) != len(base):
            return  # not a width: it adds or removes weights (a count of blocks)
        entry.layers = frozenset(kernels[index] for index, (old, new)
                                 in enumerate(zip(base, shapes))
                                 if index in kernels and old[-1] != new[-1])
        entry.width = bool(entry.layers)

    # -- pruning --------------------------------------------------------------------

    def kept_value(self, entry):
        keep = entry.value - int(entry.value * self.ratio + 1e-9)
        return rounded_width(keep, entry.value, self.round_to)

    @property
    def unreachable(self):
        """Whether some entry kept its value because the graph cannot see its channels."""
        return any("cannot see into" in (e.fixed or "") for e in self.entries)

    def apply(self):
        """Returns (the smaller model of the same class, StructuredReport).

        Entries whose channels reach layers the dependency graph cannot see into (a
        Task's custom pyramid layer reading a stage's output) keep their value, and the
        others are pruned; the report names them."""
        while True:
            try:
                return self._apply_once()
            except _Unreachable as error:
                culprits = [e for e in self.entries
                            if not e.fixed and e.layers & set(error.missed)]
                if not culprits:
                    raise NotImplementedError(error.args[0]) from None
                for entry in culprits:
                    entry.fixed = ("its channels reach layers the dependency graph cannot "
                                   f"see into ({error.inside})")

    def _apply_once(self):
        plan = {e: self.kept_value(e) for e in self.entries if not e.fixed}
        plan = {e: k for e, k in plan.items() if k < e.value}
        notes = [f"kept {e.label}={e.value}: {e.fixed}" for e in self.entries if e.fixed]
        changes = {}
        for entry, kept in plan.items():
            changes.update(entry.changed({**self.hub.config, **changes}, kept))
        if not changes:
            unreachable = self.unreachable
            raise (NotImplementedError if unreachable else ValueError)(
                f"No width of {self.hub.name} can change through its config at ratio "
                f"{self.ratio}: " + ("; ".join(notes) or "its config holds no widths") + "."
                + (" Prune it unstructured (prune_low_magnitude) or one-shot (prune_one_shot)"
                   " instead." if unreachable else ""))
        try:
            smaller = self.hub.build(changes, keep_preprocessor=True)
        except Exception as error:  # noqa: BLE001 (the family's own config checks)
            raise ValueError(
                f"{self.hub.name} does not build from the smaller config "
                f"({_describe(plan)}): {_short(error)}. Try another ratio, or round_to=8."
            ) from None
        names = _name_map(self.hub.model, smaller)  # smaller's layer name -> the original's
        target = {names[name]: width for name, width in _widths(smaller).items()}
        shares = {name: 1.0 - width / size for name, (size, width) in
                  ((n, (w, target.get(n, w))) for n, w in _widths(self.hub.model).items())
                  if width < size}
        graph_pruner = StructuredPruner(self.hub.model, shares, self.importance,
                                        data=self.data, free_outputs=not self.hub.is_task)
        pruned, report = graph_pruner.apply()
        reached = _widths(pruned)
        missed = sorted(name for name in shares if reached.get(name) != target.get(name))
        if missed:
            inside = [f"{name} ({cls})" for name, cls, _ in report.opaque]
            why = (f"they sit inside custom layers the dependency graph cannot see into: "
                   f"{', '.join(inside[:3])}" if inside else
                   "their channels are tied to channels the config sets otherwise, or kept: "
                   + "; ".join(f"{g}: {r[0]}" for g, _, r in report.frozen[:2]))
            raise _Unreachable(
                f"{self.hub.name} cannot be pruned through its config: {len(missed)} layer(s) "
                f"({', '.join(missed[:4])}) would need new widths, but {why}. Prune it "
                "unstructured (prune_low_magnitude) or one-shot (prune_one_shot) instead.",
                missed=missed, inside=", ".join(inside[:2]) or "tied channels")
        _copy_by_layer(pruned, smaller, plan, names)
        _check_same_function(pruned, smaller)
        return smaller, StructuredReport(
            layers=report.layers, params_before=self.hub.model.count_params(),
            params_after=smaller.count_params(), flops_before=report.flops_before,
            flops_after=report.flops_after, frozen=report.frozen,
            notes=[f"{type(self.hub.backbone).__name__} config: {_describe(plan)}"] + notes)


class _Unreachable(Exception):
    """The graph pruner could not give some layers the width the smaller config wants."""

    def __init__(self, message, *, missed, inside):
        super().__init__(message)
        self.missed, self.inside = missed, inside


def _describe(plan):
    return ", ".join(f"{e.label} {e.value} -> {k}" for e, k in plan.items())


def _widths(model):
    """{layer name: output width} of the Conv/Dense layers of `model`."""
    return {layer.name: int(layer.kernel.shape[-1]) for layer in _kernel_layers(model)}


def _kernel_layers(model):
    """The layers of `model` whose kernel's last axis is their output width (Conv, Dense;
    a depthwise kernel's last axis is its multiplier)."""
    return [layer for layer in flatten_layers(model)
            if getattr(layer, "kernel", None) is not None
            and not isinstance(layer, keras.layers.DepthwiseConv2D)]


def _name_map(original, smaller):
    """{layer name in `smaller`: the same layer's name in `original`}: both are built by
    the same code from a config, so their layers come in the same order (some families
    prefix inner names with the backbone's own, auto-numbered name)."""
    old, new = _leaves(original), _leaves(smaller)
    if len(old) != len(new) or any(type(a) is not type(b) for a, b in zip(old, new)):
        raise ValueError(f"Internal error: the smaller {type(original).__name__} has other "
                         "layers than the original; please report this model's config.")
    return {b.name: a.name for a, b in zip(old, new)}


def _copy_by_layer(pruned, smaller, plan, names):
    source = {layer.name: layer for layer in _leaves(pruned)}
    for layer in _leaves(smaller):
        match = source.get(names[layer.name])
        if match is None or len(match.weights) != len(layer.weights):
            raise NotImplementedError(
                f"{type(smaller).__name__} cannot be pruned through its config: its layer "
                f"`{layer.name}` is not in the graph that structured pruning rebuilt (the "
                "family calls parts of its image encoder outside that encoder's graph). "
                "Prune it unstructured (prune_low_magnitude) or one-shot (prune_one_shot).")
        for new, old in zip(layer.weights, match.weights):
            if tuple(new.shape) != tuple(old.shape):
                raise ValueError(
                    f"The smaller config ({_describe(plan)}) gives `{new.path}` the shape "
                    f"{tuple(new.shape)}, but structured pruning left {tuple(old.shape)}: "
                    "channels that this family's config ties together (e.g. by a residual "
                    "sum) are set by different entries. Prune it unstructured "
                    "(prune_low_magnitude) or one-shot instead.")
            new.assign(keras.ops.convert_to_numpy(old.value))


def _check_same_function(pruned, smaller):
    """The class model computes what the pruned graph does (same weights, same layers)."""
    sample = input_sample(pruned, 0.5)
    if sample is None:
        return
    a = keras.tree.flatten(pruned(sample, training=False))
    b = keras.tree.flatten(smaller(sample, training=False))
    for x, y in zip(a, b):
        x, y = keras.ops.convert_to_numpy(x), keras.ops.convert_to_numpy(y)
        scale = max(float(np.max(np.abs(x))), 1e-6)
        if x.shape != y.shape or float(np.max(np.abs(x - y))) > 1e-4 * scale:
            raise ValueError("Internal error: the rebuilt keras_hub model does not compute what "
                             "the pruned graph computes; please report this model's config.")


def _leaves(model):
    """Layers with weights of their own and no sub-layers."""
    return [layer for layer in flatten_layers(model)
            if layer.weights and not flatten_layers(layer)]


def _short(error):
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:120]
