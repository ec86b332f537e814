"""The channel dependency graph: which channels of which layers must go together.

Every channel of every tensor's last axis gets an integer id. A layer whose width
is a config value (Dense units, Conv filters, Embedding output_dim, attention
heads) opens a *space*: a fresh run of ids. Layers that keep channels in place
(BatchNormalization, activations, pooling) pass ids through; residual merges
(Add, Multiply, ...) tie ids together one by one; Concatenate and Flatten
rearrange them. Tied ids form one *channel* of a *group*; a group is what one
pruning decision acts on. Ids that reach a model output, a model input or a layer
without a rule are *frozen*, and so is every group that holds one.
"""

import dataclasses

import keras
import numpy as np

from keras_prune._models import check_built, check_keras3, flatten_layers, is_graph_model
from keras_prune._models.graph import iter_steps, producer_of
from keras_prune.layers import collect_wrappers
from keras_prune.quantization.wrapper import QuantizeWrapper
from keras_prune.structured import registry


@dataclasses.dataclass(eq=False)
class Space:
    """A run of channel ids [start, start + size) opened by `layer`."""

    layer: object
    kind: str  # "units", "filters", "output_dim", "heads", "input", "opaque"
    start: int
    size: int

    @property
    def ids(self):
        return np.arange(self.start, self.start + self.size)

    @property
    def prunable(self):
        return self.kind not in ("input", "opaque")


def check_graph_model(model, argument="model"):
    """Structured surgery rewires the layer graph, so it needs one."""
    check_keras3(model, argument)
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"Argument `{argument}` must be a keras.Model. Received: {type(model).__name__}."
        )
    check_built(model, argument)
    if not is_graph_model(model):
        raise ValueError(
            f"Argument `{argument}` ({model.name}, {type(model).__name__}) is a subclassed model. "
            "Structured pruning removes channels by rebuilding the layer graph, and a subclassed "
            "model's graph lives in Python code that keras_prune cannot rewrite. Build the model "
            "with the Functional API (keras.Input + layer calls) or keras.Sequential, copy the "
            "weights over with `new.set_weights(old.get_weights())`, and prune that; or use "
            "unstructured pruning (keras_prune.prune_low_magnitude), which works on subclassed "
            "models."
        )
    quantized = [layer.name for layer in flatten_layers(model)
                 if isinstance(layer, QuantizeWrapper)]
    if quantized:
        raise ValueError(
            f"Argument `{argument}` is quantization-aware ({quantized[0]} and "
            f"{len(quantized) - 1} more are QuantizeWrappers), and structured pruning cannot "
            "change the width of a fake-quantized layer. Shrink the float model first, then "
            "make it quantization-aware: prune_structured -> quantize_model -> fit."
        )
    wrapped = [layer.name for layer in collect_wrappers(model)]
    if wrapped:
        raise ValueError(
            f"Argument `{argument}` still holds pruning wrappers ({wrapped[:3]}). Call "
            "keras_prune.strip_pruning(model) first; structured pruning works on plain layers."
        )


