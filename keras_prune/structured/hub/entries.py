"""Config entries of a keras_hub model that may be widths: every integer of its
config, in (nested) per-stage lists and in sub-models' configs, except fields whose
name says they are something else (strides, kernel sizes, repeats, ...)."""

import dataclasses

import keras
import numpy as np

from keras_prune._models import input_sample
from keras_prune._views.hub import HubModel
from keras_prune.structured.hub import axes, scores
from keras_prune.structured.pruner import rounded_width
from keras_prune.structured.results import StructuredReport

# Config fields that are not widths, by a word of their name (`stackwise_num_strides`).
_NOT_WIDTHS = ("kernel", "stride", "repeat", "block", "depth", "layer", "dilation", "pool",
               "size", "shape", "seed", "classes", "axis", "group", "dropout", "divisor")


def not_width(field):
    return any(word.startswith(stop) for word in field.lower().split("_") for stop in _NOT_WIDTHS)


@dataclasses.dataclass(eq=False)
class Entry:
    """One integer of the backbone config: a field, or position `index` in a list field."""

    field: str
    path: tuple  # positions in nested lists, () for a plain integer field
    value: int
    width: bool = False  # changing it moves some kernel's output width
    fixed: str | None = None  # why it keeps its value
    layers: frozenset = frozenset()  # names of the layers whose width it moves

    @property
    def label(self):
        return self.field + "".join(f".{i}" if isinstance(i, str) else f"[{i}]"
                                    for i in self.path if i != "config")

    def changed(self, config, value):
        """{field: new value} with this entry set to `value` in `config`'s field."""
        def replace(current, path):
            if not path:
                return value
            if isinstance(current, dict):  # a sub-model's serialized config
                return {**current, path[0]: replace(current[path[0]], path[1:])}
            items = list(current)
            items[path[0]] = replace(items[path[0]], path[1:])
            return items

        return {self.field: replace(config[self.field], self.path)}


