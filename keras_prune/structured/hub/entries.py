"""Config entries of a keras_hub model that may be widths: every integer of its
config, in (nested) per-stage lists and in sub-models' configs, except fields whose
name says they are something else (strides, kernel sizes, repeats, ...)."""

import dataclasses
import fractions
import math

import keras
import numpy as np

from keras_prune._models import input_sample
from keras_prune._views.hub import HubModel
from keras_prune.structured.hub import axes, scores
from keras_prune.structured.pruner import rounded_width
from keras_prune.structured.results import StructuredReport

# Config fields that are not widths, by a word of their name (`stackwise_num_strides`),
# unless their last word names a width (`depthwise_filters`, `last_layer_filter`).
_NOT_WIDTHS = ("kernel", "stride", "repeat", "block", "layer", "dilation", "pool", "size",
               "shape", "seed", "classes", "axis", "group", "dropout", "divisor", "padding")
_NOT_WIDTH_WORDS = ("depth", "depths")  # whole words: `depthwise` is a kind of filter
_WIDTH_ENDS = ("filter", "channel", "dim", "width", "feature", "unit")
# Fields that scale widths other entries set (`stackwise_expansion_ratios`).
_MULTIPLIERS = ("ratio", "factor", "multiplier")


def not_width(field):
    words = field.lower().split("_")
    if any(words[-1].startswith(end) for end in _WIDTH_ENDS):
        return False
    return any(word in _NOT_WIDTH_WORDS or word.startswith(_NOT_WIDTHS) for word in words)


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


@dataclasses.dataclass(eq=False)
class Tie:
    """Equal neighbours of a per-stage, per-block list, set together: a residual sum
    between blocks (of one stage, or across stages of equal width) ties their widths,
    so they keep one choice of channels."""

    entries: list

    @property
    def value(self):
        return self.entries[0].value

    @property
    def label(self):  # stackwise_num_filters[1][0]..[2][1] (5 tied)
        first, last = self.entries[0], self.entries[-1]
        if any(entry.field != first.field for entry in self.entries):
            return " = ".join(entry.label for entry in self.entries)
        return (f"{first.label}..{last.label[len(last.field):]} "
                f"({len(self.entries)} tied)")

    def changed(self, config, value):
        changes = {}
        for entry in self.entries:
            changes.update(entry.changed({**config, **changes}, value))
        return changes