class DependencyGraph:
    """Channel groups of a Functional or Sequential model (nested models expanded).

    Build it with `DependencyGraph(model)`; read `groups` (prunable and frozen) and
    `steps` (the leaf layer calls). `ignore` names layers whose output channels
    must be kept; `rule_for(layer)` looks up a layer's `Rule` (the registry by default).
    """

    def __init__(self, model, *, ignore=(), rule_for=None, free_outputs=False):
        check_graph_model(model)
        self.model = model
        self.rule_for = rule_for or registry.rule_for
        self.spaces = []
        self._space_of = []  # id -> index in self.spaces
        self._parent = []  # union-find over ids
        self._frozen = []  # (ids, reason)
        self.opaque = []  # (layer name, class name, [inner layers with weights]) without rule
        self._space_links = []  # (space index, space index) tied by a union
        self.tensor_ids = {}  # id(canonical KerasTensor) -> ids of its last axis
        self.layer_inputs = {}  # id(layer) -> ids per input, first call
        self.layer_space = {}  # id(layer) -> Space (its own channels)
        self.layer_spaces = {}  # id(layer) -> {kind: Space} for layers with several
        self.layers = {}  # id(layer) -> layer, in call order
        self.steps = list(iter_steps(model))
        ignore = set(ignore)

        for tensor in keras.tree.flatten(model.inputs):
            self.tensor_ids[id(tensor)] = self._frozen_space(tensor, "input", "is a model input")
        for step in self.steps:
            self._visit(step, ignore)
        for tensor in keras.tree.flatten(model.outputs):
            if not free_outputs:  # a backbone's outputs may narrow: its head is rebuilt
                self.freeze(self.ids(tensor), "reaches a model output")
        self.groups = self._make_groups()

    # -- ids ------------------------------------------------------------------

    def new_space(self, layer, size, kind):
        """The ids of `layer`'s own channels of `kind` (opened on first use)."""
        existing = self.layer_spaces.get(id(layer), {}).get(kind)
        if existing is not None:  # a shared layer opens its channels once
            return existing
        start = len(self._parent)
        space = Space(layer, kind, start, int(size))
        self._parent.extend(range(start, start + space.size))
        self._space_of.extend([len(self.spaces)] * space.size)
        self.spaces.append(space)
        self.layers.setdefault(id(layer), layer)
        if kind not in ("input", "opaque"):
            self.layer_spaces.setdefault(id(layer), {})[kind] = space
            if kind != "heads":
                self.layer_space[id(layer)] = space
        return space

    def _frozen_space(self, tensor, kind, reason):
        size = _channels(tensor)
        space = self.new_space(producer_of(tensor), size, kind)
        self.freeze(space.ids, reason)
        return space.ids

    def ids(self, tensor):
        known = self.tensor_ids.get(id(tensor))
        if known is None:
            known = self._frozen_space(tensor, "opaque", "produced outside the traced graph")
            self.tensor_ids[id(tensor)] = known
        return known

    def find(self, i):
        parent = self._parent
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    def tie(self, a, b):
        """Ties channel a[j] to b[j] for every j (the two arrays must match in length)."""
        for i, j in zip(a.tolist(), b.tolist()):
            ri, rj = self.find(i), self.find(j)
            if ri != rj:
                self._parent[max(ri, rj)] = min(ri, rj)
                self._space_links.append((self._space_of[i], self._space_of[j]))

    def freeze(self, ids, reason):
        if len(ids):
            self._frozen.append((np.asarray(ids), reason))

    # -- tracing ----------------------------------------------------------------

    def _visit(self, step, ignore):
        layer = step.operation
        inputs = [self.ids(t) for t in step.inputs]
        rule = self.rule_for(layer)
        what = f"`{getattr(layer, 'name', layer)}` ({type(layer).__name__})"
        if rule is None:
            problem = (
                f"{what}, which has no structured-pruning rule (register one with "
                "keras_prune.structured.register_rule)"
            )
            inner = []
            if isinstance(layer, keras.layers.Layer):  # not a keras.ops operation
                inner = [sub.name for sub in flatten_layers(layer) if sub.weights]
            if inner and layer.name not in [name for name, _, _ in self.opaque]:
                self.opaque.append((layer.name, type(layer).__name__, inner))
        else:
            problem = rule.unsupported(layer, step)
            problem = problem and f"{what}, which {problem}"
        if problem is None and id(layer) in self.layer_inputs:
            # A shared layer sees the same channels on every call.
            for seen, now in zip(self.layer_inputs[id(layer)], inputs):
                if len(seen) != len(now):
                    problem = f"{what}, which is shared between inputs of different widths"
                    break
                self.tie(seen, now)
        if problem is None:
            self.layer_inputs.setdefault(id(layer), inputs)
            self.layers.setdefault(id(layer), layer)
            outputs = rule.trace(self, layer, step, inputs)
        else:
            for ids in inputs:
                self.freeze(ids, f"feeds {problem}")
            outputs = [
                self._frozen_space(t, "opaque", f"comes out of {problem}") for t in step.outputs
            ]
        for tensor, ids in zip(step.outputs, outputs):
            self.tensor_ids[id(tensor)] = np.asarray(ids, dtype=np.int64)
        if getattr(layer, "name", None) in ignore and id(layer) in self.layer_space:
            self.freeze(self.layer_space[id(layer)].ids, f"belongs to `{layer.name}`, in `ignore`")

    # -- groups -----------------------------------------------------------------

    def _make_groups(self):
        n_spaces = len(self.spaces)
        parent = list(range(n_spaces))

        def find(i):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for a, b in self._space_links:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        members = {}
        for index, space in enumerate(self.spaces):
            members.setdefault(find(index), []).append(space)

        roots = np.array([self.find(i) for i in range(len(self._parent))], dtype=np.int64)
        self.roots = roots
        frozen_reasons = {}
        for ids, reason in self._frozen:
            for root in np.unique(roots[ids]).tolist():
                frozen_reasons.setdefault(root, []).append(reason)

        groups = []
        for spaces in members.values():
            if not any(space.prunable for space in spaces):
                continue
            ids = np.concatenate([space.ids for space in spaces])
            channel_roots, classes = np.unique(roots[ids], return_inverse=True)
            reasons = []
            for root in channel_roots.tolist():
                for reason in frozen_reasons.get(root, ()):
                    if reason not in reasons:
                        reasons.append(reason)
            groups.append(Group(self, spaces, ids, classes.reshape(-1), channel_roots, reasons))
        return groups

    def removed_ids(self, removed_roots):
        """Boolean array over all ids: True where the id's channel is removed."""
        return np.isin(self.roots, np.fromiter(removed_roots, dtype=np.int64))


