"""`StructuredPruner`: plans and applies the removal of whole channels of a graph model."""

import math
import numbers

import keras
import numpy as np

from keras_prune._models import LayerCopier, flatten_layers
from keras_prune._validation import check_fraction, check_int
from keras_prune.structured.graph import DependencyGraph, check_graph_model
from keras_prune.structured.importance import get_importance
from keras_prune.structured.rebuild import copy_weights, count_flops, rebuild
from keras_prune.structured.results import RATIO_HINT, LayerWidth, StructuredReport
from keras_prune.structured.rules import to_numpy


class StructuredPruner:
    """Plans and applies the removal of whole channels, heads and units.

    Args:
        model: a built Functional or Sequential Keras 3 model (nested ones too).
        ratio: fraction of each group's channels to remove, in [0, 1); or a dict
            {layer_name: ratio} for the layers to prune (others are kept).
        importance: a criterion name ("l1", "l2", "bn_scale", "activation",
            "apoz", "entropy", "taylor", "random") or a callable group -> scores.
        data: samples for data-based criteria (`(x, y)` for "taylor").
        round_to: keep channel counts multiples of this (e.g. 8 for SIMD kernels).
        ignore: layer names (or layers) whose output channels must be kept.
        global_ranking: rank channels across all groups (scores normalized by each
            group's mean) and remove the lowest `ratio` of all of them.
        free_outputs: let the channels of the model's outputs go too (a keras_hub
            backbone, whose head is rebuilt to match); by default they are kept.

    `interactive()` yields each group with planned removals, so they can be looked
    at, changed (`group.remove = [...]`) or skipped (`group.skip()`) before
    `apply()` builds the new model. The input model is never changed.
    """

    def __init__(self, model, ratio=0.5, importance="l1", *, data=None, round_to=None,
                 ignore=None, global_ranking=False, free_outputs=False):
        check_graph_model(model)
        self.model = model
        names = {layer.name for layer in flatten_layers(model)}
        self.ignore = self._check_ignore(ignore, names)
        self.ratio = self._check_ratio(ratio, names)
        self.round_to = None if round_to is None else check_int("round_to", round_to, minimum=1)
        if global_ranking and isinstance(self.ratio, dict):
            raise ValueError(
                "Argument `global_ranking=True` needs one overall ratio, not a dict of per-layer "
                "ratios. Pass ratio=0.5 (a number), or global_ranking=False."
            )
        self.global_ranking = bool(global_ranking)
        self.importance = get_importance(importance)
        if getattr(self.importance, "needs_data", False) and data is None:
            raise ValueError(
                f"importance={importance!r} measures activations or gradients, so it needs "
                "`data`: a batch of inputs (e.g. data=x_train[:256]), or (x, y) for 'taylor'."
            )
        self.data = data
        self.free_outputs = bool(free_outputs)
        self._graph = None
        self._planned = False

    @property
    def graph(self):
        """The `DependencyGraph` of the model (traced on first use)."""
        if self._graph is None:
            self._graph = DependencyGraph(self.model, ignore=self.ignore,
                                          free_outputs=self.free_outputs)
        return self._graph

    @staticmethod
    def _check_ignore(ignore, names):
        result = set()
        for item in ignore or ():
            name = item.name if isinstance(item, keras.layers.Layer) else item
            result.add(_check_layer_name("ignore", name, names))
        return result

    @staticmethod
    def _check_ratio(ratio, names):
        if isinstance(ratio, dict):
            for name, value in ratio.items():
                _check_layer_name("ratio", name, names)
                check_fraction(f"ratio[{name!r}]", value, hint=RATIO_HINT)
            return {name: float(value) for name, value in ratio.items()}
        if not isinstance(ratio, numbers.Real) or isinstance(ratio, bool):
            raise TypeError(
                "Argument `ratio` must be a number in [0, 1) or a dict {layer_name: ratio}. "
                f"Received: ratio={ratio!r} of type {type(ratio).__name__}."
            )
        return check_fraction("ratio", ratio, hint=RATIO_HINT)

    # -- planning ---------------------------------------------------------------

    @property
    def groups(self):
        """Every channel group, prunable and frozen, with its plan."""
        self.plan()
        return self.graph.groups

    def _ratio_for(self, group):
        if not isinstance(self.ratio, dict):
            return self.ratio
        return max((self.ratio.get(layer.name, 0.0) for layer in group.sources), default=0.0)

    def _min_keep(self, group):
        return self.round_to if self.round_to and group.kind == "channels" else 1

    def _rounded_keep(self, group, keep):
        return rounded_width(keep, group.size,
                             self.round_to if group.kind == "channels" else None)

    def plan(self):
        """Scores every prunable group and chooses what to remove (once)."""
        if self._planned:
            return
        if hasattr(self.importance, "prepare"):
            self.importance.prepare(self.graph, self.data)
        active = []
        for group in self.graph.groups:
            group.ratio = 0.0 if group.frozen else self._ratio_for(group)
            if group.ratio <= 0:
                continue
            scores = np.asarray(self.importance(group), dtype=np.float64)
            if scores.shape != (group.size,) or np.isnan(scores).any():
                raise ValueError(
                    f"The importance criterion {self.importance!r} must return {group.size} "
                    f"finite scores for group {group.name}. Received: shape {scores.shape}"
                    f"{' with NaN' if scores.shape == (group.size,) else ''}."
                )
            group.scores = scores
            active.append(group)
        if self.global_ranking:
            self._plan_global(active)
        else:
            for group in active:
                keep = self._rounded_keep(group, group.size - int(group.size * group.ratio + 1e-9))
                group.remove = np.sort(np.argsort(group.scores, kind="stable")[: group.size - keep])
        self._planned = True

    def _plan_global(self, groups):
        entries = []
        for index, group in enumerate(groups):
            scale = np.abs(group.scores).mean() or 1.0
            entries += [(score / scale, index, channel)
                        for channel, score in enumerate(group.scores)]
        entries.sort()
        budget = int(sum(g.size for g in groups) * self.ratio + 1e-9)
        removed = [[] for _ in groups]
        for _, index, channel in entries:
            if budget == 0:
                break
            group = groups[index]
            if group.size - len(removed[index]) > self._min_keep(group):
                removed[index].append(channel)
                budget -= 1
        for group, channels in zip(groups, removed):
            keep = self._rounded_keep(group, group.size - len(channels))
            group.remove = np.sort(np.array(channels[: group.size - keep], dtype=np.int64))

    def interactive(self):
        """Yields each group that will lose channels; change or skip it before `apply()`."""
        self.plan()
        for group in self.graph.groups:
            if len(group.remove):
                yield group

    # -- applying -----------------------------------------------------------------

    def _removed(self):
        """Boolean array over channel ids: True where the plan removes the channel."""
        self.plan()
        roots = []
        for group in self.graph.groups:
            roots.extend(group.roots[_check_removal(group)].tolist())
        return self.graph.removed_ids(roots)

    def _shrink(self, removed, read=to_numpy):
        """(layer, new config, {id(variable): array}) for every layer that changes."""
        graph = self.graph

        def keep(ids):
            return ~removed[np.asarray(ids, dtype=np.int64)]

        for key, layer in graph.layers.items():
            inputs = graph.layer_inputs.get(key)
            if inputs is None:
                continue
            spaces = graph.layer_spaces.get(key, {})
            touched = list(inputs) + [space.ids for space in spaces.values()]
            if not any(removed[ids].any() for ids in touched if len(ids)):
                continue
            config, new = graph.rule_for(layer).shrink(
                layer, layer.get_config(), inputs, spaces, keep, read
            )
            yield layer, config, new

    def apply(self):
        """Builds the smaller model. Returns (new_model, StructuredReport)."""
        removed = self._removed()
        configs, weights = {}, {}
        for layer, config, new in self._shrink(removed):
            configs[id(layer)] = config
            weights[id(layer)] = [new.get(id(v), to_numpy(v)) for v in layer.weights]

        copier = LayerCopier(self.model)

        def make_layer(layer):
            if id(layer) in configs:  # a layer that loses channels: its edited config
                return type(layer).from_config(configs[id(layer)])
            return copier.copy(layer)  # unchanged: a copy, or the layer itself if it cannot be

        for _ in range(2):
            new_model, pairs = rebuild(self.model, make_layer)
            failed = copier.load_weights()
            if not failed:
                break
            for layer in failed:  # its copy builds other weights: share it instead
                copier.reuse[id(layer)] = "its copy builds different weights"
            copier.shared.clear()
        copy_weights([(old, new) for old, new in pairs if id(old) in configs], weights)
        report = self._report(new_model, removed)
        report.shared = list(copier.shared)
        return new_model, report

    def masks(self):
        """[(variable, boolean mask)] that zero the planned channels in place.

        Multiplying each trainable variable by its mask silences the removed channels
        (their weights and every weight that reads them) without changing shapes:
        the masked model computes what `apply()`'s smaller model computes.
        """

        def positions(variable):
            return np.arange(int(np.prod(variable.shape))).reshape(variable.shape)

        result = []
        for layer, _, kept in self._shrink(self._removed(), positions):
            for variable in layer.trainable_weights:
                if id(variable) in kept:
                    mask = np.zeros(int(np.prod(variable.shape)), dtype=bool)
                    mask[kept[id(variable)].reshape(-1)] = True
                    result.append((variable, mask.reshape(variable.shape)))
        return result

    def _report(self, new_model, removed):
        layers = [
            LayerWidth(space.layer.name, space.kind, space.size,
                       space.size - int(removed[space.ids].sum()))
            for space in self.graph.spaces if space.prunable
        ]
        frozen = [(g.name, g.size, g.frozen) for g in self.graph.groups if g.frozen]
        return StructuredReport(
            layers=layers,
            params_before=self.model.count_params(),
            params_after=new_model.count_params(),
            flops_before=count_flops(self.model),
            flops_after=count_flops(new_model),
            frozen=frozen,
            opaque=list(self.graph.opaque),
        )


def _check_layer_name(argument, name, names):
    if name not in names:
        raise ValueError(
            f"Argument `{argument}` names layer {name!r}, which is not in the model. "
            f"Layers include: {sorted(names)[:8]}."
        )
    return name


def rounded_width(keep, size, round_to=None):
    """`keep` of `size` channels rounded up to a multiple of `round_to`, in [1, size]."""
    if round_to:
        keep = math.ceil(keep / round_to) * round_to
    return min(size, max(keep, 1))


def _check_removal(group):
    remove = np.asarray(group.remove, dtype=np.int64).reshape(-1)
    if not len(remove):
        return remove
    if group.frozen:
        raise ValueError(f"Group {group.name} is frozen ({group.frozen[0]}); it cannot lose "
                         "channels. Leave its `remove` empty.")
    if len(np.unique(remove)) != len(remove) or remove.min() < 0 or remove.max() >= group.size:
        raise ValueError(f"`remove` of group {group.name} must hold distinct channel indices "
                         f"in [0, {group.size}). Received: {remove.tolist()[:10]}.")
    if len(remove) >= group.size:
        raise ValueError(f"`remove` of group {group.name} removes all {group.size} channels; "
                         "keep at least one.")
    return remove