def tied(entries):
    """`entries` with each run of equal, consecutive values of one nested list (the
    blocks of a stage, and on across stages) made one `Tie`."""
    grouped = []
    for entry in entries:
        last = grouped[-1] if grouped else None
        previous = last.entries[-1] if isinstance(last, Tie) else last
        if (previous is not None and previous.field == entry.field
                and len(entry.path) > 1 and len(previous.path) == len(entry.path)
                and previous.value == entry.value):
            grouped[-1] = Tie([*(last.entries if isinstance(last, Tie) else [last]), entry])
        else:
            grouped.append(entry)
    return grouped


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
    cannot follow (a concatenation, normalization over channels) and the model is
    refused. Equal widths of consecutive blocks are set together (`Tie`: a residual sum
    may join them), and the axes of one entry share one choice of channels (`_choose`).
    """

    def __init__(self, model, ratio, *, round_to=None):
        self.hub = HubModel.of(model)
        self.ratio, self.round_to = ratio, round_to
        self.notes = []
        self.counts = {}  # (entry, old size) -> the size the smaller model gives that axis
        self.outputs = {}  # output position -> the (entry, old size) of narrowed features
        self._claims = {}  # (index, axis) -> (old size, [((entry, size), copies)])

    def apply(self):
        """Returns (the smaller model of the same class, StructuredReport)."""
        hub = self.hub
        old = hub.model.weights
        labels = axes.Labels(axes={}, blocks=[None] * len(old), sizes={})
        plan = {}  # entry -> new value
        entries = [Entry(field, path, number) for field, value in hub.config.items()
                   if not not_width(field) for path, number in config_integers(value)]
        # Widths first: a ratio (EfficientNet's expansion) moves the axes they set too.
        entries.sort(key=lambda entry: any(word in entry.field for word in _MULTIPLIERS))
        unbuilt = {}  # entries that fail alone -> why (an error, or UNEVEN)
        for entry in tied(entries):
            kept = self._kept_value(entry)
            if kept < entry.value:
                why = self._label(entry, kept, labels, plan)
                if why:
                    unbuilt[entry] = why
        self._label_together(unbuilt, labels, plan)
        labels.segments = self._segments(labels)
        if not plan:
            raise NotImplementedError(f"No config entry of {hub.name} sets a width that "
                                      f"ratio {self.ratio} can reduce.")
        keep = self._choose(labels)
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

    def _choose(self, labels):
        """{(kind, None): kept indices}. The axes one entry moves by the same fraction
        share one choice: it is made within the largest unit that divides all their
        sizes and repeated in every unit. A split axis (CSPNet's stages: an expanded
        width cut in halves, each later added to a block's output of half the size) then
        keeps in each part the channels the axes it meets keep."""
        groups = {}
        for kind in labels.sizes:
            fraction = fractions.Fraction(self.counts[kind], kind[1])
            groups.setdefault((kind[0], fraction), []).append(kind)
        keep = {}
        for (_, fraction), kinds in groups.items():
            unit = math.gcd(*(size for _, size in kinds))
            if (unit * fraction).denominator != 1:
                unit = None  # no unit keeps a whole number: each axis chooses alone
            for kind in kinds if unit is None else []:
                keep[(kind, None)] = np.sort(np.argsort(
                    -scores.weight_scores(self.hub, labels, kind, None),
                    kind="stable")[:self.counts[kind]])
            if unit is None:
                continue
            total = sum(scores.weight_scores(self.hub, labels, kind, None).reshape(
                -1, unit).sum(axis=0) for kind in kinds)
            chosen = np.sort(np.argsort(-total, kind="stable")[:int(unit * fraction)])
            for kind in kinds:
                keep[(kind, None)] = np.concatenate(
                    [start + chosen for start in range(0, kind[1], unit)])
        return keep

    def _label_together(self, unbuilt, labels, plan):
        """Entries of one width in different fields (HGNetV2: a stage's output and the
        next stage's input) build, or move their channels evenly, only when changed
        together: each set of equal values that failed alone is probed as one `Tie`;
        what still fails is noted."""
        by_value = {}
        for entry in unbuilt:
            by_value.setdefault(entry.value, []).append(entry)
        for value, group in by_value.items():
            members = [item for entry in group
                       for item in (entry.entries if isinstance(entry, Tie) else [entry])]
            if len(group) > 1 and not self._label(Tie(members), self._kept_value(group[0]),
                                                  labels, plan):
                continue
            for entry in group:
                self.notes.append(f"kept {entry.label}={entry.value}: " + (
                    "its channels are tied to another entry's or scale unevenly"
                    if unbuilt[entry] is UNEVEN else f"the model does not build with "
                    f"{self._kept_value(entry)} ({unbuilt[entry]})"))

    def _segments(self, labels):
        """{(index, axis): parts} of every concatenated axis claimed while labelling: the
        parts in the order their channels are produced (the last weight before the axis
        whose last axis holds them), unclaimed channels first."""
        weights = self.hub.model.weights
        segments = {}
        for (index, axis), (before, claims) in self._claims.items():
            def produced(kind):
                return max((j for j in range(index) if labels.axes.get(j, {}).get(
                    len(weights[j].shape) - 1) == kind), default=-1)

            rest = before - sum(copies * kind[1] for kind, copies in claims)
            parts = [(None, rest)] if rest > 0 else []
            for kind, copies in sorted(claims, key=lambda claim: produced(claim[0])):
                parts += [(kind, kind[1])] * copies
            segments[(index, axis)] = parts
        return segments

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
            return str(error).splitlines()[0][:80] if str(error).strip() else type(
                error).__name__
        old, new = hub.model.weights, probe.weights
        if len(old) != len(new):
            return  # a count of blocks, not a width
        before, after = _output_shapes(hub.model), _output_shapes(probe)
        narrowed = {at: (entry, shape[-1]) for at, (shape, new_shape) in
                    enumerate(zip(before, after)) if shape != new_shape}
        # A bare backbone's features may narrow (as the graph path narrows them); a
        # Task's outputs (its classes, its masks) stay.
        if narrowed and (hub.is_task or any(
                before[at][:-1] != after[at][:-1] or at in self.outputs for at in narrowed)):
            self.notes.append(f"kept {entry.label}={entry.value}: it sets the width of "
                              f"the model's output")
            return None
        moved = [(i, axis, before, after) for i, (a, b) in enumerate(zip(old, new))
                 for axis, (before, after) in enumerate(zip(a.shape, b.shape))
                 if before != after]
        if not moved:
            return
        if any(len(old[i].shape) >= 4 and axis < len(old[i].shape) - 2
               for i, axis, _, _ in moved):
            return  # a convolution's kernel size (HGNetV2 lists it among the widths)
        joined = _concatenated(entry.value, moved)
        moved = [m for m in moved if (m[0], m[1]) not in joined]
        # The family may round the new width (to a multiple of 8); every axis of one old
        # size must move to one new, smaller size.
        sizes = {}
        if any(axis in labels.axes.get(i, {}) or (i, axis) in self._claims
               for i, axis, _, _ in moved) or any(
                axis in labels.axes.get(i, {}) for i, axis in joined) or any(
                after >= before or sizes.setdefault(before, after) != after
                for _, _, before, after in moved):
            return UNEVEN
        self.outputs.update(narrowed)
        for i, axis, before, after in moved:
            labels.axes.setdefault(i, {})[axis] = (entry, before)
            labels.sizes[(entry, before)] = before
            self.counts[(entry, before)] = after
        for place, (before, copies) in joined.items():
            self._claims.setdefault(place, (before, []))[1].append(((entry, entry.value), copies))
        plan[entry] = kept
        return None

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
        for at, (a, b) in enumerate(zip(keras.tree.flatten(smaller(sample, training=False)),
                                        keras.tree.flatten(masked(sample, training=False)))):
            a, b = keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b)
            if at in self.outputs:
                b = b[..., keep[(self.outputs[at], None)]]
            scale = max(float(np.max(np.abs(b))), 1e-6)
            if a.shape != b.shape or float(np.max(np.abs(a - b))) > 1e-4 * scale:
                raise NotImplementedError(_REFUSAL.format(
                    name=self.hub.name, why="the smaller config's model does not compute the "
                    "original with the removed channels zeroed (its layout ties channels "
                    "across entries, e.g. by a concatenation, or normalizes over channels, "
                    "as RMS and layer normalization do)"))


UNEVEN = "uneven"  # an entry's axes are another's too, or scale unevenly


def _concatenated(value, moved):
    """{(index, axis): (old size, copies)} for the moved axes that concatenate `copies`
    of the entry's channels with others (HGNetV2: a block's input and each layer's
    output): an axis that shrinks by a whole number of the entry's steps, holds more
    than those copies, and does not shrink in proportion (a derived width does)."""
    own = {after for _, _, before, after in moved if before == value}
    if len(own) != 1:
        return {}
    new = own.pop()
    step = value - new
    return {(i, axis): (before, (before - after) // step) for i, axis, before, after in moved
            if before != value and before * new != after * value
            and (before - after) % step == 0 and before > (before - after) // step * value}


def _output_shapes(model):
    return [tuple(tensor.shape) for tensor in keras.tree.flatten(model.outputs)]


_REFUSAL = ("{name} cannot be pruned through its config: {why}. Prune it unstructured "
            "(prune_low_magnitude) or one-shot (prune_one_shot) instead.")