class Group:
    """Coupled channels that are kept or removed together.

    `size` channels; `spaces` the layer outputs that own them; `frozen` the
    reasons it must be kept whole (empty when it can be pruned). After planning,
    `scores` holds the importance of each channel and `remove` the channel indices
    that will go; assign `remove` or call `skip()` to change the plan.
    """

    def __init__(self, graph, spaces, ids, classes, roots, frozen):
        self.graph = graph
        self.spaces = spaces
        self.ids = ids
        self.classes = classes  # channel index of each id in `ids`
        self.roots = roots  # union-find root of each channel
        self.frozen = frozen
        self._channel_of = dict(zip(ids.tolist(), classes.tolist()))
        self.ratio = 0.0
        self.scores = None  # set by the pruner's plan
        self.remove = np.zeros(0, dtype=np.int64)  # channel indices to remove

    def skip(self):
        """Keeps every channel of this group (interactive mode)."""
        self.remove = np.zeros(0, dtype=np.int64)

    @property
    def size(self):
        return len(self.roots)

    @property
    def kind(self):
        return "heads" if any(space.kind == "heads" for space in self.spaces) else "channels"

    @property
    def layers(self):
        """Layers that write or read this group's channels, in call order."""
        found = {}
        id_set = set(self.ids.tolist())
        for space in self.spaces:
            if space.prunable:
                found[id(space.layer)] = space.layer
        for key, inputs in self.graph.layer_inputs.items():
            if any(id_set.intersection(ids.tolist()) for ids in inputs):
                found[key] = self.graph.layers[key]
        return [layer for key, layer in self.graph.layers.items() if key in found]

    @property
    def sources(self):
        """The layers whose width (units, filters, heads, ...) this group sets."""
        return [space.layer for space in self.spaces if space.prunable]

    @property
    def name(self):
        names = [layer.name for layer in self.sources]
        return names[0] if len(names) == 1 else f"{names[0]} (+{len(names) - 1} tied)"

    def channels_of(self, ids):
        """The group channel index of each id (which must belong to this group)."""
        return np.array([self._channel_of[i] for i in np.asarray(ids).tolist()], dtype=np.int64)

    def contains(self, ids):
        return np.isin(np.asarray(ids), self.ids)

    def reduce(self, ids, values, reduction="mean"):
        """Per-channel scores from per-id `values` (one row of scores per id).

        Ids tied into one channel (residual branches, shared layers) are combined
        with `reduction` ("mean", "sum" or "max"); channels without a value get NaN.
        """
        channels = self.channels_of(ids)
        values = np.asarray(values, dtype=np.float64)
        out = np.zeros(self.size)
        counts = np.zeros(self.size)
        if reduction == "max":
            out[:] = -np.inf
            np.maximum.at(out, channels, values)
        else:
            np.add.at(out, channels, values)
        np.add.at(counts, channels, 1)
        if reduction == "mean":
            out = np.divide(out, counts, out=np.zeros_like(out), where=counts > 0)
        out[counts == 0] = np.nan
        return out

    def __repr__(self):
        if self.frozen:
            state = f"frozen: {self.frozen[0]}"
        else:
            state = f"removing {len(self.remove)}" if len(self.remove) else "prunable"
        layers = ", ".join(layer.name for layer in self.layers[:6])
        more = "" if len(self.layers) <= 6 else f", ... ({len(self.layers)} layers)"
        return f"<Group {self.name}: {self.size} {self.kind}, {state}; layers {layers}{more}>"


def _channels(tensor):
    shape = getattr(tensor, "shape", None)
    if not shape:
        return 0
    return int(shape[-1]) if shape[-1] is not None else 0
