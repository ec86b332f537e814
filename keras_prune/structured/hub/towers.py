"""Structured pruning of keras_hub models made of towers: CLIP's and SigLIP's vision
and text encoders, SAM's and DepthAnything's image encoders, ...

Each tower is a model built from its own config, nested in the backbone's config.
Every tower is pruned on its own (`TransformerPruner`: heads and feed-forward units,
the same in each of its blocks), and the backbone is built again from its config
with the smaller towers' configs, so it keeps its class. The layers outside the towers
(projections, heads) keep their weights; where `hidden` narrows a tower's residual
width, their axes that read it (found by building the backbone with that tower alone
narrowed) keep the tower's surviving channels.
"""

import keras
import numpy as np

from keras_prune._models import input_sample
from keras_prune._views.hub import HubModel
from keras_prune.structured.hub import axes
from keras_prune.structured.hub.pruner import TransformerPruner
from keras_prune.structured.results import LayerWidth, StructuredReport


def has_towers(model):
    """True for a keras_hub model with a transformer tower (blocks or a feed-forward
    width in the tower's config)."""
    for _, tower in HubModel.of(model).towers:
        view = HubModel.of(tower, tower=True)
        if view.blocks or view.units_fields:
            return True
    return False


class TowerPruner:
    """Prunes every transformer tower of a keras_hub model; the model keeps its class.

    Args:
        model: a keras_hub Backbone with towers, or a Task on one.
        heads, units, hidden, experts: fractions to remove from every block of every
            tower (`hidden`: its residual width), or dicts {tower: fraction} (tower: the
            backbone's config field, such as "vision_encoder"; a tower left out keeps
            that kind).
        importance, data: as for `TransformerPruner`; a dict of the model's inputs by
            name, from which each tower takes its own (CLIP's vision encoder "images",
            its text encoder "token_ids"). A tower whose inputs the data does not hold
            (computed inside the backbone) is ranked by its weights, and the report says
            so.
        round_to: as for `TransformerPruner`.
    """

    def __init__(self, model, heads=0.5, units=0.5, experts=0.0, *, hidden=0.0,
                 importance="l1", data=None, round_to=None):
        self.hub = HubModel.of(model)
        names = [field for field, _ in self.hub.towers]
        self.notes, self.pruners = [], {}
        for field, tower in self.hub.towers:
            options = {kind: _for_tower(kind, value, field, names)
                       for kind, value in (("heads", heads), ("units", units),
                                           ("hidden", hidden), ("experts", experts))}
            if not any(options.values()):
                continue
            own = None if data is None else _tower_data(data, tower)
            if data is not None and own is None:
                self.notes.append(f"{field}: ranked by its weights (the data holds no "
                                  f"{[t.name for t in tower.inputs]})")
            try:
                pruner = TransformerPruner(
                    HubModel.of(tower, tower=True), round_to=round_to, data=own,
                    importance=importance if own is not None else "l1", **options)
                pruner.plan()
            except (NotImplementedError, axes.ProbeError, KeyError) as error:
                self.notes.append(f"{field} kept: {_first_line(error)}")
                continue
            if pruner.keep:
                self.pruners[field] = pruner
            self.notes += [f"{field}: {note}" for note in pruner.notes]

    def apply(self):
        """Builds the smaller model. Returns (new_model, report)."""
        narrowed = [field for field, pruner in self.pruners.items()
                    if (axes.HIDDEN, None) in pruner.keep]
        if not narrowed:
            return self._apply()
        try:  # a narrower tower must still fit what the backbone joins it with
            new_model, report = self._apply()
            new_model(input_sample(new_model, 0.5), training=False)
        except NotImplementedError:
            raise
        except Exception as error:  # noqa: BLE001 (the family's own code, any error)
            raise NotImplementedError(
                f"{self.hub.name} does not run with a narrower residual width in "
                f"{', '.join(narrowed)} ({_first_line(error)[:120]}): the backbone ties it to "
                "widths set elsewhere (another tower's projection, a decoder's width). Pass "
                "hidden=0 for that tower (a dict by tower), or prune heads and units only."
            ) from None
        return new_model, report

    def _apply(self):
        hub, smaller, rows = self.hub, {}, []
        for field, pruner in self.pruners.items():
            smaller[field], report = pruner.apply()
            rows += [LayerWidth(f"{field}/{row.layer}", row.kind, row.before, row.after)
                     for row in report.layers]
        changes = {field: keras.layers.serialize(tower) for field, tower in smaller.items()}
        new_model = hub.build(changes, keep_preprocessor=True)
        new_backbone = getattr(new_model, "backbone", new_model)
        for field, tower in smaller.items():
            _copy(tower.weights, getattr(new_backbone, field).weights, hub.name)
        _copy(_outside(hub.model, self.pruners), _outside(new_model, smaller), hub.name,
              self._readers(smaller))
        report = StructuredReport(
            layers=rows, params_before=hub.model.count_params(),
            params_after=new_model.count_params(), flops_before=None, flops_after=None,
            frozen=[], notes=list(self.notes))
        return new_model, report

    def _readers(self, smaller):
        """{index of a weight outside the towers: {axis: kept channels}} for the axes
        that read a tower's narrowed residual width."""
        slices = {}
        before = _outside(self.hub.model, self.pruners)
        for field, pruner in self.pruners.items():
            kept = pruner.keep.get((axes.HIDDEN, None))
            if kept is None:
                continue
            probe = self.hub.build({field: keras.layers.serialize(smaller[field])})
            for index, (old, new) in enumerate(zip(before, _outside(probe, self.pruners))):
                for axis, (a, b) in enumerate(zip(old.shape, new.shape)):
                    if a == b:
                        continue
                    if b != len(kept) or axis in slices.get(index, {}):
                        raise NotImplementedError(
                            f"{self.hub.name}: `{old.path}` changes from {a} to {b} on axis "
                            f"{axis} when {field} keeps {len(kept)} of its residual width, "
                            "so keras_prune cannot tell which channels it reads. Pass "
                            "hidden=0 for that tower.")
                    slices.setdefault(index, {})[axis] = np.asarray(kept)
        return slices

    def masked_copy(self):
        """A same-size copy with every removed head and unit of every tower zeroed."""
        copy = self.hub.build({})
        _copy(self.hub.model.weights, copy.weights, self.hub.name)
        backbone = getattr(copy, "backbone", copy)
        for field, pruner in self.pruners.items():
            axes.zero_removed(pruner.hub, pruner.labels, pruner.keep, getattr(backbone, field))
        return copy