def config_integers(value, path=()):
    """(path, integer) for an int, or for each int in (nested) lists of ints."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [(path, value)]
    if isinstance(value, dict) and isinstance(value.get("config"), dict):  # a sub-model
        return [found for key, item in value["config"].items() if not not_width(key)
                for found in config_integers(item, path + ("config", key))]
    if isinstance(value, (list, tuple)) and value:
        found = []
        for index, item in enumerate(value):
            inner = config_integers(item, path + (index,))
            if not inner and item is not None:
                return []  # a list with other things in it (strings, floats): not widths
            found += inner
        return found
    return []




class EntryPruner:
    """Prunes a keras_hub CNN whose blocks are custom layers (MobileNet's inverted
    residuals, HGNetV2's stages) by its config entries alone, without the dependency
    graph.

    Each width entry is probed (its value halved in a copy of the config); every weight
    axis it moves is labelled with the entry and the axis' old size, a group of the
    same channels. Each group keeps its highest-L1 channels, in the share the entry's
    new value keeps, and the smaller model of the same class receives the surviving
    slices. The result must compute what the original computes with the removed
    channels zeroed; otherwise the family's layout ties channels in a way the labels
    cannot follow (a concatenation, a split) and the model is refused.
    """

    def __init__(self, model, ratio, *, round_to=None):
        self.hub = HubModel.of(model)
        self.ratio, self.round_to = ratio, round_to
        self.notes = []

    def apply(self):
        """Returns (the smaller model of the same class, StructuredReport)."""
        hub = self.hub
        old = hub.model.weights
        labels = axes.Labels(axes={}, blocks=[None] * len(old), sizes={})
        plan = {}  # entry -> new value
        for field, value in hub.config.items():
            if not_width(field):
                continue
            for path, number in config_integers(value):
                entry = Entry(field, path, number)
                kept = self._kept_value(entry)
                if kept < number:
                    self._label(entry, kept, labels, plan)
        if not plan:
            raise NotImplementedError(f"No config entry of {hub.name} sets a width that "
                                      f"ratio {self.ratio} can reduce.")
        keep = {}
        for index, labelled in labels.axes.items():
            for kind in labelled.values():
                if (kind, None) not in keep:
                    entry, size = kind
                    count = size * plan[entry] // entry.value
                    keep[(kind, None)] = np.sort(np.argsort(
                        -scores.weight_scores(hub, labels, kind, None), kind="stable")[:count])
        changes = {}
        for entry, kept in plan.items():
            changes.update(entry.changed({**hub.config, **changes}, kept))
        try:
            smaller = hub.build(changes, keep_preprocessor=True)
            axes.slice_weights(hub, labels, keep, smaller)
            self._check(labels, keep, smaller)
        except NotImplementedError:
            raise
        except Exception as error:  # noqa: BLE001 (the family's own code, any error)
            why = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(
                error).__name__
            raise NotImplementedError(_REFUSAL.format(name=hub.name, why=why)) from None
        return smaller, StructuredReport(
            layers=[], params_before=hub.model.count_params(),
            params_after=smaller.count_params(), flops_before=None, flops_after=None,
            frozen=[], notes=[f"{type(hub.backbone).__name__} config: " + ", ".join(
                f"{e.label} {e.value} -> {k}" for e, k in plan.items())] + self.notes)

    def _kept_value(self, entry):  # as the graph path rounds its widths
        keep = entry.value - int(entry.value * self.ratio + 1e-9)
        return rounded_width(keep, entry.value, self.round_to)

    def _label(self, entry, kept, labels, plan):
        """Labels the axes `entry` moves, or leaves it out (noted) when it adds or removes
        weights, does not build, or moves an axis another entry moves."""
        hub = self.hub
        try:
            probe = hub.build(entry.changed(hub.config, kept))
        except Exception as error:  # noqa: BLE001 (the family's own config checks)
            self.notes.append(f"kept {entry.label}={entry.value}: the model does not build "
                              f"with {kept} ({str(error).splitlines()[0][:80]})")
            return
        old, new = hub.model.weights, probe.weights
        if len(old) != len(new):
            return  # a count of blocks, not a width
        moved = [(i, axis, before, after) for i, (a, b) in enumerate(zip(old, new))
                 for axis, (before, after) in enumerate(zip(a.shape, b.shape))
                 if before != after]
        if not moved:
            return
        if any(axis in labels.axes.get(i, {}) for i, axis, _, _ in moved) or any(
                before * kept % entry.value or after != before * kept // entry.value
                for _, _, before, after in moved):
            self.notes.append(f"kept {entry.label}={entry.value}: its channels are tied to "
                              "another entry's or scale unevenly")
            return
        for i, axis, before, _ in moved:
            labels.axes.setdefault(i, {})[axis] = (entry, before)
            labels.sizes[(entry, before)] = before
        plan[entry] = kept

    def _check(self, labels, keep, smaller):
        """The smaller model computes the original with the removed channels zeroed."""
        masked = self.hub.build({})
        for source, target in zip(self.hub.model.weights, masked.weights):
            target.assign(np.array(keras.ops.convert_to_numpy(source)))
        axes.zero_removed(self.hub, labels, keep, masked)
        sample = input_sample(smaller, 0.5)
        rng = np.random.default_rng(0)
        sample = keras.tree.map_structure(
            lambda x: rng.uniform(size=x.shape).astype(x.dtype) if x.dtype.kind == "f" else x,
            sample)
        for a, b in zip(keras.tree.flatten(smaller(sample, training=False)),
                        keras.tree.flatten(masked(sample, training=False))):
            a, b = keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b)
            scale = max(float(np.max(np.abs(b))), 1e-6)
            if a.shape != b.shape or float(np.max(np.abs(a - b))) > 1e-4 * scale:
                raise NotImplementedError(_REFUSAL.format(
                    name=self.hub.name, why="the smaller config's model does not compute the "
                    "original with the removed channels zeroed (its layout ties channels "
                    "across entries, e.g. by a concatenation or a split)"))


_REFUSAL = ("{name} cannot be pruned through its config: {why}. Prune it unstructured "
            "(prune_low_magnitude) or one-shot (prune_one_shot) instead.")