def _outside(model, towers):
    """The model's weights that belong to none of the named towers, in order."""
    backbone = getattr(model, "backbone", model)
    inside = {id(v) for field in towers for v in getattr(backbone, field).weights}
    return [v for v in model.weights if id(v) not in inside]


def _copy(sources, targets, name, slices=None):
    """Assigns each source to its target, taking `slices` {index: {axis: kept}} first."""
    if len(sources) != len(targets):
        raise ValueError(f"Internal error: {len(sources)} weights for {len(targets)} in the "
                         f"rebuilt {name}.")
    for index, (source, target) in enumerate(zip(sources, targets)):
        value = np.array(keras.ops.convert_to_numpy(source))  # a copy: JAX may donate
        for axis, kept in (slices or {}).get(index, {}).items():
            value = np.take(value, kept, axis=axis)
        if value.shape != tuple(target.shape):
            raise ValueError(f"Internal error: `{source.path}` {value.shape} does not "
                             f"fit `{target.path}` {tuple(target.shape)} in the rebuilt {name}.")
        target.assign(value)


def _tower_data(data, tower):
    """The part of `data` (a dict by input name) that `tower` reads, or None."""
    names = [tensor.name for tensor in tower.inputs]
    if not isinstance(data, dict) or not all(name in data for name in names):
        return None
    return {name: data[name] for name in names}


def _for_tower(kind, value, tower, towers):
    if not isinstance(value, dict):
        return value
    unknown = sorted(set(value) - set(towers))
    if unknown:
        raise ValueError(f"Argument `{kind}` names {unknown}, which are not towers of this "
                         f"model. Towers: {towers}. Received: {kind}={value!r}.")
    return value.get(tower, 0.0)


def _first_line(error):
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
